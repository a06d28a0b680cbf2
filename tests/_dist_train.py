"""What each of 2 gloo ranks runs for the engine's distributed checks (tests/test_ddp_train.py).

``engine_checks(rank, world, folder=...)`` runs every scenario on both ranks through
``train_one`` / ``Trainer`` (as ``ltrank train`` does under torchrun) and returns what the test
process compares with single-process runs: outcomes (record, or the error's type, message and
whether rank 0 alone shows it), checkpoints written, and per-rank state.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch
from torch import nn

from ltrank.catalog import LOSSES
from ltrank.distributed import rank, shown_by_rank0
from ltrank.engine.feeds import load_training_data
from ltrank.engine.run import train_one
from ltrank.engine.trainer import Trainer
from ltrank.recipe import load_recipe
from ltrank.registry import Spec

CPU = torch.device("cpu")


class PluginCE(nn.Module):
    """A plugin-style loss: per-sample mean cross-entropy over the rank's own slice (no global batch)."""

    calls = 0

    def __init__(self, class_counts):
        super().__init__()

    def forward(self, logits, targets):
        type(self).calls += 1
        return nn.functional.cross_entropy(logits, targets)


class NanOnRank1(PluginCE):
    """Rank 1's third loss is NaN; rank 0's stays finite."""

    calls = 0

    def forward(self, logits, targets):
        value = super().forward(logits, targets)
        return value * float("nan") if rank() == 1 and type(self).calls == 3 else value


class StopOnRank1(PluginCE):
    """Rank 1 sends itself SIGTERM during its third step; rank 0 gets no signal."""

    calls = 0

    def forward(self, logits, targets):
        if rank() == 1 and type(self).calls == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().forward(logits, targets)


def register_test_losses() -> None:
    LOSSES._entries["plugin_ce"] = Spec(PluginCE, "test: per-sample mean CE of the rank's slice")
    LOSSES._entries["nan_on_rank1"] = Spec(NanOnRank1, "test: NaN on rank 1")
    LOSSES._entries["stop_on_rank1"] = Spec(StopOnRank1, "test: SIGTERM on rank 1")


def outcome(fn) -> dict:
    """What ``fn()`` did on this rank: its record as a dict (or None), or the error it raised."""
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - the test compares every kind
        return {"error": type(exc).__name__, "message": str(exc), "shown_by_rank0": shown_by_rank0(exc)}
    return {"record": None if result is None else result.model_dump(mode="json")}


def trainer_state(recipe_path: Path, overrides: list[str]) -> dict:
    """Train with :class:`Trainer` directly (no run folder); the state every rank ends with."""
    recipe = load_recipe(str(recipe_path), overrides)
    data = load_training_data(recipe.recipe.data)
    trainer = Trainer(recipe.recipe, data, seed=0, device=CPU)
    state = trainer.fit()
    return {"history": state.history, "final": state.final,
            "model": {k: v.clone() for k, v in trainer.model.state_dict().items()},
            "losses": [{k: v.clone() for k, v in loss.module.state_dict().items()} for loss in trainer.losses]}


def engine_checks(rank_: int, world: int, folder: str) -> dict:
    register_test_losses()
    base = Path(folder)
    step, staged = base / "step.toml", base / "staged.toml"
    out: dict = {}

    def run(recipe: Path, where: str, overrides=(), resume=False):
        return outcome(lambda: train_one(load_recipe(str(recipe), list(overrides)), seed=0, out=base / where,
                                         device=CPU, resume=resume))

    out["step"] = run(step, "two")
    out["step_local"] = run(step, "two_local", ['loss.params.scope="local"'])
    out["again"] = run(step, "two")
    out["skip"] = run(step, "two", resume=True)
    out["odd"] = run(step, "odd", ["train.batch_size=7"])
    out["plugin"] = run(step, "plugin", ['loss.name="plugin_ce"', "train.max_batches_per_epoch=5", "train.epochs=2",
                                         "train.milestones=[2]"])
    out["nan"] = run(step, "nan", ['loss.name="nan_on_rank1"', "train.max_batches_per_epoch=5"])
    out["nan_calls"] = NanOnRank1.calls
    out["stop"] = run(step, "stop", ['loss.name="stop_on_rank1"', "train.max_batches_per_epoch=5"])
    out["stop_calls"] = StopOnRank1.calls
    out["staged"] = trainer_state(staged, [])
    return out
