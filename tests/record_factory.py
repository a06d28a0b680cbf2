"""Synthetic run records for the results/compare tests (no training involved)."""

from __future__ import annotations

from ltrank.metrics import make_metrics
from ltrank.records import DataInfo, Environment, EpochStats, RunRecord

CIFAR10_IR100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # docs/method.md section 1


def make_record(
    per_class: list[float],
    *,
    seed: int = 0,
    recipe_name: str = "cifar10-ir100-cbdelta",
    config_hash: str = "hash-a",
    status: str = "finished",
    counts: list[int] | None = None,
    source: str = "cifar10",
    ir: float = 100.0,
    best_per_class: list[float] | None = None,
    recipe: dict | None = None,
    fingerprint: str = "fp",
) -> RunRecord:
    """A record whose last-epoch per-class accuracies are ``per_class`` (fractions)."""
    counts = counts or CIFAR10_IR100
    epochs = 2
    final = make_metrics(epochs, per_class, counts)
    best = make_metrics(1, best_per_class, counts) if best_per_class is not None else final
    return RunRecord(
        status=status,
        recipe_name=recipe_name,
        recipe=recipe if recipe is not None else {"loss": {"name": "ap_cb_delta", "params": {"beta": 0.99}}},
        config_hash=config_hash,
        seed=seed,
        environment=Environment(ltrank="0.1.0", torch="2.x", python="3.11", device="cpu"),
        data=DataInfo(
            source_name=source, source_kind="npz", source_path="/data/x.npz", fingerprint=fingerprint,
            class_names=[f"c{i}" for i in range(len(counts))], class_counts=counts, construction_seed=0,
            imbalance_ratio=ir, profile="exp",
        ),
        history=[EpochStats(epoch=e, lr=0.1, train_loss=1.0, train_acc=50.0, test_acc=final.top1, seconds=1.0)
                 for e in range(1, epochs + 1)],
        final=None if status != "finished" else final,
        best=None if status != "finished" else best,
        started_at=f"2026-01-01T00:00:0{seed % 10}+00:00",
        finished_at="2026-01-01T01:00:00+00:00" if status == "finished" else None,
    )
