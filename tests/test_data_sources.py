"""Every source (torchvision CIFAR, npz, image folder), data-dir resolution and error messages."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _datafakes import write_fake_cifar, write_folder, write_npz  # noqa: E402

from ltrank.data import DatasetConfig, default_data_dir, load_longtailed, resolve_data_dir  # noqa: E402
from ltrank.data.longtail import class_counts  # noqa: E402
from ltrank.data.sources import file_sha256  # noqa: E402
from ltrank.errors import LtrankError  # noqa: E402


# ------------------------------------------------------------------ data dir
def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("LTRANK_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("LTRANK_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir() == default_data_dir() == tmp_path / "cache" / "ltrank" / "data"


# ------------------------------------------------------------------ torchvision CIFAR
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_torchvision_cifar_root_is_read_and_subsampled_like_the_reference(tmp_path, monkeypatch, name):
    per_class = 20 if name == "cifar10" else 6
    images, labels, test_images, test_labels, names = write_fake_cifar(tmp_path, monkeypatch, name, per_class)
    # a pool file next to it must be ignored: torchvision files win
    write_npz(tmp_path / f"{name}-lt-pool.npz")
    data = load_longtailed(DatasetConfig(source=name, imbalance_ratio=5), data_dir=tmp_path)
    num_classes = len(names)
    expected_counts = class_counts(per_class, num_classes, 5, "exp")
    assert data.class_counts == expected_counts
    assert data.source.kind == "torchvision" and data.class_names == names
    assert data.manifest.selection_rule == "shuffle-class-rows"
    # the reference loop: np.random.seed(0), shuffle each class's indices, keep the first n_c
    np.random.seed(0)
    ref = []
    for c, n_c in enumerate(expected_counts):
        idx = np.where(labels == c)[0]
        np.random.shuffle(idx)
        ref.extend(idx[:n_c].tolist())
    assert sum(data.manifest.selected_indices, []) == ref
    assert torch.equal(data.train_images, torch.from_numpy(images[ref].transpose(0, 3, 1, 2).copy()))
    assert data.train_labels.tolist() == labels[ref].tolist()
    assert torch.equal(data.test_images, torch.from_numpy(test_images.transpose(0, 3, 1, 2).copy()))
    assert data.test_labels.dtype == torch.int64 and data.test_labels.tolist() == test_labels.tolist()
    assert data.train_images.is_contiguous() and data.train_images.dtype == torch.uint8


def test_corrupt_torchvision_file_is_one_line_naming_the_folder(tmp_path, monkeypatch):
    write_fake_cifar(tmp_path, monkeypatch, "cifar10")
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:-10])
    with pytest.raises(LtrankError, match="cifar-10-batches-py: torchvision cannot read") as info:
        load_longtailed(DatasetConfig(source="cifar10"), data_dir=tmp_path)
    assert "\n" not in str(info.value)


def test_missing_cifar_says_where_it_looked_and_how_to_provide_it(tmp_path, monkeypatch):
    def offline(name, root):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr("ltrank.data.sources._download_torchvision", offline)
    with pytest.raises(LtrankError) as info:
        load_longtailed(DatasetConfig(source="cifar100"), data_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "cifar-100-python") in message and str(tmp_path / "cifar100-lt-pool.npz") in message
    assert "internet" in message and "LTRANK_DATA_DIR" in message and "name resolution" in message


# ------------------------------------------------------------------ npz
def test_npz_source_with_relative_path_in_data_dir(tmp_path):
    arrays = write_npz(tmp_path / "mine.npz", num_classes=4, per_class=20, unused_key=np.zeros(3))
    data = load_longtailed(DatasetConfig(source="npz:mine.npz", imbalance_ratio=4, profile="step"), tmp_path)
    assert data.class_counts == [20, 20, 5, 5]
    assert data.source.kind == "npz" and data.source.fingerprint == file_sha256(tmp_path / "mine.npz")
    assert data.manifest.selection_rule == "shuffle-class-rows"
    rows = sum(data.manifest.selected_indices, [])
    assert data.train_labels.tolist() == arrays["train_labels"][rows].tolist()
    assert torch.equal(data.train_images, torch.from_numpy(arrays["train_images"][rows]).permute(0, 3, 1, 2))
    assert data.class_names == [f"class{c}" for c in range(4)]


def test_npz_pool_with_source_ranks_uses_the_rank_rule(tmp_path):
    labels = np.repeat(np.arange(3), [10, 5, 3]).astype(np.int64)
    ranks = np.concatenate([np.arange(10), np.arange(5), np.arange(3)])
    np.savez(
        tmp_path / "pool.npz",
        train_images=np.zeros((18, 4, 4, 3), np.uint8),
        train_labels=labels,
        train_source_rank=ranks,
        test_images=np.zeros((3, 4, 4, 3), np.uint8),
        test_labels=np.arange(3),
        class_names=np.asarray(["a", "b", "c"]),
    )
    data = load_longtailed(DatasetConfig(source=f"npz:{tmp_path / 'pool.npz'}", imbalance_ratio=4))
    assert data.manifest.selection_rule == "shuffle-source-ranks"
    assert data.class_counts == [10, 5, 2]
    assert "pool" in data.source.note
    with pytest.raises(LtrankError, match=r"class 1 \('b'\) needs 7 training images but the source holds 5"):
        load_longtailed(DatasetConfig(source=f"npz:{tmp_path / 'pool.npz'}", imbalance_ratio=2))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(class_names=None), "missing key.*class_names"),
        (dict(train_images=np.zeros((80, 8, 8), np.uint8)), r"train_images must be uint8 \[N, H, W, 3\]"),
        (dict(train_images=np.zeros((80, 8, 8, 3), np.float32)), "train_images must be uint8"),
        (dict(train_labels=np.arange(79)), "train_labels must be integers, one per image"),
        (dict(test_labels=np.full(12, 9)), r"test_labels must lie in 0..3"),
        (dict(test_images=np.zeros((12, 9, 9, 3), np.uint8)), "train images are .* but test images are"),
        (dict(class_names=np.asarray(["a", "a", "b", "c"])), "duplicates"),
    ],
)
def test_mismatched_npz_is_one_line_naming_file_and_problem(tmp_path, change, message):
    arrays = write_npz(tmp_path / "x.npz")
    arrays.update(change)
    np.savez(tmp_path / "x.npz", **{k: v for k, v in arrays.items() if v is not None})
    with pytest.raises(LtrankError, match=message) as info:
        load_longtailed(DatasetConfig(source=f"npz:{tmp_path / 'x.npz'}", imbalance_ratio=2))
    assert str(info.value).startswith(str(tmp_path / "x.npz")) and "\n" not in str(info.value)


def test_corrupt_or_missing_npz_file(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"this is not a zip archive")
    with pytest.raises(LtrankError, match=r"bad.npz: not an .npz archive \(not a zip file\)"):
        load_longtailed(DatasetConfig(source=f"npz:{tmp_path / 'bad.npz'}"))
    with pytest.raises(LtrankError, match="nope.npz: no such file"):
        load_longtailed(DatasetConfig(source="npz:nope.npz"), data_dir=tmp_path)
    # a plain .npy array under an .npz name: np.load would hand back an array, not an archive
    np.save(tmp_path / "array.npy", np.zeros((2, 4, 4, 3), np.uint8))
    (tmp_path / "array.npy").rename(tmp_path / "array.npz")
    with pytest.raises(LtrankError, match=r"array.npz: not an .npz archive \(not a zip file\)") as info:
        load_longtailed(DatasetConfig(source=f"npz:{tmp_path / 'array.npz'}"))
    assert "\n" not in str(info.value)
    with pytest.raises(LtrankError, match="a folder, not a file"):
        load_longtailed(DatasetConfig(source=f"npz:{tmp_path}"))


def test_cifar_pool_file_in_data_dir_is_used_when_torchvision_files_are_absent(tmp_path):
    labels = np.repeat(np.arange(10), [20 - c for c in range(10)]).astype(np.int64)
    ranks = np.concatenate([np.arange(20 - c) for c in range(10)])
    np.savez(
        tmp_path / "cifar10-lt-pool.npz",
        train_images=np.zeros((len(labels), 32, 32, 3), np.uint8),
        train_labels=labels,
        train_source_rank=ranks,
        test_images=np.zeros((10, 32, 32, 3), np.uint8),
        test_labels=np.arange(10),
        class_names=np.asarray([str(c) for c in range(10)]),
    )
    with pytest.raises(LtrankError, match="10 classes, largest with 20 images; cifar10 needs 10 classes and 5000"):
        load_longtailed(DatasetConfig(source="cifar10"), data_dir=tmp_path)


# ------------------------------------------------------------------ image folder
def test_image_folder_source(tmp_path):
    write_folder(tmp_path / "set", {"b_cat": (8, 2), "a_dog": (8, 2), "c_owl": (8, 1)})
    data = load_longtailed(DatasetConfig(source=f"folder:{tmp_path / 'set'}", imbalance_ratio=4))
    assert data.class_names == ["a_dog", "b_cat", "c_owl"]  # sorted folder names
    assert data.class_counts == [8, 4, 2]
    assert data.train_images.shape == (14, 3, 6, 5) and data.test_images.shape == (5, 3, 6, 5)
    assert data.test_labels.tolist() == [0, 0, 1, 1, 2]
    from PIL import Image

    first_kept = data.manifest.selected_indices[0][0]  # class a_dog rows are 0..7 in file order
    expected = np.array(Image.open(tmp_path / "set" / "train" / "a_dog" / f"{first_kept:03d}.png"))
    assert torch.equal(data.train_images[0], torch.from_numpy(expected).permute(2, 0, 1))
    again = load_longtailed(DatasetConfig(source=f"folder:{tmp_path / 'set'}", imbalance_ratio=4))
    assert again.source.fingerprint == data.source.fingerprint
    assert again.manifest == data.manifest


def test_image_folder_errors(tmp_path):
    write_folder(tmp_path / "a", {"x": (3, 1), "y": (3, 1)})
    write_folder(tmp_path / "a", {"z": (1, 0)}, size=(7, 5))
    with pytest.raises(LtrankError, match=r"z/000.png: image is 5x7 but earlier ones are 5x6; resize"):
        load_longtailed(DatasetConfig(source=f"folder:{tmp_path / 'a'}", imbalance_ratio=1.5))
    (tmp_path / "b" / "train" / "x").mkdir(parents=True)
    with pytest.raises(LtrankError, match=r"b/test: no such folder"):
        load_longtailed(DatasetConfig(source=f"folder:{tmp_path / 'b'}"))
    # images straight in train/ (no class sub-folders), or a single class folder
    write_folder(tmp_path / "flat", {"x": (2, 1)})
    for split in ("train", "test"):
        for png in (tmp_path / "flat" / split / "x").iterdir():
            png.rename(tmp_path / "flat" / split / png.name)
        (tmp_path / "flat" / split / "x").rmdir()
    with pytest.raises(LtrankError, match=r"flat/train: found 0 class folder\(s\), need at least 2") as info:
        load_longtailed(DatasetConfig(source=f"folder:{tmp_path / 'flat'}"))
    assert "\n" not in str(info.value)
    write_folder(tmp_path / "one", {"x": (2, 1)})
    with pytest.raises(LtrankError, match=r"one/train: found 1 class folder\(s\), need at least 2"):
        load_longtailed(DatasetConfig(source=f"folder:{tmp_path / 'one'}"))
    write_folder(tmp_path / "c", {"x": (2, 1), "y": (2, 1)})
    (tmp_path / "c" / "train" / "y" / "000.png").write_bytes(b"not a png")
    with pytest.raises(LtrankError, match=r"000.png: cannot decode image"):
        load_longtailed(DatasetConfig(source=f"folder:{tmp_path / 'c'}", imbalance_ratio=1))


def test_class_without_test_images_is_an_error(tmp_path):
    write_folder(tmp_path / "d", {"x": (3, 1), "y": (3, 0)})
    with pytest.raises(LtrankError, match=r"d/test/y: the folder of class 'y' holds no images; every class needs"):
        load_longtailed(DatasetConfig(source=f"folder:{tmp_path / 'd'}", imbalance_ratio=1))


# ------------------------------------------------------------------ issue 9: images load as they look, data messages
def _folder_config(root: Path, ratio: float = 1.0) -> DatasetConfig:
    return DatasetConfig(source=f"folder:{root}", imbalance_ratio=ratio)


def test_every_extension_pillow_reads_is_loaded(tmp_path):
    from PIL import Image

    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    lossless = ["png", "bmp", "tif", "tiff", "gif", "ppm", "webp", "TIF", "PNG"]
    for cls in ("x", "y"):
        for split in ("train", "test"):
            folder = tmp_path / "set" / split / cls
            folder.mkdir(parents=True)
            for i, ext in enumerate(lossless if split == "train" else ["png"]):
                image = Image.fromarray(pixels).quantize() if ext == "gif" else Image.fromarray(pixels)
                options = {"lossless": True} if ext == "webp" else {}
                image.save(folder / f"{i:02d}.{ext}", format={"tif": "TIFF", "ppm": "PPM"}.get(ext.lower(), None), **options)
            Image.fromarray(pixels).save(folder / "99.jpeg", quality=95)
            (folder / "notes.txt").write_text("not an image: ignored")
    data = load_longtailed(_folder_config(tmp_path / "set"))
    assert data.class_counts == [len(lossless) + 1] * 2  # each format once, plus the .jpeg
    rows = data.train_images.permute(0, 2, 3, 1).numpy()
    exact = [bool((row == pixels).all()) for row in rows]
    # the lossless formats give the pixels back exactly (GIF through its palette: 20 colours fit);
    # the JPEG is close
    assert sum(exact) == 2 * len(lossless)
    assert all(np.abs(row.astype(int) - pixels).max() <= 8 for row in rows)


def test_a_16_bit_grey_png_in_a_folder_is_not_all_white(tmp_path):
    from PIL import Image

    write_folder(tmp_path / "set", {"x": (1, 1), "y": (1, 1)}, size=(2, 2))
    grey = np.array([[0, 1000], [32768, 65535]], dtype=np.uint16)
    for split in ("train", "test"):
        Image.fromarray(grey).save(tmp_path / "set" / split / "x" / "000.png")
    data = load_longtailed(_folder_config(tmp_path / "set"))
    image = data.train_images[data.train_labels.tolist().index(0)]
    assert image.shape == (3, 2, 2) and (image[0] == image[1]).all() and (image[1] == image[2]).all()
    assert image[0].tolist() == [[0, 4], [128, 255]]  # Pillow's own conversion gives [[0, 255], [255, 255]]


def test_an_image_mode_without_an_rgb_view_is_refused_naming_the_file(tmp_path):
    from PIL import Image

    write_folder(tmp_path / "set", {"x": (2, 1), "y": (2, 1)}, size=(2, 2))
    Image.new("F", (2, 2), 0.25).save(tmp_path / "set" / "train" / "y" / "001.tif")
    with pytest.raises(LtrankError) as info:
        load_longtailed(_folder_config(tmp_path / "set"))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'set' / 'train' / 'y' / '001.tif'}: mode F (32-bit float) image")
    assert "\n" not in message


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_class_folder_is_named(tmp_path, split):
    write_folder(tmp_path / "set", {"a": (3, 1), "b": (3, 1), "c": (3, 1)})
    for file in (tmp_path / "set" / split / "b").iterdir():
        file.unlink()
    (tmp_path / "set" / split / "b" / "Thumbs.db").write_bytes(b"\0")  # not an image either
    with pytest.raises(LtrankError) as info:
        load_longtailed(_folder_config(tmp_path / "set", 2))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'set' / split / 'b'}: the folder of class 'b' holds no images")
    assert "ratio" not in message and "add some, or remove the class from both" in message


def test_a_class_folder_missing_from_test_is_named(tmp_path):
    write_folder(tmp_path / "set", {"a": (3, 1), "b": (3, 1)})
    for file in (tmp_path / "set" / "test" / "b").iterdir():
        file.unlink()
    (tmp_path / "set" / "test" / "b").rmdir()
    with pytest.raises(LtrankError, match=r"set/test/b: the folder of class 'b' is missing; every class needs"):
        load_longtailed(_folder_config(tmp_path / "set"))


def test_a_class_without_training_images_is_not_told_to_change_the_ratio(tmp_path):
    path = tmp_path / "gap.npz"
    write_npz(path, num_classes=3, per_class=6, test_per_class=2)
    with np.load(path) as archive:
        arrays = dict(archive)
    keep = arrays["train_labels"] != 1
    arrays["train_images"], arrays["train_labels"] = arrays["train_images"][keep], arrays["train_labels"][keep]
    np.savez(path, **arrays)
    with pytest.raises(LtrankError) as info:
        load_longtailed(DatasetConfig(source=f"npz:{path}", imbalance_ratio=2))
    message = str(info.value)
    assert "needs 4 training images but the source holds 0; no imbalance ratio can fix that" in message
    assert "use a larger imbalance ratio" not in message


class _FailingDownload:
    """Stands in for torchvision's CIFAR class: leaves a partial archive and folder, then fails."""

    def __init__(self, root: str, train: bool, download: bool) -> None:
        Path(root, "cifar-10-python.tar.gz").write_bytes(b"partial")
        Path(root, "cifar-10-batches-py").mkdir(exist_ok=True)
        Path(root, "cifar-10-batches-py", "data_batch_1").write_bytes(b"half")
        raise OSError("Connection reset by peer")


def test_a_failed_download_leaves_no_data_folder_behind(tmp_path, monkeypatch):
    monkeypatch.setattr("ltrank.data.sources._torchvision_class", lambda name: _FailingDownload)
    root = tmp_path / "cache" / "ltrank" / "data"
    with pytest.raises(LtrankError, match="the download failed \\(Connection reset by peer\\)"):
        load_longtailed(DatasetConfig(source="cifar10"), data_dir=root)
    assert not (tmp_path / "cache").exists()  # every folder the attempt created is gone


def test_a_failed_download_removes_only_what_it_created(tmp_path, monkeypatch):
    monkeypatch.setattr("ltrank.data.sources._torchvision_class", lambda name: _FailingDownload)
    root = tmp_path / "data"
    (root / "other").mkdir(parents=True)
    (root / "other" / "keep.txt").write_text("kept")
    (root / "mine.npz").write_bytes(b"the user's file")
    with pytest.raises(LtrankError, match="download failed"):
        load_longtailed(DatasetConfig(source="cifar10"), data_dir=root)
    assert sorted(p.name for p in root.iterdir()) == ["mine.npz", "other"]
    assert (root / "mine.npz").read_bytes() == b"the user's file" and (root / "other" / "keep.txt").is_file()
