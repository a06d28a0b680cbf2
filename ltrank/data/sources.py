"""Reading image sources into memory: torchvision CIFAR, .npz image sets, image folders.

Every loader returns a :class:`RawSource` with uint8 images in [N, 3, H, W] layout and int64
labels; nothing here knows about long tails. Problems a user can fix become one-line
:class:`~ltrank.errors.LtrankError` messages naming the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltrank.data.config import STREAM_KINDS, DatasetConfig, SourceInfo
from ltrank.data.images import readable_suffixes, to_rgb8
from ltrank.errors import LtrankError

DATA_DIR_ENV = "LTRANK_DATA_DIR"

#: Registered CIFAR sources: torchvision folder, offline pool file, images per class in the full set.
_CIFAR = {
    "cifar10": ("cifar-10-batches-py", "cifar10-lt-pool.npz", 5000),
    "cifar100": ("cifar-100-python", "cifar100-lt-pool.npz", 500),
}


@dataclass(frozen=True)
class RawSource:
    """A whole source in memory. ``train_ranks`` is set for pools (see longtail.select_indices)."""

    train_images: np.ndarray  # uint8 [N, 3, H, W]
    train_labels: np.ndarray  # int64 [N]
    test_images: np.ndarray  # uint8 [M, 3, H, W]
    test_labels: np.ndarray  # int64 [M]
    class_names: list[str]
    info: SourceInfo
    train_ranks: np.ndarray | None = None
    full_class_size: int | None = None


def default_data_dir() -> Path:
    """The cache folder used when neither --data-dir nor LTRANK_DATA_DIR is given."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ltrank" / "data"


def resolve_data_dir(data_dir: Path | str | None = None) -> Path:
    """Explicit argument, else $LTRANK_DATA_DIR, else :func:`default_data_dir`."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else default_data_dir()


def load_source(cfg: DatasetConfig, data_dir: Path | str | None = None) -> RawSource:
    """Resolve ``cfg.source`` to files and read them."""
    root = resolve_data_dir(data_dir)
    if cfg.source in _CIFAR:
        return _load_cifar(cfg.source, root)
    kind, _, raw_path = cfg.source.partition(":")
    if kind in STREAM_KINDS:  # never decode a whole benchmark into memory by mistake
        raise LtrankError(
            f"{cfg.source}: a {kind} source is streamed from disk, not loaded into memory; train it with "
            "'ltrank train' (make-dataset builds in-memory splits only)"
        )
    path = _user_path(raw_path, root)
    if kind == "npz":
        return load_npz(path, name=cfg.source)
    return load_folder(path, name=cfg.source)


def _user_path(raw: str, root: Path) -> Path:
    """A user path as given (relative to the working directory), else relative to the data dir."""
    path = Path(raw).expanduser()
    if not path.is_absolute() and not path.exists() and (root / path).exists():
        return root / path
    return path


# ---------------------------------------------------------------------------- CIFAR
def _load_cifar(name: str, root: Path) -> RawSource:
    folder, pool_file, full_size = _CIFAR[name]
    if (root / folder).is_dir():
        return _load_torchvision(name, root)
    if (root / pool_file).is_file():
        raw = load_npz(root / pool_file, name=name)
        num_classes = 10 if name == "cifar10" else 100
        largest = int(np.bincount(raw.train_labels).max())
        if len(raw.class_names) != num_classes or largest != full_size:
            raise LtrankError(
                f"{root / pool_file}: {len(raw.class_names)} classes, largest with {largest} images; "
                f"{name} needs {num_classes} classes and {full_size} images in the largest; is this the right file?"
            )
        return raw
    try:
        _download_torchvision(name, root)
    except Exception as exc:  # no network, no permission, ...: say where we looked instead
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LtrankError(
            f"{name} not found: looked for {root / folder}/ (torchvision files) and {root / pool_file}, "
            f"and the download failed ({reason}); either run once with internet access or put "
            f"{pool_file} in that folder (or point --data-dir / {DATA_DIR_ENV} to where the data is)"
        ) from None
    return _load_torchvision(name, root)


def _torchvision_class(name: str):
    from torchvision.datasets import CIFAR10, CIFAR100

    return CIFAR10 if name == "cifar10" else CIFAR100


def _download_torchvision(name: str, root: Path) -> None:
    """Download with torchvision; a failed attempt removes what it created, and only that.

    A partial archive or extraction would make the next run fail differently, and an empty
    data folder left behind would look like data; folders and files that were there stay.
    """
    created = [p for p in (root, *root.parents) if not p.exists()]  # deepest first
    before = set(root.iterdir()) if root.is_dir() else set()
    root.mkdir(parents=True, exist_ok=True)
    try:
        _torchvision_class(name)(str(root), train=True, download=True)
        _torchvision_class(name)(str(root), train=False, download=True)
    except BaseException:  # Ctrl-C mid-download too
        for path in set(root.iterdir()) - before:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for folder in created:
            with contextlib.suppress(OSError):  # not empty: someone else wrote there meanwhile
                folder.rmdir()
        raise


def _load_torchvision(name: str, root: Path) -> RawSource:
    cls = _torchvision_class(name)
    folder = root / _CIFAR[name][0]
    try:
        train = cls(str(root), train=True, download=False)
        test = cls(str(root), train=False, download=False)
    except Exception as exc:
        raise LtrankError(
            f"{folder}: torchvision cannot read the {name} files ({str(exc).splitlines()[0]}); "
            "delete the folder to download again, or use the offline pool file instead"
        ) from None
    # torchvision stores HWC views of CHW arrays: transposing back is free.
    train_images = np.ascontiguousarray(np.asarray(train.data).transpose(0, 3, 1, 2))
    test_images = np.ascontiguousarray(np.asarray(test.data).transpose(0, 3, 1, 2))
    train_labels = np.asarray(train.targets, dtype=np.int64)
    test_labels = np.asarray(test.targets, dtype=np.int64)
    classes = [str(c) for c in train.classes]
    fingerprint = _array_fingerprint(train_images, train_labels, test_images, test_labels, classes)
    info = SourceInfo(name=name, kind="torchvision", path=str(folder), fingerprint=fingerprint)
    return RawSource(train_images, train_labels, test_images, test_labels, classes, info)


# ---------------------------------------------------------------------------- npz
_NPZ_KEYS = ("train_images", "train_labels", "test_images", "test_labels", "class_names")


def load_npz(path: Path, name: str | None = None) -> RawSource:
    """Read an .npz image set (images uint8 [N, H, W, 3]; see docs/data.md for the keys)."""
    path = Path(path)
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "no such file"
        raise LtrankError(f"{path}: {what}; give the path of an .npz image set")
    if not zipfile.is_zipfile(path):  # np.load would read a .npy or try a pickle instead
        raise LtrankError(
            f"{path}: not an .npz archive (not a zip file); write image sets with numpy.savez or savez_compressed"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in _NPZ_KEYS if k not in archive.files]
            if missing:
                raise LtrankError(
                    f"{path}: missing key(s) {', '.join(missing)}; an image set needs {', '.join(_NPZ_KEYS)}"
                )
            arrays = {k: archive[k] for k in _NPZ_KEYS}
            ranks = archive["train_source_rank"] if "train_source_rank" in archive.files else None
            jpeg_rows = {k: len(archive[k]) for k in ("jpeg_train_rows", "jpeg_test_rows") if k in archive.files}
    except LtrankError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise LtrankError(f"{path}: not a readable .npz file ({str(exc).splitlines()[0]})") from None
    fingerprint = file_sha256(path)
    raw = _validated(path, arrays)
    train_images, train_labels, test_images, test_labels, classes = raw
    note = _jpeg_note(name or str(path), jpeg_rows)
    full_size = None
    if ranks is not None:
        ranks, full_size = _validated_ranks(path, np.asarray(ranks), train_labels, len(classes))
        pool_note = (
            "long-tail pool: the split has the reference per-class counts but not all the reference "
            "images (docs/data.md)"
        )
        note = f"{note}; {pool_note}" if note else pool_note
    info = SourceInfo(name=name or f"npz:{path}", kind="npz", path=str(path), fingerprint=fingerprint, note=note)
    return RawSource(train_images, train_labels, test_images, test_labels, classes, info, ranks, full_size)


def _jpeg_note(name: str, jpeg_rows: dict[str, int]) -> str:
    if not jpeg_rows:
        return ""
    n_train, n_test = jpeg_rows.get("jpeg_train_rows", 0), jpeg_rows.get("jpeg_test_rows", 0)
    label = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}.get(name, name)
    return (
        f"{label} pool: {n_train + n_test} JPEG-derived images ({n_train} train, {n_test} test); "
        "for development and relative comparisons"
    )


def _validated_ranks(path: Path, ranks: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, int]:
    if ranks.shape != labels.shape or not np.issubdtype(ranks.dtype, np.integer):
        raise LtrankError(f"{path}: train_source_rank must be integers, one per training image")
    ranks = ranks.astype(np.int64)
    full_size = int(np.bincount(labels, minlength=num_classes).max())
    if ranks.size and (ranks.min() < 0 or ranks.max() >= full_size):
        raise LtrankError(
            f"{path}: train_source_rank must lie in 0..{full_size - 1} (the largest class's size); "
            "drop the key to select within the file's own order"
        )
    key = labels * full_size + ranks
    if np.unique(key).size != key.size:
        raise LtrankError(f"{path}: train_source_rank repeats a position within a class")
    return ranks, full_size


def _validated(origin: Path, arrays: dict[str, np.ndarray]):
    """Check shapes (HWC), dtypes and label ranges; return CHW uint8 images and int64 labels."""
    classes = [str(c) for c in np.asarray(arrays["class_names"]).reshape(-1).tolist()]
    num_classes = len(classes)
    if num_classes < 2:
        raise LtrankError(f"{origin}: class_names must list at least 2 classes, found {num_classes}")
    if len(set(classes)) != num_classes:
        raise LtrankError(f"{origin}: class_names has duplicates")
    out = []
    shape = None
    for split in ("train", "test"):
        images, labels = np.asarray(arrays[f"{split}_images"]), np.asarray(arrays[f"{split}_labels"])
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise LtrankError(
                f"{origin}: {split}_images must be uint8 [N, H, W, 3], got {images.dtype} {list(images.shape)}"
            )
        if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
            raise LtrankError(
                f"{origin}: {split}_labels must be integers, one per image ({len(images)}), "
                f"got {labels.dtype} {list(labels.shape)}"
            )
        if len(labels) == 0:
            raise LtrankError(f"{origin}: the {split} split is empty")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise LtrankError(
                f"{origin}: {split}_labels must lie in 0..{num_classes - 1} (one per class name), "
                f"found {int(labels.min())}..{int(labels.max())}"
            )
        if split == "test":
            present = np.bincount(labels, minlength=num_classes)
            if (present == 0).any():
                missing = classes[int(np.flatnonzero(present == 0)[0])]
                raise LtrankError(
                    f"{origin}: class {missing!r} has no test images; every class needs at least one "
                    "(accuracy is reported per class)"
                )
        chw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        if shape is not None and chw.shape[1:] != shape:
            raise LtrankError(f"{origin}: train images are {list(shape)} but test images are {list(chw.shape[1:])}")
        shape = chw.shape[1:]
        out += [chw, labels.astype(np.int64)]
    return out[0], out[1], out[2], out[3], classes


# ---------------------------------------------------------------------------- folders
def load_folder(root: Path, name: str | None = None) -> RawSource:
    """Read ``root/train/<class>/*`` and ``root/test/<class>/*`` (all the same size).

    Classes are the sorted sub-folder names of ``train``; files are read in sorted name order.
    Every file whose suffix Pillow can open is read (PNG, JPEG, BMP, TIFF, WebP, GIF, ...), in
    any mode, as 8-bit RGB the way a viewer shows it (:func:`ltrank.data.images.to_rgb8`); other
    files are ignored. Every class needs images in both splits: an empty class folder is named.
    """
    root = Path(root)
    train_dir, test_dir = root / "train", root / "test"
    for split_dir in (train_dir, test_dir):
        if not split_dir.is_dir():
            raise LtrankError(f"{split_dir}: no such folder; an image folder needs train/<class>/ and test/<class>/")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise LtrankError(
            f"{train_dir}: found {len(classes)} class folder(s), need at least 2; put each class's images "
            "in its own sub-folder, train/<class>/*.png and test/<class>/..."
        )
    extra = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and p.name not in classes)
    if extra:
        raise LtrankError(f"{test_dir}: class folder(s) {', '.join(extra)} have no counterpart in {train_dir}")
    arrays: dict[str, object] = {"class_names": np.asarray(classes)}
    for split, split_dir in (("train", train_dir), ("test", test_dir)):
        images, labels = _read_split(split_dir, classes)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    raw = _validated(root, arrays)  # type: ignore[arg-type]
    fingerprint = _array_fingerprint(*raw)
    info = SourceInfo(name=name or f"folder:{root}", kind="folder", path=str(root), fingerprint=fingerprint)
    return RawSource(*raw, info)


def _read_split(split_dir: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Decode one split with Pillow (a torchvision dependency) into uint8 [N, H, W, 3]."""
    from PIL import Image

    suffixes = readable_suffixes()
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        folder = split_dir / cls
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes) if folder.is_dir() else []
        if not files:
            what = "holds no images" if folder.is_dir() else "is missing"
            raise LtrankError(
                f"{folder}: the folder of class {cls!r} {what}; every class needs images in train/ and test/ "
                "(Pillow-readable: .png, .jpg, .bmp, .tif, .webp, ...): add some, or remove the class from both"
            )
        for file in files:
            try:
                with Image.open(file) as handle:
                    image = to_rgb8(handle)
            except LtrankError as exc:
                raise LtrankError(f"{file}: {exc}") from None
            except Exception as exc:  # decoders raise OSError, ValueError, SyntaxError, DecompressionBombError...
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise LtrankError(f"{file}: cannot decode image ({reason})") from None
            if images and image.shape != images[0].shape:
                raise LtrankError(
                    f"{file}: image is {image.shape[1]}x{image.shape[0]} but earlier ones are "
                    f"{images[0].shape[1]}x{images[0].shape[0]}; resize all images to one size first"
                )
            images.append(image)
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


# ---------------------------------------------------------------------------- hashing
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _array_fingerprint(train_images, train_labels, test_images, test_labels, classes) -> str:
    """sha256 over the decoded arrays (CHW uint8 images, int64 labels) and the class names."""
    digest = hashlib.sha256()
    for array in (train_images, train_labels, test_images, test_labels):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\n".join(classes).encode())
    return digest.hexdigest()
