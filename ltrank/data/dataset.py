"""``load_longtailed``: source -> long-tailed training set + full test set, as uint8 tensors.

Training and ``ltrank make-dataset`` both go through this function, so a recipe's dataset is
exactly the one the command shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import ltrank
from ltrank.data.config import DatasetConfig, SourceInfo, SplitManifest
from ltrank.data.longtail import (
    RULE_CLASS_ROWS,
    RULE_KEEP_ALL,
    RULE_SOURCE_RANKS,
    all_indices,
    class_counts,
    measured_ratio,
    select_indices,
)
from ltrank.data.sources import RawSource, load_source


@dataclass(frozen=True)
class LongTailedData:
    """A long-tailed training set and the full test set, in memory.

    Images are contiguous uint8 [N, 3, H, W] tensors (see :mod:`ltrank.data.batches` for the
    batched train transform); labels are int64. The training rows are in selection order:
    class by class, each class in the order the RandomState shuffle put it (profile ``asis``:
    in source order).
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]
    class_counts: list[int]
    source: SourceInfo
    manifest: SplitManifest

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_longtailed(cfg: DatasetConfig, data_dir: Path | None = None) -> LongTailedData:
    """Read ``cfg.source`` (data dir: argument, else $LTRANK_DATA_DIR, else the cache folder)
    and build its long-tailed training subset (docs/method.md section 1)."""
    return build_longtailed(load_source(cfg, data_dir), cfg)


def build_longtailed(raw: RawSource, cfg: DatasetConfig) -> LongTailedData:
    """The long-tail construction on an already loaded source."""
    num_classes = len(raw.class_names)
    source_counts = np.bincount(raw.train_labels, minlength=num_classes)
    if cfg.profile == "asis":  # the source is already long-tailed: keep all of it
        kept = all_indices(raw.train_labels, num_classes)
        counts = [len(rows) for rows in kept]
        ratio, rule = measured_ratio(counts), RULE_KEEP_ALL
    else:
        counts = class_counts(int(source_counts.max()), num_classes, cfg.imbalance_ratio, cfg.profile)
        kept = select_indices(
            raw.train_labels, counts, cfg.seed, raw.class_names, raw.train_ranks, raw.full_class_size
        )
        ratio = cfg.imbalance_ratio
        rule = RULE_CLASS_ROWS if raw.train_ranks is None else RULE_SOURCE_RANKS
    order = np.concatenate(kept)
    manifest = SplitManifest(
        ltrank_version=ltrank.__version__,
        source=raw.info,
        profile=cfg.profile,
        imbalance_ratio=ratio,
        seed=cfg.seed,
        selection_rule=rule,
        class_names=list(raw.class_names),
        class_counts=counts,
        source_class_counts=[int(n) for n in source_counts],
        test_class_counts=[int(n) for n in np.bincount(raw.test_labels, minlength=num_classes)],
        selected_indices=[rows.tolist() for rows in kept],
    )
    return LongTailedData(
        train_images=torch.from_numpy(np.ascontiguousarray(raw.train_images[order])),
        train_labels=torch.from_numpy(raw.train_labels[order].copy()),
        test_images=torch.from_numpy(raw.test_images),
        test_labels=torch.from_numpy(raw.test_labels),
        class_names=list(raw.class_names),
        class_counts=counts,
        source=raw.info,
        manifest=manifest,
    )
