"""Evaluate a saved checkpoint on the balanced test set (what ``ltrank eval`` runs).

A checkpoint (``checkpoint.pt``, loaded with ``weights_only=True``) holds the weights; the
``record.json`` the trainer writes beside it holds the resolved recipe, from which the model
(``BACKBONES.build``) and the data (in memory or streamed, :mod:`ltrank.engine.feeds`) are rebuilt. The test
loop is the trainer's own (:func:`ltrank.engine.evaluation.evaluate`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ltrank.errors import LtrankError
from ltrank.metrics import make_metrics
from ltrank.records import Metrics, RunRecord
from ltrank.run_folder import locate_checkpoint, record_beside


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


def evaluate_checkpoint(path: Path, *, data_dir: Optional[Path] = None, device: str = "cpu",
                        workers: int = 0) -> CheckpointEvaluation:
    """Rebuild model and data from the run record, load the weights, evaluate on the test set
    (``workers`` decoding processes for a streamed source)."""
    from ltrank.data import LongTailedData
    from ltrank.engine.checkpoint import load_checkpoint
    from ltrank.engine.components import build_model
    from ltrank.engine.device import device_label, place_model, resolve_device
    from ltrank.engine.evaluation import evaluate_batches
    from ltrank.engine.feeds import load_training_data, make_feed
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
    data = load_training_data(recipe.data, data_dir)
    fingerprint = data_info(recipe.data, data).fingerprint
    if fingerprint != record.data.fingerprint:
        notes.append(
            f"the data found now (fingerprint {fingerprint}) differs from the data the run trained on "
            f"({record.data.fingerprint}); e.g. another source file"
        )
    model = build_model(recipe, data.num_classes)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        first = str(exc).splitlines()[0]
        raise LtrankError(f"{ckpt_path}: weights do not fit the recipe's model ({first})") from None
    place_model(model, dev)
    start = time.perf_counter()
    feed = make_feed(data, recipe.data, seed=record.seed, device=dev, batch_size=recipe.train.batch_size,
                     eval_batch_size=recipe.eval.batch_size, workers=workers)
    acc = evaluate_batches(model, feed.test_batches(recipe.eval.batch_size), data.num_classes, dev)
    seconds = time.perf_counter() - start
    test_counts = (list(data.manifest.test_class_counts) if isinstance(data, LongTailedData)
                   else data.test.counts(data.num_classes))
    missing = [data.class_names[c] for c, v in enumerate(acc.per_class) if math.isnan(v)]
    if missing:
        raise LtrankError(f"the test set has no images of class(es) {', '.join(missing)}; per-class accuracy is undefined")
    epoch = int(state["epoch"])
    metrics = make_metrics(epoch, acc.per_class, data.class_counts, top1=acc.top1)
    if record.status != "finished":
        notes.append(f"the run is {record.status}; this checkpoint is from epoch {epoch}")
    return CheckpointEvaluation(
        checkpoint=ckpt_path, record=record, metrics=metrics, class_names=data.class_names,
        class_counts=data.class_counts, test_counts=test_counts, device=device_label(dev), seconds=seconds,
        notes=notes,
    )
