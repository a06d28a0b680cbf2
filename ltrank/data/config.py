"""The data boundary models: what a recipe's ``[data]`` table holds, where the images came
from, and the split manifest that pins down a long-tailed training set."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ltrank.errors import did_you_mean

#: Source names that ltrank knows without a path.
BUILTIN_SOURCES = ("cifar10", "cifar100")
#: Image size (height, width) of each built-in source, known before any data is read.
BUILTIN_IMAGE_SIZES: dict[str, tuple[int, int]] = {"cifar10": (32, 32), "cifar100": (32, 32)}
#: Prefixes for users' own data: ``npz:<path>`` and ``folder:<path>``.
PATH_KINDS = ("npz", "folder")


class DatasetConfig(BaseModel):
    """How to build the long-tailed training set (a recipe's ``[data]`` table)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    source: str = Field(
        ...,
        description="'cifar10', 'cifar100', 'npz:<path>' (an .npz image set) or 'folder:<path>' "
        "(root/train/<class>/<images> and root/test/<class>/<images>; any format Pillow reads).",
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

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        value = value.strip()
        if value in BUILTIN_SOURCES:
            return value
        kind, sep, path = value.partition(":")
        if sep and kind in PATH_KINDS:
            if not path.strip():
                raise ValueError(f"{kind}: needs a path, e.g. '{kind}:/data/my-set'")
            return f"{kind}:{path.strip()}"
        hint = did_you_mean(value, BUILTIN_SOURCES)
        raise ValueError(
            f"unknown data source {value!r}{hint}; use 'cifar10', 'cifar100', 'npz:<path>' or 'folder:<path>'"
        )


class SourceInfo(BaseModel):
    """Which files the images came from (recorded in manifests and run records)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., description="The DatasetConfig.source that was resolved.")
    kind: Literal["torchvision", "npz", "folder"] = Field(..., description="How the files were read.")
    path: str = Field(..., description="The file or folder read.")
    fingerprint: str = Field(
        ...,
        description="sha256 of the .npz file (kind npz), or of the decoded arrays (torchvision, folder).",
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
