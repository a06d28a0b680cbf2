"""Tiny on-disk datasets for the data tests: npz image sets, image folders, torchvision CIFAR roots."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np


def random_images(n: int, size: int = 8, seed: int = 0) -> np.ndarray:
    """uint8 [n, size, size, 3] (HWC, like CIFAR's .data)."""
    return np.random.RandomState(seed).randint(0, 256, (n, size, size, 3), dtype=np.uint8)


def balanced_labels(num_classes: int, per_class: int, seed: int = 1) -> np.ndarray:
    return np.random.RandomState(seed).permutation(np.repeat(np.arange(num_classes), per_class)).astype(np.int64)


def write_npz(path: Path, num_classes: int = 4, per_class: int = 20, test_per_class: int = 3, size: int = 8, **extra):
    labels = balanced_labels(num_classes, per_class)
    test_labels = np.repeat(np.arange(num_classes), test_per_class).astype(np.int64)
    arrays = dict(
        train_images=random_images(len(labels), size, 0),
        train_labels=labels,
        test_images=random_images(len(test_labels), size, 1),
        test_labels=test_labels,
        class_names=np.asarray([f"class{c}" for c in range(num_classes)]),
    )
    arrays.update(extra)
    np.savez_compressed(path, **arrays)
    return arrays


def write_folder(root: Path, counts: dict[str, tuple[int, int]], size: tuple[int, int] = (6, 5)) -> None:
    """root/{train,test}/<class>/<i>.png with (train, test) counts per class; size is (H, W)."""
    from PIL import Image

    rng = np.random.RandomState(3)
    for cls, (n_train, n_test) in counts.items():
        for split, n in (("train", n_train), ("test", n_test)):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = rng.randint(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(image).save(folder / f"{i:03d}.png")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_fake_cifar(root: Path, monkeypatch, name: str = "cifar10", per_class: int = 20, test_per_class: int = 4):
    """A tiny CIFAR root in torchvision's pickled-batch format (32x32 images, fewer of them).

    torchvision verifies every file against the md5 sums in the dataset class; the fake files
    have their own sums, so ``monkeypatch`` points the class's file lists at them (the
    integrity check itself still runs). Returns the HWC train and test arrays written.
    """
    from torchvision.datasets import CIFAR10, CIFAR100

    num_classes = 10 if name == "cifar10" else 100
    cls = CIFAR10 if name == "cifar10" else CIFAR100
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    labels = balanced_labels(num_classes, per_class)
    images = random_images(len(labels), 32, 5)
    test_labels = balanced_labels(num_classes, test_per_class, seed=2)
    test_images = random_images(len(test_labels), 32, 6)
    label_key = "labels" if name == "cifar10" else "fine_labels"

    def dump(filename: str, x: np.ndarray, y: np.ndarray) -> list[str]:
        flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # CIFAR stores CHW rows
        with open(folder / filename, "wb") as handle:
            pickle.dump({"data": flat, label_key: y.tolist()}, handle)
        return [filename, _md5(folder / filename)]

    if name == "cifar10":
        chunks = np.array_split(np.arange(len(labels)), 5)
        train_list = [dump(f"data_batch_{i + 1}", images[c], labels[c]) for i, c in enumerate(chunks)]
        test_list = [dump("test_batch", test_images, test_labels)]
        meta_file, meta_key = "batches.meta", "label_names"
    else:
        train_list = [dump("train", images, labels)]
        test_list = [dump("test", test_images, test_labels)]
        meta_file, meta_key = "meta", "fine_label_names"
    class_names = [f"{name}_class{c}" for c in range(num_classes)]
    with open(folder / meta_file, "wb") as handle:
        pickle.dump({meta_key: class_names}, handle)
    monkeypatch.setattr(cls, "train_list", train_list)
    monkeypatch.setattr(cls, "test_list", test_list)
    monkeypatch.setattr(cls, "meta", {"filename": meta_file, "key": meta_key, "md5": _md5(folder / meta_file)})
    return images, labels, test_images, test_labels, class_names
