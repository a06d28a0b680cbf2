"""Small generated trees in the layouts of the large sources: ImageNet-LT / Places-LT split lists,
iNaturalist 2018 COCO-style JSON, generic split files. Images are small JPEGs of varying sizes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_jpeg(path: Path, seed: int, size: tuple[int, int] | None = None) -> None:
    """A smooth random image (height, width default 20..40 x 24..48) saved as JPEG."""
    from PIL import Image

    rng = np.random.RandomState(seed)
    h, w = size or (int(rng.randint(20, 41)), int(rng.randint(24, 49)))
    y, x = np.mgrid[0:h, 0:w]
    phase = rng.uniform(0, 6, size=3)
    image = np.stack([128 + 100 * np.sin(x / 7 + p) * np.cos(y / 5 - p) for p in phase], -1)
    image = (image + rng.randn(h, w, 3) * 10).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=90)


def write_split_tree(root: Path, per_split: dict[str, Sequence[int]], list_name: str, prefix: str = "") -> dict[str, Path]:
    """Images ``root/<split>/c<label>/<i>.jpg`` and one list per split ``<list_name>`` with ``{split}``
    replaced, lines ``<prefix><split>/c<label>/<i>.jpg <label>``; counts are per class."""
    lists = {}
    seed = 0
    for split, counts in per_split.items():
        lines = []
        for label, n in enumerate(counts):
            for i in range(n):
                rel = f"{split}/c{label}/{i:04d}.jpg"
                write_jpeg(root / prefix / rel, seed)
                seed += 1
                lines.append(f"{prefix}{rel} {label}")
        file = root / list_name.format(split=split)
        file.write_text("\n".join(lines) + "\n")
        lists[split] = file
    return lists


def imagenet_lt_tree(root: Path, train=(12, 6, 3), val=(2, 2, 2), test=(3, 3, 3)) -> Path:
    write_split_tree(root, {"train": train, "val": val, "test": test}, "ImageNet_LT_{split}.txt")
    return root


def places_lt_tree(root: Path, train=(8, 4, 2, 1), val=(1, 1, 1, 1), test=(2, 2, 2, 2)) -> Path:
    write_split_tree(root, {"train": train, "val": val, "test": test}, "Places_LT_{split}.txt")
    return root


def inat_tree(root: Path, train=(5, 3, 2), test=(2, 2, 2), names=("Aves sp.", "Plantae x", "Fungi y")) -> Path:
    """train2018.json / val2018.json with category ids 0..C-1 and images under train_val2018/."""
    image_id = 0
    for split, counts, filename in (("train", train, "train2018.json"), ("val", test, "val2018.json")):
        images, annotations = [], []
        for label, n in enumerate(counts):
            for i in range(n):
                rel = f"train_val2018/k{label}/{split}{i:03d}.jpg"
                write_jpeg(root / rel, 1000 + image_id)
                images.append({"id": image_id, "file_name": rel, "width": 0, "height": 0})
                annotations.append({"id": image_id, "image_id": image_id, "category_id": label})
                image_id += 1
        categories = [{"id": c, "name": names[c], "supercategory": "x"} for c in range(len(counts))]
        (root / filename).write_text(json.dumps({"images": images, "annotations": annotations,
                                                 "categories": categories}))
    return root
