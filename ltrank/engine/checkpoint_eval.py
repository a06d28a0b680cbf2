"""Evaluate a saved checkpoint on the balanced test set (what ``ltrank eval`` runs).

A checkpoint (``checkpoint.pt``, loaded with ``weights_only=True``) holds the weights; the
``record.json`` the trainer writes beside it holds the resolved recipe, from which the model
(``BACKBONES.build``, shaped as the checkpoint's phase left it: an LWS head is wrapped) and the
data (in memory or streamed, :mod:`ltrank.engine.feeds`) are rebuilt. A run whose one stage is post-hoc keeps
the weights it started from; its adjustment is applied again. The test loop is the trainer's
own (:func:`ltrank.engine.evaluation.evaluate`).

``--posthoc`` adjustments (:mod:`ltrank.rebalance`) are applied to the evaluated model, each
evaluated on its own; for a finished run each is also recorded as a run of its own
(:mod:`ltrank.engine.posthoc_records`). Everything that can be refused is refused before any
evaluation, and the records are written only after every adjustment has been evaluated.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from torch import nn

from ltrank.errors import LtrankError
from ltrank.metrics import make_metrics
from ltrank.rebalance.spec import PosthocSpec
from ltrank.records import Metrics, RunRecord
from ltrank.run_folder import locate_checkpoint, record_beside


@dataclass
class AdjustedEvaluation:
    """One ``--posthoc`` adjustment of the checkpoint's model, evaluated (and where it is recorded)."""

    spec: PosthocSpec
    label: str  # e.g. "tau-norm (tau 1.0)"
    metrics: Metrics
    record_path: Optional[Path]  # None: not recorded (the run did not finish)


@dataclass
class CheckpointEvaluation:
    """What evaluating one checkpoint found."""

    checkpoint: Path
    record: RunRecord
    metrics: Metrics
    class_names: list[str]
    class_counts: list[int]
    test_counts: list[int]
    device: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    adjusted: list[AdjustedEvaluation] = field(default_factory=list)


def evaluate_checkpoint(path: Path, *, data_dir: Optional[Path] = None, device: str = "cpu",
                        posthoc: Sequence[PosthocSpec] = (), workers: int = 0) -> CheckpointEvaluation:
    """Rebuild model and data from the run record, load the weights, evaluate on the test set;
    then evaluate (and, for a finished run, record) each ``posthoc`` adjustment of that model.
    ``workers`` decoding processes read a streamed source."""
    from ltrank.data import LongTailedData
    from ltrank.engine.checkpoint import load_checkpoint
    from ltrank.engine.device import device_label, place_model, resolve_device
    from ltrank.engine.evaluation import evaluate_batches
    from ltrank.engine.feeds import load_training_data, make_feed
    from ltrank.engine.posthoc_records import check_posthoc_record, posthoc_record_path
    from ltrank.engine.run import data_info
    from ltrank.recipe import Recipe

    ckpt_path = locate_checkpoint(path)
    state = load_checkpoint(ckpt_path)  # first: a file that is not a checkpoint is told so in words
    record = record_beside(ckpt_path)
    notes = []
    if state.get("config_hash") not in (None, record.config_hash):
        raise LtrankError(
            f"{ckpt_path} belongs to config {state['config_hash']} but the record beside it to "
            f"{record.config_hash}; they come from different runs"
        )
    recipe = Recipe.model_validate(record.recipe)
    dev = resolve_device(device)
    targets = [posthoc_record_path(ckpt_path.parent, spec) for spec in posthoc]
    recording = bool(posthoc) and record.status == "finished"
    if recording:
        if not os.access(ckpt_path.parent, os.W_OK | os.X_OK):
            raise LtrankError(f"{ckpt_path.parent}: cannot write the post-hoc records there (permission denied)")
        for target, spec in zip(targets, posthoc):
            check_posthoc_record(target, record, spec)
    data = load_training_data(recipe.data, data_dir)
    info = data_info(recipe.data, data)
    if info.fingerprint != record.data.fingerprint:
        notes.append(
            f"the data found now (fingerprint {info.fingerprint}) differs from the data the run trained on "
            f"({record.data.fingerprint}); e.g. another source file"
        )
    model = _load_model(recipe, data.num_classes, state, ckpt_path)
    place_model(model, dev)
    model = _own_adjustment(recipe, record, model, data, dev)
    validation = _validation_split(data, recipe, record.seed, dev, workers)
    scale = _check_adjustments(posthoc, model, record, data.class_counts, validation is not None)
    feed = make_feed(data, recipe.data, seed=record.seed, device=dev, batch_size=recipe.train.batch_size,
                     eval_batch_size=recipe.eval.batch_size, workers=workers)
    start = time.perf_counter()
    acc = evaluate_batches(model, feed.test_batches(recipe.eval.batch_size), data.num_classes, dev)
    seconds = time.perf_counter() - start
    test_counts = (list(data.manifest.test_class_counts) if isinstance(data, LongTailedData)
                   else data.test.counts(data.num_classes))
    missing = [data.class_names[c] for c, v in enumerate(acc.per_class) if math.isnan(v)]
    if missing:
        raise LtrankError(f"the test set has no images of class(es) {', '.join(missing)}; "
                          "per-class accuracy is undefined")
    epoch = int(state["epoch"])
    metrics = make_metrics(epoch, acc.per_class, data.class_counts, top1=acc.top1)
    if record.status != "finished":
        notes.append(f"the run is {record.status}; this checkpoint is from epoch {epoch}")
    adjusted = _adjust(posthoc, model, data, feed, validation, dev, recipe.eval.batch_size, epoch, scale)
    label = device_label(dev)
    if recording:
        from ltrank.engine.posthoc_records import posthoc_record, write_posthoc_record

        for target, (spec, result, m, secs) in zip(targets, adjusted):
            write_posthoc_record(target, posthoc_record(record, ckpt_path, spec, result, m, info, label, secs))
    elif posthoc:
        notes.append(f"the adjustments are not recorded: the run is {record.status} (only finished runs are)")
    return CheckpointEvaluation(
        checkpoint=ckpt_path, record=record, metrics=metrics, class_names=data.class_names,
        class_counts=data.class_counts, test_counts=test_counts, device=label, seconds=seconds,
        notes=notes,
        adjusted=[AdjustedEvaluation(spec, result.label, m, target if recording else None)
                  for target, (spec, result, m, _) in zip(targets, adjusted)],
    )


def _load_model(recipe: Any, num_classes: int, state: dict[str, Any], ckpt_path: Path) -> nn.Module:
    """The recipe's model as the checkpoint's phase shaped it (an LWS phase wraps the head), weights loaded."""
    from ltrank.engine.components import build_model, phase_method, prepare_phase
    from ltrank.engine.phases import phases

    model = build_model(recipe, num_classes)
    all_phases = phases(recipe.train)
    phase = all_phases[min(int(state.get("phase", 0)), len(all_phases) - 1)]
    if phase_method(phase) in ("crt", "lws"):
        prepare_phase(model, phase, recipe.model.backbone)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        first = str(exc).splitlines()[0]
        raise LtrankError(f"{ckpt_path}: weights do not fit the recipe's model ({first})") from None
    return model


def _own_adjustment(recipe: Any, record: RunRecord, model: nn.Module, data: Any, device: Any) -> nn.Module:
    """A run whose one stage is post-hoc: its adjustment of the weights it kept; else ``model``."""
    from ltrank.engine.components import posthoc_stage
    from ltrank.rebalance.posthoc import build_posthoc, check_posthoc
    from ltrank.rebalance.provenance import logit_scale_of

    spec = posthoc_stage(recipe)
    if spec is None:
        return model
    scale = check_posthoc(spec, model, class_counts=data.class_counts, has_validation=False,
                          logit_scale=logit_scale_of(record))
    return build_posthoc(spec, model, class_counts=data.class_counts, device=device, train=_train_split(data),
                         batch_size=recipe.eval.batch_size, logit_scale=scale).model


def _check_adjustments(posthoc: Sequence[PosthocSpec], model: nn.Module, record: RunRecord,
                       class_counts: list[int], has_validation: bool) -> float:
    """Refuse every adjustment that cannot apply before any is evaluated; the logit scale to use."""
    from ltrank.rebalance.posthoc import check_posthoc
    from ltrank.rebalance.provenance import logit_scale_of

    scale = logit_scale_of(record)
    for spec in posthoc:  # tau-norm=auto needs the source's validation split (ImageNet-LT, Places-LT have one)
        check_posthoc(spec, model, class_counts=class_counts, has_validation=has_validation, logit_scale=scale)
    return 1.0 if scale is None else scale


def _train_split(data: Any, feed: Any = None, batch_size: int = 1000) -> Any:
    """The training split NCM needs: images in memory, or the feed's un-augmented training batches."""
    from ltrank.data import LongTailedData
    from ltrank.rebalance.posthoc import Split

    if isinstance(data, LongTailedData):
        return Split(data.train_images, data.train_labels)
    return None if feed is None else Split(batches=lambda: feed.feature_batches(batch_size))


def _validation_split(data: Any, recipe: Any, seed: int, device: Any, workers: int) -> Any:
    """The source's validation split (what tau-norm=auto selects on; never the test split), or None."""
    from ltrank.data import LongTailedData, make_loader
    from ltrank.rebalance.posthoc import Split

    if isinstance(data, LongTailedData) or data.val is None:
        return None
    loader = make_loader(data, "val", recipe.data, seed=seed, batch_size=recipe.eval.batch_size,
                         num_workers=workers, device=device, train=False)
    return Split(batches=lambda: iter(loader))


def _adjust(posthoc: Sequence[PosthocSpec], model: nn.Module, data: Any, feed: Any, validation: Any, device: Any,
            batch_size: int, epoch: int, scale: float) -> list[tuple[PosthocSpec, Any, Metrics, float]]:
    """(spec, PosthocResult, metrics, seconds) of each adjustment of ``model``, evaluated."""
    from ltrank.engine.evaluation import evaluate_batches
    from ltrank.rebalance.posthoc import build_posthoc

    out = []
    for spec in posthoc:
        start = time.perf_counter()
        result = build_posthoc(spec, model, class_counts=data.class_counts, device=device,
                               train=_train_split(data, feed, batch_size), validation=validation,
                               batch_size=batch_size, logit_scale=scale)
        acc = evaluate_batches(result.model, feed.test_batches(batch_size), data.num_classes, device)
        metrics = make_metrics(epoch, acc.per_class, data.class_counts, top1=acc.top1)
        out.append((spec, result, metrics, time.perf_counter() - start))
    return out
