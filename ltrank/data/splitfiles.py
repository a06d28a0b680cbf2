"""Large long-tailed sources given as lists of image files, read without opening an image.

``imagenet_lt:ROOT`` and ``places_lt:ROOT`` read the standard split lists (lines
``relative/path label``), ``inat2018:ROOT`` the official COCO-style ``train2018.json`` /
``val2018.json``, ``splitfile:TRAIN,TEST[,VAL][@ROOT]`` any such lists, and a ``folder:`` tree
that is streamed is listed the same way. :func:`open_stream_source` returns a
:class:`StreamSource`: per split the image paths (relative to the root) and labels, the class
names where the format has them, a fingerprint of the lists, and warnings (as data: library code
never prints) where the counts differ from the published split. The images themselves are
decoded later, one at a time, by :mod:`ltrank.data.streaming`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltrank.data.config import DatasetConfig, SourceInfo, parse_splitfile, source_kind
from ltrank.data.images import readable_suffixes
from ltrank.data.sources import _user_path, resolve_data_dir
from ltrank.errors import LtrankError


@dataclass(frozen=True)
class SplitList:
    """One split: image paths relative to the source root and their labels.

    ``paths`` is a numpy bytes array (UTF-8): worker processes share it without the reference
    counting that makes a Python list of strings get copied page by page after a fork.
    """

    name: str  # 'train', 'val' or 'test'
    origin: str  # the list file (or folder) it was read from, for messages
    paths: np.ndarray  # dtype 'S<n>' [N]
    labels: np.ndarray  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, index: int) -> str:
        return self.paths[index].decode("utf-8")

    def counts(self, num_classes: int) -> list[int]:
        """Images per class (label order)."""
        return [int(n) for n in np.bincount(self.labels, minlength=num_classes)]


@dataclass(frozen=True)
class StreamSource:
    """A source read from lists: splits, class names, fingerprint, and warnings to show and record.

    ``val`` is the split used for anything that selects (best epoch, hyperparameters); it is
    None where the source has none (``inat2018``, whose val2018 is the test set, and lists or
    folders given without one): then nothing may be selected, and runs report their final epoch.
    """

    name: str  # the DatasetConfig.source
    kind: str  # 'imagenet_lt', 'places_lt', 'inat2018', 'splitfile' or 'folder'
    root: Path  # image paths are relative to this folder
    train: SplitList
    test: SplitList
    val: SplitList | None
    class_names: list[str]
    fingerprint: str
    warnings: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_counts(self) -> list[int]:
        """Training images per class: the counts the losses and the groups use."""
        return self.train.counts(self.num_classes)

    @property
    def splits(self) -> dict[str, SplitList]:
        """The splits present, by name."""
        out = {"train": self.train, "test": self.test}
        if self.val is not None:
            out["val"] = self.val
        return out

    def info(self) -> SourceInfo:
        """The record's description of the source; the warnings go into its note."""
        return SourceInfo(name=self.name, kind=self.kind, path=str(self.root), fingerprint=self.fingerprint,
                          note="; ".join(self.warnings))


# ----------------------------------------------------------------------------- published facts
@dataclass(frozen=True)
class SplitFacts:
    """The published sizes of a benchmark split; ``None`` where the literature gives no single number."""

    label: str
    num_classes: int
    train_images: int
    train_largest: int | None
    train_smallest: int | None
    val_per_class: int | None
    test_per_class: int


#: Facts of the published splits (Liu et al., OLTR, CVPR 2019; Van Horn et al., iNaturalist 2018).
FACTS = {
    "imagenet_lt": SplitFacts("ImageNet-LT", 1000, 115_846, 1280, 5, 20, 50),
    "places_lt": SplitFacts("Places-LT", 365, 62_500, 4980, 5, 20, 100),
    "inat2018": SplitFacts("iNaturalist 2018", 8142, 437_513, None, None, None, 3),
}
#: The list files of the two text-list benchmarks, per split.
LIST_FILES = {
    "imagenet_lt": {"train": "ImageNet_LT_train.txt", "val": "ImageNet_LT_val.txt", "test": "ImageNet_LT_test.txt"},
    "places_lt": {"train": "Places_LT_train.txt", "val": "Places_LT_val.txt", "test": "Places_LT_test.txt"},
}
#: iNaturalist 2018's annotation files: val2018 is the test set everyone reports.
INAT_FILES = {"train": "train2018.json", "test": "val2018.json"}


def fact_warnings(source: StreamSource) -> list[str]:
    """At most one line saying how ``source`` differs from its published split (none: [])."""
    facts = FACTS.get(source.kind)
    if facts is None:
        return []
    counts = source.class_counts
    diffs = []

    def differs(what: str, expected: int | None, found: int) -> None:
        if expected is not None and expected != found:
            diffs.append(f"{what} {found:,} (published {expected:,})")

    differs("classes", facts.num_classes, source.num_classes)
    differs("training images", facts.train_images, len(source.train))
    differs("largest class", facts.train_largest, max(counts))
    differs("smallest class", facts.train_smallest, min(counts))
    for split, per_class in (("val", facts.val_per_class), ("test", facts.test_per_class)):
        chosen = source.splits.get(split)
        if per_class is None or chosen is None:
            continue
        found = sorted(set(chosen.counts(source.num_classes)))
        if found != [per_class]:
            shown = f"{found[0]:,}" if len(found) == 1 else f"{found[0]:,}..{found[-1]:,}"
            diffs.append(f"{split} images per class {shown} (published {per_class})")
    if not diffs:
        return []
    return [f"{source.name}: the lists differ from the published {facts.label} split ({'; '.join(diffs)}); "
            "fine for tests and subsets, but do not set the numbers beside published ones"]


# ----------------------------------------------------------------------------- reading lists
def read_list(file: Path, split: str) -> tuple[list[str], list[int]]:
    """Parse ``relative/path label`` lines (blank lines and ``#`` comments skipped).

    A path may contain spaces: the label is the last field. Raises LtrankError naming the file
    and line of the first malformed entry.
    """
    paths: list[str] = []
    labels: list[int] = []
    try:
        with open(file, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                parts = text.rsplit(None, 1)
                if len(parts) != 2 or not (parts[1].isascii() and parts[1].isdigit()):
                    raise LtrankError(
                        f"{file}:{lineno}: expected 'relative/path.jpg label' with a label >= 0, got {text[:80]!r}"
                    )
                paths.append(parts[0])
                labels.append(int(parts[1]))
    except UnicodeDecodeError:
        raise LtrankError(f"{file}: not a UTF-8 text list of 'relative/path label' lines") from None
    if not paths:
        raise LtrankError(f"{file}: the {split} list is empty; it needs one 'relative/path label' line per image")
    return paths, labels


def _split(name: str, origin: Path | str, paths: Sequence[str], labels: Sequence[int]) -> SplitList:
    encoded = np.array([p.encode("utf-8") for p in paths], dtype=np.bytes_)
    return SplitList(name, str(origin), encoded, np.asarray(labels, dtype=np.int64))


def _require_file(file: Path, source: str, needs: str) -> Path:
    if not file.is_file():
        where = "it is a folder" if file.is_dir() else f"looked in {file.parent}"
        raise LtrankError(f"{source}: {file.name} not found ({where}); {needs}")
    return file


def _require_root(raw: str, source: str, data_dir: Path, needs: str) -> Path:
    root = _user_path(raw, data_dir)
    if not root.is_dir():
        places = f"{root}" if root.is_absolute() else f"{Path.cwd() / root} and {data_dir / raw}"
        raise LtrankError(f"{source}: folder {raw!r} not found (looked at {places}); {needs}")
    return root


def _list_source(cfg: DatasetConfig, kind: str, data_dir: Path) -> StreamSource:
    files = LIST_FILES[kind]
    needs = f"{FACTS[kind].label} needs {', '.join(files.values())} in that folder (the OLTR / Decoupling split lists)"
    root = _require_root(cfg.source.partition(":")[2], cfg.source, data_dir, needs)
    splits = {}
    for split, filename in files.items():
        file = _require_file(root / filename, cfg.source, needs)
        splits[split] = _split(split, file, *read_list(file, split))
    return _finish(cfg.source, kind, root, splits, class_names=None)


def _splitfile_source(cfg: DatasetConfig, data_dir: Path) -> StreamSource:
    lists, raw_root = parse_splitfile(cfg.source.partition(":")[2])
    needs = "give 'splitfile:TRAIN.txt,TEST.txt[,VAL.txt][@ROOT]' with lists relative to ROOT (or absolute)"
    if raw_root is not None:
        root = _require_root(raw_root, cfg.source, data_dir, needs)
        files = [Path(f) if Path(f).is_absolute() else root / f for f in lists]
    else:
        files = [_user_path(f, data_dir) for f in lists]
        root = files[0].parent
    splits = {}
    for split, file in zip(("train", "test", "val"), files):
        _require_file(file, cfg.source, needs)
        splits[split] = _split(split, file, *read_list(file, split))
    return _finish(cfg.source, "splitfile", root, splits, class_names=None)


def _inat_source(cfg: DatasetConfig, data_dir: Path) -> StreamSource:
    needs = "iNaturalist 2018 needs the official train2018.json and val2018.json there"
    root = _require_root(cfg.source.partition(":")[2], cfg.source, data_dir, needs)
    splits, names = {}, None
    for split, filename in INAT_FILES.items():
        file = _require_file(root / filename, cfg.source, needs)
        paths, labels, categories = read_coco_json(file)
        names = names or categories
        splits[split] = _split(split, file, paths, labels)
    return _finish(cfg.source, "inat2018", root, splits, class_names=names)


def read_coco_json(file: Path) -> tuple[list[str], list[int], list[str]]:
    """Image file names, labels and class names of a COCO-style classification file.

    Labels are the positions of the category ids in ascending order (iNaturalist 2018's ids
    already run 0..8141, so they are the ids); a category without ``name`` is named by its id.
    """
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        images = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
        categories = sorted(data["categories"], key=lambda c: int(c["id"]))
        position = {int(c["id"]): i for i, c in enumerate(categories)}
        paths, labels = [], []
        for ann in data["annotations"]:
            paths.append(images[int(ann["image_id"])])
            labels.append(position[int(ann["category_id"])])
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise LtrankError(f"{file}: not readable JSON ({str(exc).splitlines()[0]})") from None
    except (KeyError, TypeError) as exc:
        raise LtrankError(
            f"{file}: not a COCO-style classification file (bad or missing {exc}); it needs 'images' "
            "(id, file_name), 'annotations' (image_id, category_id) and 'categories' (id, name)"
        ) from None
    if not paths:
        raise LtrankError(f"{file}: no annotations")
    names = [str(c.get("name", c["id"])) for c in categories]
    return paths, labels, names


def list_folder(root: Path, source: str) -> StreamSource:
    """``root/{train,test}/<class>/*`` (and ``root/val/<class>/*`` if present) as lists.

    Classes are the sorted sub-folder names of ``train``, files in sorted name order, as the
    in-memory folder reader; only the names are read, so images may differ in size.
    """
    train_dir = root / "train"
    if not train_dir.is_dir() or not (root / "test").is_dir():
        raise LtrankError(f"{root}: an image folder needs train/<class>/ and test/<class>/ sub-folders")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise LtrankError(f"{train_dir}: found {len(classes)} class folder(s), need at least 2")
    splits = {}
    for split in ("train", "test", "val"):
        split_dir = root / split
        if split == "val" and not split_dir.is_dir():
            continue
        extra = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and p.name not in classes)
        if extra:
            raise LtrankError(f"{split_dir}: class folder(s) {', '.join(extra)} have no counterpart in {train_dir}")
        paths, labels = [], []
        for label, cls in enumerate(classes):
            folder = split_dir / cls
            if folder.is_dir():
                for file in sorted(p.name for p in folder.iterdir() if p.suffix.lower() in readable_suffixes()):
                    paths.append(f"{split}/{cls}/{file}")
                    labels.append(label)
        if not paths:
            raise LtrankError(f"{split_dir}: no .png/.jpg images found in its class folders")
        splits[split] = _split(split, split_dir, paths, labels)
    return _finish(source, "folder", root, splits, class_names=classes)


def _finish(name: str, kind: str, root: Path, splits: dict[str, SplitList],
            class_names: list[str] | None) -> StreamSource:
    """Check the labels, name the classes, fingerprint the lists, compare with the facts."""
    num_classes = max(int(s.labels.max()) for s in splits.values()) + 1
    if class_names is not None:
        if num_classes > len(class_names):
            raise LtrankError(f"{name}: labels run to {num_classes - 1} but only {len(class_names)} classes are named")
        num_classes = len(class_names)
    for split in ("train", "test"):
        present = np.bincount(splits[split].labels, minlength=num_classes)
        if (present == 0).any():
            missing = int(np.flatnonzero(present == 0)[0])
            raise LtrankError(
                f"{splits[split].origin}: class {missing} has no {split} images; labels must run 0..{num_classes - 1} "
                f"and every class needs {split} images"
            )
    names = class_names if class_names is not None else [str(c) for c in range(num_classes)]
    fingerprint = lists_fingerprint(splits, names)
    source = StreamSource(name, kind, root, splits["train"], splits["test"], splits.get("val"), names, fingerprint)
    return dataclasses.replace(source, warnings=tuple(fact_warnings(source)))


def lists_fingerprint(splits: dict[str, SplitList], class_names: Sequence[str]) -> str:
    """sha256 over each split's name, size, paths and labels, then the class names (not the images,
    not the root: moving the data keeps the fingerprint)."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        split = splits[name]
        digest.update(f"{name} {len(split)}\n".encode())
        digest.update(b"\n".join(split.paths.tolist()))
        digest.update(b"\n" + split.labels.astype("<i8").tobytes())
    digest.update("\n".join(class_names).encode("utf-8"))
    return digest.hexdigest()


# ----------------------------------------------------------------------------- entry point
def open_stream_source(cfg: DatasetConfig, data_dir: Path | str | None = None) -> StreamSource:
    """Read the lists of a streamed source (``cfg.source`` of a kind in ``STREAM_KINDS``, or a
    ``folder:``); raises LtrankError for a missing file (naming it and where it looked) or a
    malformed list."""
    root_dir = resolve_data_dir(data_dir)
    kind = source_kind(cfg.source)
    if kind in LIST_FILES:
        return _list_source(cfg, kind, root_dir)
    if kind == "inat2018":
        return _inat_source(cfg, root_dir)
    if kind == "splitfile":
        return _splitfile_source(cfg, root_dir)
    if kind == "folder":
        raw = cfg.source.partition(":")[2]
        root = _require_root(raw, cfg.source, root_dir, "an image folder needs train/<class>/ and test/<class>/")
        return list_folder(root, cfg.source)
    raise LtrankError(f"{cfg.source}: not a streamed source; CIFAR and npz image sets are held in memory")
