"""The streaming pipeline (issue 13): decoding every image mode to 8-bit RGB, the train/test
transforms, determinism across worker counts and on resume, failing images skipped and counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _streamfakes import imagenet_lt_tree, write_jpeg
from ltrank.data import DatasetConfig, make_loader, open_stream_source
from ltrank.data.streaming import (
    DecodeFailures,
    EpochSampler,
    Failure,
    StreamingDataset,
    collate_skipping,
    decode_rgb8,
    normalize_imagenet,
    eval_resize,
    eval_transform,
    train_transform,
)
from ltrank.data.images import to_rgb8
from ltrank.errors import LtrankError

SIZE = 16
# torchvision 0.29 deprecates its image decoders in favour of TorchCodec; they still work (docs/data.md).
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return imagenet_lt_tree(tmp_path_factory.mktemp("inet"), train=(10, 6, 4), val=(2, 2, 2), test=(3, 3, 3))


def config(root, **extra) -> DatasetConfig:
    return DatasetConfig(source=f"imagenet_lt:{root}", profile="asis", image_size=SIZE, **extra)


def batches(loader, epoch):
    loader.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


# ----------------------------------------------------------------------------- decoding
def _pil_reference(path):
    from PIL import Image

    with Image.open(path) as handle:
        return torch.from_numpy(np.array(handle.convert("RGB"))).permute(2, 0, 1)


@pytest.mark.parametrize("mode, suffix", [("RGB", ".png"), ("L", ".png"), ("P", ".png"), ("RGBA", ".png"),
                                          ("LA", ".png"), ("RGB", ".bmp"), ("RGB", ".tif"), ("1", ".png")])
def test_every_mode_decodes_to_the_same_rgb8_as_pillow(tmp_path, mode, suffix):
    from PIL import Image

    rng = np.random.RandomState(0)
    image = Image.fromarray(rng.randint(0, 256, (7, 9, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / f"x{suffix}"
    image.save(path)
    decoded = decode_rgb8(path)
    assert decoded.dtype == torch.uint8 and decoded.shape == (3, 7, 9)
    assert torch.equal(decoded, _pil_reference(path))  # lossless formats: exactly Pillow's RGB


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGB"])
def test_jpeg_modes_come_out_rgb8(tmp_path, mode):
    from PIL import Image

    rng = np.random.RandomState(1)
    path = tmp_path / "x.jpg"
    Image.fromarray(rng.randint(0, 256, (16, 12, 3), dtype=np.uint8)).convert(mode).save(path, quality=95)
    decoded = decode_rgb8(path)
    assert decoded.dtype == torch.uint8 and decoded.shape == (3, 16, 12)
    if mode != "CMYK":  # Adobe CMYK inversion conventions differ between decoders
        assert (decoded.int() - _pil_reference(path).int()).abs().max() <= 2


def test_sixteen_bit_grey_is_scaled_to_eight_bits(tmp_path):
    from PIL import Image

    values = np.array([[0, 257, 65535], [32896, 128 * 257, 1]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    decoded = decode_rgb8(path)
    expected = np.round(values / 257.0).astype(np.uint8)
    for channel in decoded:
        assert channel.numpy().tolist() == expected.tolist()
    with Image.open(path) as handle:  # the one mode conversion, which the folder loader uses too
        assert to_rgb8(handle)[:, :, 0].tolist() == expected.tolist()


@pytest.mark.parametrize("content, reason", [(b"not an image at all", "cannot identify"), (b"", "empty file")])
def test_undecodable_files_raise(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises((OSError, RuntimeError, ValueError), match=reason):
        decode_rgb8(path)
    with pytest.raises(FileNotFoundError):
        decode_rgb8(tmp_path / "missing.jpg")


# ----------------------------------------------------------------------------- transforms
def test_train_and_test_transforms_give_the_crop_size():
    image = torch.randint(0, 256, (3, 30, 45), dtype=torch.uint8)
    assert train_transform(SIZE, 0.4)(image).shape == (3, SIZE, SIZE)
    assert eval_transform(SIZE)(image).shape == (3, SIZE, SIZE)
    assert (eval_resize(224), eval_resize(16), eval_resize(32)) == (256, 18, 36)


def test_test_transform_is_resize_then_centre_crop():
    from torchvision.transforms.v2 import functional as F

    image = torch.randint(0, 256, (3, 30, 45), dtype=torch.uint8)
    resized = F.resize(image, [18, 27], antialias=True)  # shorter side 30 -> 18, aspect kept
    # torchvision rounds the left offset (27 - 16) / 2 = 5.5 to 6
    assert torch.equal(eval_transform(SIZE)(image), resized[:, 1:17, 6:22])


def test_normalize_uses_imagenet_statistics():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(2, 3, 16, 16)
    out = normalize_imagenet(x)
    assert out.dtype == torch.float32 and out.shape == x.shape
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    reference = (x.double() / 255 - mean) / std  # written out, float64
    torch.testing.assert_close(out.double(), reference, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- determinism
def test_same_batches_for_any_worker_count(tree):
    cfg = config(tree, color_jitter=0.4)
    source = open_stream_source(cfg)
    runs = []
    for workers in (0, 1, 2):
        loader = make_loader(source, "train", cfg, seed=3, batch_size=4, num_workers=workers, device="cpu")
        runs.append([batches(loader, epoch) for epoch in (1, 2)])
    assert len(runs[0][0]) == 5  # 20 images, batch 4, drop_last
    assert same(runs[0][0], runs[1][0]) and same(runs[0][0], runs[2][0])
    assert same(runs[0][1], runs[2][1])
    assert not same(runs[0][0], runs[0][1])  # another epoch: another order and other crops


def test_resume_at_epoch_k_sees_the_uninterrupted_epoch_k(tree):
    cfg = config(tree)
    source = open_stream_source(cfg)
    straight = make_loader(source, "train", cfg, seed=0, batch_size=4, num_workers=0, device="cpu")
    epochs = [batches(straight, e) for e in (1, 2, 3)]
    resumed = make_loader(source, "train", cfg, seed=0, batch_size=4, num_workers=2, device="cpu")
    assert same(batches(resumed, 3), epochs[2])
    other_seed = make_loader(source, "train", cfg, seed=1, batch_size=4, num_workers=0, device="cpu")
    assert not same(batches(other_seed, 3), epochs[2])


def test_a_sample_depends_only_on_seed_epoch_and_index(tree):
    cfg = config(tree)
    source = open_stream_source(cfg)
    loader = make_loader(source, "train", cfg, seed=5, batch_size=4, num_workers=0, device="cpu")
    loader.set_epoch(2)
    order = loader.sampler.order()
    x, _ = next(iter(loader))
    alone = StreamingDataset(source.root, source.train, train_transform(SIZE), seed=5)
    for row, index in enumerate(order[:4].tolist()):
        image, label, idx = alone[(index, 2)]
        assert idx == index and label == source.train.labels[index]
        assert torch.equal(normalize_imagenet(image[None])[0], x[row])


def test_training_leaves_torchs_global_generator_alone(tree):
    cfg = config(tree, color_jitter=0.4)
    loader = make_loader(open_stream_source(cfg), "train", cfg, seed=0, batch_size=4, num_workers=0, device="cpu")
    before = torch.get_rng_state()
    batches(loader, 1)
    assert torch.equal(torch.get_rng_state(), before)


def test_epoch_sampler_order_is_a_permutation_or_class_aware_draws():
    labels = np.array([0] * 8 + [1] * 2)
    sampler = EpochSampler(labels, seed=0)
    sampler.set_epoch(4)
    keys = list(sampler)
    assert sorted(i for i, _ in keys) == list(range(10)) and {e for _, e in keys} == {4}
    aware = EpochSampler(labels, seed=0, class_aware=True)
    aware.set_epoch(4)
    draws = aware.order()
    assert len(draws) == 10 and torch.equal(draws, aware.order())  # same epoch, same draws
    many = EpochSampler(labels, seed=0, class_aware=True)
    picked = torch.cat([(many.set_epoch(e), many.order())[1] for e in range(1, 201)])
    share_minority = (torch.as_tensor(labels)[picked] == 1).double().mean().item()
    assert 0.45 < share_minority < 0.55  # classes equally often, not 20% as in the data


def test_evaluation_loader_keeps_file_order_and_every_sample(tree):
    cfg = config(tree)
    source = open_stream_source(cfg)
    loader = make_loader(source, "test", cfg, seed=0, batch_size=4, num_workers=2, device="cpu")
    ys = torch.cat([y for _, y in loader])
    assert ys.tolist() == source.test.labels.tolist()  # 9 images: batches of 4, 4, 1
    again = torch.cat([x for x, _ in loader])
    reference = torch.stack([normalize_imagenet(eval_transform(SIZE)(decode_rgb8(tree / p.decode()))[None])[0]
                             for p in source.test.paths])
    assert torch.equal(again, reference)


def test_missing_split_is_one_line(tree, tmp_path):
    from _streamfakes import inat_tree

    root = inat_tree(tmp_path / "inat")
    cfg = DatasetConfig(source=f"inat2018:{root}", profile="asis", image_size=SIZE)
    with pytest.raises(LtrankError, match="no 'val' split \\(it has train, test\\)"):
        make_loader(open_stream_source(cfg), "val", cfg, seed=0, batch_size=2, num_workers=0, device="cpu")


# ----------------------------------------------------------------------------- failing images
def test_corrupt_and_missing_images_are_listed_once_skipped_and_counted(tmp_path):
    root = imagenet_lt_tree(tmp_path / "inet", train=(4, 4), val=(1, 1), test=(1, 1))
    (root / "train" / "c0" / "0001.jpg").write_bytes(b"\xff\xd8 truncated garbage")
    (root / "train" / "c1" / "0002.jpg").unlink()
    cfg = config(root)
    loader = make_loader(open_stream_source(cfg), "train", cfg, seed=0, batch_size=8, num_workers=2, device="cpu")
    for epoch in (1, 2):
        (x, y), = batches(loader, epoch)  # one batch of 8 draws, 2 dropped
        assert x.shape == (6, 3, SIZE, SIZE) and len(y) == 6
        new = loader.new_failures()
        assert len(new) == (2 if epoch == 1 else 0)  # listed once
    paths = sorted(f.path for f in loader.failures.listed.values())
    assert paths == [str(root / "train/c0/0001.jpg"), str(root / "train/c1/0002.jpg")]
    record = loader.failures.as_record()
    assert record["skipped_samples"] == 4 and len(record["files"]) == 2
    missing = next(f for f in record["files"] if f["path"].endswith("0002.jpg"))
    assert missing["reason"].startswith("FileNotFoundError")


def test_a_batch_whose_samples_all_fail_is_not_yielded(tmp_path):
    root = imagenet_lt_tree(tmp_path / "inet", train=(2, 2), val=(1, 1), test=(1, 1))
    for label in (0, 1):
        for i in range(2):
            (root / "train" / f"c{label}" / f"{i:04d}.jpg").write_bytes(b"junk")
    cfg = config(root)
    loader = make_loader(open_stream_source(cfg), "train", cfg, seed=0, batch_size=2, num_workers=0, device="cpu")
    assert len(loader) == 2 and batches(loader, 1) == []
    assert loader.failures.skipped == 4 and len(loader.failures.listed) == 4


def test_collate_drops_failures_and_keeps_them_beside_the_batch():
    good = (torch.zeros(3, 2, 2, dtype=torch.uint8), 1, 7)
    bad = Failure(3, "/x.jpg", "OSError: nope")
    batch = collate_skipping([good, bad, good])
    assert batch.images.shape == (2, 3, 2, 2) and batch.labels.tolist() == [1, 1]
    assert batch.indices.tolist() == [7, 7] and batch.failures == [bad]
    empty = collate_skipping([bad])
    assert len(empty.labels) == 0 and empty.failures == [bad]
    failures = DecodeFailures()
    assert failures.add([bad, bad]) == [bad] and failures.add([bad]) == [] and failures.skipped == 3


def test_decoded_sizes_may_differ_within_a_batch(tmp_path):
    root = tmp_path / "mixed"
    lines = []
    for i, size in enumerate([(20, 30), (41, 17), (64, 64), (9, 50)]):
        write_jpeg(root / f"{i}.jpg", i, size)
        lines.append(f"{i}.jpg {i % 2}")
    (root / "train.txt").write_text("\n".join(lines))
    (root / "test.txt").write_text("\n".join(lines))
    cfg = DatasetConfig(source=f"splitfile:train.txt,test.txt@{root}", profile="asis", image_size=SIZE)
    loader = make_loader(open_stream_source(cfg), "train", cfg, seed=0, batch_size=4, num_workers=0, device="cpu")
    (x, _), = batches(loader, 1)
    assert x.shape == (4, 3, SIZE, SIZE) and x.dtype == torch.float32
