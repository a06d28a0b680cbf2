"""List-based sources (issue 13): ImageNet-LT / Places-LT lists, iNaturalist 2018 JSON, split files,
streamed folders. Counts and class order per format, fingerprints, facts warnings, missing files."""

from __future__ import annotations

import json
import shutil

import pytest
from pydantic import ValidationError

from _streamfakes import imagenet_lt_tree, inat_tree, places_lt_tree, write_jpeg, write_split_tree
from ltrank.data import DatasetConfig, open_stream_source
from ltrank.data.splitfiles import FACTS, fact_warnings, read_list
from ltrank.errors import LtrankError


def cfg(source: str) -> DatasetConfig:
    return DatasetConfig(source=source, profile="asis")


# ----------------------------------------------------------------------------- the config
@pytest.mark.parametrize("given, canonical", [
    ("imagenet_lt: /data/ImageNet_LT ", "imagenet_lt:/data/ImageNet_LT"),
    ("places_lt:Places_LT", "places_lt:Places_LT"),
    ("inat2018:/d/inat", "inat2018:/d/inat"),
    ("splitfile: a.txt , b.txt @ /root", "splitfile:a.txt,b.txt@/root"),
    ("splitfile:a.txt,b.txt,c.txt", "splitfile:a.txt,b.txt,c.txt"),
])
def test_source_spellings_are_accepted_and_normalised(given, canonical):
    assert cfg(given).source == canonical


@pytest.mark.parametrize("bad, message", [
    ("splitfile:a.txt", "splitfile:TRAIN.txt,TEST.txt"),
    ("splitfile:a.txt,b.txt,c.txt,d.txt", "splitfile:TRAIN.txt,TEST.txt"),
    ("splitfile:a.txt,,c.txt", "splitfile:TRAIN.txt,TEST.txt"),
    ("splitfile:a.txt,b.txt@", "splitfile:TRAIN.txt,TEST.txt"),
    ("imagenet_lt:", "imagenet_lt: needs a path"),
    ("imagenet-lt:/x", "did you mean 'imagenet_lt'"),
])
def test_bad_source_spellings_say_how(bad, message):
    with pytest.raises(ValidationError, match=message):
        cfg(bad)


def test_image_size_is_bounded_and_optional():
    assert DatasetConfig(source="cifar10").image_size is None
    assert cfg("imagenet_lt:/x").model_copy(update={"image_size": 32}).image_size == 32
    with pytest.raises(ValidationError, match="image_size"):
        DatasetConfig(source="cifar10", image_size=4)


# ----------------------------------------------------------------------------- formats
def test_imagenet_lt_counts_order_splits_and_one_line_warning(tmp_path):
    root = imagenet_lt_tree(tmp_path / "inet", train=(12, 6, 3), val=(2, 2, 2), test=(3, 3, 3))
    source = open_stream_source(cfg(f"imagenet_lt:{root}"))
    assert source.kind == "imagenet_lt" and source.root == root
    assert source.class_counts == [12, 6, 3]
    assert source.class_names == ["0", "1", "2"]  # the lists carry no names
    assert (len(source.train), len(source.val), len(source.test)) == (21, 6, 9)
    # file order is kept: the first training line is class 0's first image
    assert source.train.path(0) == "train/c0/0000.jpg" and source.train.labels.tolist()[:12] == [0] * 12
    assert source.test.counts(3) == [3, 3, 3]
    (warning,) = source.warnings
    assert "\n" not in warning and "ImageNet-LT" in warning and "115,846" in warning and "classes 3 (published 1,000)" in warning
    info = source.info()
    assert (info.kind, info.fingerprint, info.note) == ("imagenet_lt", source.fingerprint, warning)


def test_places_lt_reads_its_own_list_names(tmp_path):
    root = places_lt_tree(tmp_path / "places", train=(8, 4, 2, 1))
    source = open_stream_source(cfg(f"places_lt:{root}"))
    assert source.class_counts == [8, 4, 2, 1] and source.val is not None
    assert "Places-LT" in source.warnings[0] and "62,500" in source.warnings[0]


def test_inat2018_names_from_categories_and_val2018_is_the_test_set(tmp_path):
    root = inat_tree(tmp_path / "inat", train=(5, 3, 2), test=(2, 2, 2))
    source = open_stream_source(cfg(f"inat2018:{root}"))
    assert source.class_names == ["Aves sp.", "Plantae x", "Fungi y"]
    assert source.class_counts == [5, 3, 2] and source.test.counts(3) == [2, 2, 2]
    assert source.val is None  # nothing to select on: val2018 is what everyone reports
    assert set(source.splits) == {"train", "test"}
    assert source.train.path(0).startswith("train_val2018/k0/")
    assert "iNaturalist 2018" in source.warnings[0]


def test_inat2018_labels_are_category_positions_in_id_order(tmp_path):
    root = tmp_path / "inat"
    root.mkdir()
    categories = [{"id": 9, "name": "nine"}, {"id": 2, "name": "two"}, {"id": 5}]  # unsorted, one unnamed
    for filename, image_ids in (("train2018.json", (0, 1, 2, 3)), ("val2018.json", (10, 11, 12))):
        cats = [9, 2, 5, 5][: len(image_ids)]
        doc = {"images": [{"id": i, "file_name": f"x/{i}.jpg"} for i in image_ids],
               "annotations": [{"id": i, "image_id": i, "category_id": c} for i, c in zip(image_ids, cats)],
               "categories": categories}
        (root / filename).write_text(json.dumps(doc))
    source = open_stream_source(cfg(f"inat2018:{root}"))
    assert source.class_names == ["two", "5", "nine"]
    assert source.train.labels.tolist() == [2, 0, 1, 1]


def test_splitfile_with_root_with_val_and_without_root(tmp_path):
    root = tmp_path / "mine"
    write_split_tree(root, {"train": (4, 2), "test": (1, 2), "val": (1, 1)}, "{split}.txt")
    with_root = open_stream_source(cfg(f"splitfile:train.txt,test.txt,val.txt@{root}"))
    assert with_root.class_counts == [4, 2] and with_root.val is not None and len(with_root.val) == 2
    assert with_root.warnings == ()  # no published facts to compare with
    without = open_stream_source(cfg(f"splitfile:{root / 'train.txt'},{root / 'test.txt'}"))
    assert without.root == root and without.val is None
    assert without.class_counts == [4, 2]


def test_streamed_folder_lists_sorted_classes_and_files(tmp_path):
    root = tmp_path / "pets"
    for cls, n in (("dog", 3), ("cat", 2)):
        for i in range(n):
            write_jpeg(root / "train" / cls / f"{i}.jpg", i)
        write_jpeg(root / "test" / cls / "0.jpg", 9)
    source = open_stream_source(cfg(f"folder:{root}"))
    assert source.kind == "folder" and source.class_names == ["cat", "dog"]
    assert source.class_counts == [2, 3] and source.train.path(0) == "train/cat/0.jpg"
    assert source.val is None


# ----------------------------------------------------------------------------- fingerprints
def test_fingerprint_hashes_the_lists_not_the_images_nor_the_root(tmp_path):
    root = imagenet_lt_tree(tmp_path / "a")
    first = open_stream_source(cfg(f"imagenet_lt:{root}")).fingerprint
    write_jpeg(root / "train" / "c0" / "0000.jpg", 12345)  # other pixels, same lists
    assert open_stream_source(cfg(f"imagenet_lt:{root}")).fingerprint == first
    moved = tmp_path / "b"
    shutil.copytree(root, moved)
    assert open_stream_source(cfg(f"imagenet_lt:{moved}")).fingerprint == first
    lines = (moved / "ImageNet_LT_test.txt").read_text().splitlines()
    lines[0] = lines[0].rsplit(" ", 1)[0] + " 1"  # one test label changed
    (moved / "ImageNet_LT_test.txt").write_text("\n".join(lines) + "\n")
    assert open_stream_source(cfg(f"imagenet_lt:{moved}")).fingerprint != first


# ----------------------------------------------------------------------------- the published facts
def _published_shape_lists(root, kind):
    """Lists (no images) with exactly the published counts of ``kind``."""
    facts = FACTS[kind]
    c = facts.num_classes
    rest = facts.train_images - facts.train_largest - facts.train_smallest
    base, extra = divmod(rest, c - 2)
    train = [facts.train_largest] + [base + 1] * extra + [base] * (c - 2 - extra) + [facts.train_smallest]
    names = {"imagenet_lt": "ImageNet_LT_{}.txt", "places_lt": "Places_LT_{}.txt"}[kind]
    for split, counts in (("train", train), ("val", [facts.val_per_class] * c), ("test", [facts.test_per_class] * c)):
        text = "".join(f"{split}/{label}/{i}.jpg {label}\n" for label, n in enumerate(counts) for i in range(n))
        (root / names.format(split)).write_text(text)
    return train


@pytest.mark.parametrize("kind", ["imagenet_lt", "places_lt"])
def test_published_counts_load_without_warning(tmp_path, kind):
    train = _published_shape_lists(tmp_path, kind)
    source = open_stream_source(cfg(f"{kind}:{tmp_path}"))  # lists only: no image is opened
    assert source.warnings == () and fact_warnings(source) == []
    assert source.class_counts == train and len(source.train) == FACTS[kind].train_images


# ----------------------------------------------------------------------------- problems
def test_missing_list_names_the_file_and_where_it_looked(tmp_path):
    root = imagenet_lt_tree(tmp_path / "inet")
    (root / "ImageNet_LT_val.txt").unlink()
    with pytest.raises(LtrankError) as info:
        open_stream_source(cfg(f"imagenet_lt:{root}"))
    message = str(info.value)
    assert "\n" not in message
    assert "ImageNet_LT_val.txt not found" in message and f"looked in {root}" in message


def test_missing_root_and_missing_inat_json(tmp_path):
    with pytest.raises(LtrankError, match=r"folder 'nowhere-xyz' not found \(looked at .*nowhere-xyz and "):
        open_stream_source(cfg("places_lt:nowhere-xyz"), data_dir=tmp_path)
    root = inat_tree(tmp_path / "inat")
    (root / "val2018.json").unlink()
    with pytest.raises(LtrankError, match=f"val2018.json not found \\(looked in {root}\\)"):
        open_stream_source(cfg(f"inat2018:{root}"))


def test_relative_root_is_found_in_the_data_dir(tmp_path):
    imagenet_lt_tree(tmp_path / "ImageNet_LT")
    source = open_stream_source(cfg("imagenet_lt:ImageNet_LT"), data_dir=tmp_path)
    assert source.root == tmp_path / "ImageNet_LT"


@pytest.mark.parametrize("line, message", [
    ("train/a.jpg", "expected 'relative/path.jpg label'"),
    ("train/a.jpg -1", "expected 'relative/path.jpg label'"),
    ("train/a.jpg x", "expected 'relative/path.jpg label'"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    file = tmp_path / "list.txt"
    file.write_text(f"# comment\nok/1.jpg 0\n\n{line}\n")
    with pytest.raises(LtrankError, match=f"list.txt:4: {message}"):
        read_list(file, "train")


def test_paths_with_spaces_keep_them(tmp_path):
    file = tmp_path / "list.txt"
    file.write_text("my photos/a b.jpg 3\n")
    assert read_list(file, "train") == (["my photos/a b.jpg"], [3])


def test_class_without_training_images_is_an_error(tmp_path):
    root = tmp_path / "gap"
    write_split_tree(root, {"train": (2, 0, 2), "test": (1, 1, 1)}, "{split}.txt")
    with pytest.raises(LtrankError, match="class 1 has no train images"):
        open_stream_source(cfg(f"splitfile:train.txt,test.txt@{root}"))


def test_bad_inat_json_is_one_line(tmp_path):
    root = tmp_path / "inat"
    root.mkdir()
    (root / "train2018.json").write_text(json.dumps({"images": []}))
    (root / "val2018.json").write_text("{}")
    with pytest.raises(LtrankError, match="not a COCO-style classification file"):
        open_stream_source(cfg(f"inat2018:{root}"))
