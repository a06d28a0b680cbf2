"""The data boundary models: what a recipe's ``[data]`` table holds, where the images came
from, and the split manifest that pins down a long-tailed training set."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ltrank.errors import did_you_mean

#: Source names that ltrank knows without a path.
BUILTIN_SOURCES = ("cifar10", "cifar100")
#: Image size (height, width) of each built-in source, known before any data is read.
BUILTIN_IMAGE_SIZES: dict[str, tuple[int, int]] = {"cifar10": (32, 32), "cifar100": (32, 32)}
#: Prefixes for users' own data: ``npz:<path>`` and ``folder:<path>``.
PATH_KINDS = ("npz", "folder")
#: Large long-tailed sources read from split lists and streamed from disk (docs/data.md):
#: ``imagenet_lt:ROOT``, ``places_lt:ROOT``, ``inat2018:ROOT``, ``splitfile:TRAIN,TEST[,VAL][@ROOT]``.
STREAM_KINDS = ("imagenet_lt", "places_lt", "inat2018", "splitfile")
#: Sources whose default class groups are Many / Medium / Few (``shots``), their papers' convention.
SHOT_GROUP_KINDS = STREAM_KINDS
#: Side of the square crop of streamed images when ``data.image_size`` is not given.
DEFAULT_IMAGE_SIZE = 224


def source_kind(source: str) -> str:
    """``'cifar10'`` / ``'cifar100'`` for the built-ins, else the prefix before ``:`` (``'imagenet_lt'``)."""
    return source.partition(":")[0] if ":" in source else source


def parse_splitfile(spec: str) -> tuple[list[str], Optional[str]]:
    """``TRAIN,TEST[,VAL][@ROOT]`` (the part after ``splitfile:``) -> (list paths, root or None).

    The root is whatever follows the last ``@``; raises ValueError with the expected spelling.
    """
    lists_part, at, root = spec.rpartition("@") if "@" in spec else (spec, "", "")
    lists = [item.strip() for item in lists_part.split(",")]
    if len(lists) not in (2, 3) or not all(lists) or (at and not root.strip()):
        raise ValueError(
            f"splitfile: expected 'splitfile:TRAIN.txt,TEST.txt[,VAL.txt][@ROOT]', got 'splitfile:{spec}'"
        )
    return lists, (root.strip() or None)


class DatasetConfig(BaseModel):
    """How to build the long-tailed training set (a recipe's ``[data]`` table)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    source: str = Field(
        ...,
        description="'cifar10', 'cifar100', 'npz:<path>' (an .npz image set), 'folder:<path>' "
        "(root/train/<class>/<images> and root/test/<class>/<images>; any format Pillow reads), or a large "
        "long-tailed source streamed from disk: 'imagenet_lt:<root>', 'places_lt:<root>', 'inat2018:<root>', "
        "'splitfile:TRAIN.txt,TEST.txt[,VAL.txt][@ROOT]' (docs/data.md).",
    )
    imbalance_ratio: float = Field(
        100.0, ge=1.0,
        description="n_max / n_min of the constructed training set (docs/method.md section 1); ignored by 'asis'.",
    )
    profile: Literal["exp", "step", "asis"] = Field(
        "exp",
        description="'exp': exponential decay over the classes; 'step': half the classes keep n_max; "
        "'asis': keep every training image of a source that is already long-tailed (the measured ratio is recorded).",
    )
    seed: int = Field(
        0, ge=0, le=2**32 - 1,  # numpy.random.RandomState's range
        description="Seed of the subset selection (numpy RandomState), independent of the run seed.",
    )
    image_size: Optional[int] = Field(
        None, ge=8, le=1024,
        description=f"Side in pixels of the square crops of streamed sources (default {DEFAULT_IMAGE_SIZE}): training "
        "RandomResizedCrop(image_size); test Resize(image_size * 256 // 224) + CenterCrop(image_size). "
        "Sources held in memory (CIFAR, npz, small folders) keep their own size.",
    )
    color_jitter: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Brightness, contrast and saturation jitter of streamed training images (0: off; "
        "Kang et al. 2020 use 0.4 on ImageNet-LT and Places-LT).",
    )
    memory_budget_mb: float = Field(
        4096.0, gt=0.0,
        description="A 'folder:' source whose decoded images need more MiB than this is streamed from disk "
        "instead of held in memory.",
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        value = value.strip()
        if value in BUILTIN_SOURCES:
            return value
        kind, sep, path = value.partition(":")
        if sep and kind == "splitfile":
            lists, root = parse_splitfile(path.strip())
            return "splitfile:" + ",".join(lists) + (f"@{root}" if root else "")
        if sep and kind in PATH_KINDS + STREAM_KINDS:
            if not path.strip():
                raise ValueError(f"{kind}: needs a path, e.g. '{kind}:/data/my-set'")
            return f"{kind}:{path.strip()}"
        hint = did_you_mean(kind if sep else value, BUILTIN_SOURCES + PATH_KINDS + STREAM_KINDS)
        raise ValueError(
            f"unknown data source {value!r}{hint}; use 'cifar10', 'cifar100', 'npz:<path>', 'folder:<path>', "
            "'imagenet_lt:<root>', 'places_lt:<root>', 'inat2018:<root>' or 'splitfile:TRAIN.txt,TEST.txt[,VAL.txt][@ROOT]'"
        )


class SourceInfo(BaseModel):
    """Which files the images came from (recorded in manifests and run records)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., description="The DatasetConfig.source that was resolved.")
    kind: Literal["torchvision", "npz", "folder", "imagenet_lt", "places_lt", "inat2018", "splitfile"] = Field(
        ..., description="How the files were read."
    )
    path: str = Field(..., description="The file or folder read (streamed sources: the image root).")
    fingerprint: str = Field(
        ...,
        description="sha256 of the .npz file (kind npz), of the decoded arrays (torchvision, folder in memory), "
        "or of the split lists (streamed sources: paths, labels and class names, not the images).",
    )
    note: str = Field("", description="Caveats of this source, e.g. JPEG-derived images in a pool.")


class SplitManifest(BaseModel):
    """Everything needed to rebuild (and check) one long-tailed training set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ltrank_version: str = Field(..., description="ltrank version that built the split.")
    source: SourceInfo = Field(..., description="Where the images came from.")
    profile: str = Field(..., description="Long-tail profile ('exp', 'step' or 'asis').")
    imbalance_ratio: float = Field(..., description="Requested n_max / n_min ('asis': the source's measured ratio).")
    seed: int = Field(..., description="RandomState seed of the selection.")
    selection_rule: str = Field(
        ...,
        description="'shuffle-class-rows' (the reference rule on the source's own rows), "
        "'shuffle-source-ranks' (a pool: the reference shuffle over original positions) or "
        "'keep-all' (profile 'asis').",
    )
    class_names: list[str] = Field(..., description="Class names in label order.")
    class_counts: list[int] = Field(..., description="Training images per class after construction.")
    source_class_counts: list[int] = Field(..., description="Training images per class in the source.")
    test_class_counts: list[int] = Field(..., description="Test images per class (the full test set).")
    selected_indices: list[list[int]] = Field(
        ..., description="Per class, the source's training rows kept, in selection order."
    )
