"""Trainer overhead on CPU: the real training loop vs a bare forward + backward + SGD step.

Times N training batches of ``ltrank.engine.trainer.Trainer`` (data order, batched augmentation
on the device, the recipe's loss with its class weights, loss/accuracy bookkeeping, the per-batch
divergence check, event callback) against the bare model's forward + cross-entropy + backward +
optimiser step over the same batches already augmented in memory. The two alternate in rounds
(in ABBA order, so neither side always goes first) so that a busy machine slows both alike. The
result is the ratio of the fastest rounds (the least disturbed ones; goal <= 1.10); the ratio of
the medians is reported beside it.
Evaluation on the test set is not part of either side (it is reported by the trainer separately
and runs every ``eval.every`` epochs).

    LTRANK_DATA_DIR=../shared/data python benchmarks/train_speed.py --batches 8 --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ltrank.data import load_longtailed
from ltrank.data.batches import iterate_batches
from ltrank.engine.device import to_model_layout
from ltrank.engine.trainer import Trainer
from ltrank.recipe import load_recipe

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cifar10-ir100-cbdelta", help="recipe whose data, model and loss to use")
    parser.add_argument("--batches", type=int, default=5, help="training batches per timed round")
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds of each side")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "train_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")

    recipe = load_recipe(args.recipe, [f"train.max_batches_per_epoch={args.batches}"]).recipe
    data = load_longtailed(recipe.data)
    trainer = Trainer(recipe, data, seed=0, device=device)

    # The bare side: a plain model, SGD, and the same number of batches, augmented beforehand.
    bare_model = copy.deepcopy(trainer.model)
    bare_opt = torch.optim.SGD(bare_model.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=2e-4)
    gen = torch.Generator().manual_seed(0)
    batches = []
    for x, y in iterate_batches(data.train_images, data.train_labels, recipe.train.batch_size, shuffle=True,
                                drop_last=True, generator=gen, augment=True):
        batches.append((to_model_layout(x), y))  # the layout the trainer's model is kept in
        if len(batches) == args.batches:
            break

    def bare_round() -> float:
        bare_model.train()
        start = time.perf_counter()
        for x, y in batches:
            loss = F.cross_entropy(bare_model(x), y)
            bare_opt.zero_grad(set_to_none=True)
            loss.backward()
            bare_opt.step()
        return time.perf_counter() - start

    def trainer_round(epoch: int) -> float:
        start = time.perf_counter()
        trainer._enter_phase(epoch)
        trainer._train_epoch(epoch)
        return time.perf_counter() - start

    bare_round()  # warm-up both sides (first calls pay for lazy initialisation)
    trainer_round(1)
    bare, real = [], []
    for r in range(args.rounds):
        if r % 2 == 0:
            real.append(trainer_round(r + 2))
            bare.append(bare_round())
        else:
            bare.append(bare_round())
            real.append(trainer_round(r + 2))
        print(f"round {r + 1}: trainer {real[-1]:.2f} s, bare {bare[-1]:.2f} s, ratio {real[-1] / bare[-1]:.3f}")
    ratio = min(real) / min(bare)
    median_ratio = statistics.median(real) / statistics.median(bare)
    data_ms, loss_ms, ce_ms = isolated_overheads(trainer, recipe.train.batch_size, args.batches)
    derived = (min(bare) / args.batches * 1000 + data_ms + loss_ms - ce_ms) / (min(bare) / args.batches * 1000)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {
        "recipe": args.recipe, "loss": recipe.loss.name, "batches_per_round": args.batches,
        "batch_size": recipe.train.batch_size, "rounds": args.rounds, "threads": args.threads,
        "trainer_seconds": real, "bare_seconds": bare,
        "trainer_ms_per_batch_fastest_round": 1000 * min(real) / args.batches,
        "bare_ms_per_batch_fastest_round": 1000 * min(bare) / args.batches,
        "ratio_trainer_over_bare": ratio, "ratio_of_medians": median_ratio, "goal": 1.10,
        "isolated_ms_per_batch": {"data_preparation": data_ms, "recipe_loss_forward_backward": loss_ms,
                                  "ce_forward_backward": ce_ms},
        "ratio_derived_from_isolated_overheads": derived,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "load_average_1min_at_end": load},
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"fastest rounds: trainer {result['trainer_ms_per_batch_fastest_round']:.0f} ms/batch, bare "
          f"{result['bare_ms_per_batch_fastest_round']:.0f} ms/batch: ratio {ratio:.3f} (goal <= 1.10); ratio of "
          f"medians {median_ratio:.3f}; from isolated overheads (data {data_ms:.1f} ms, loss {loss_ms:.1f} ms vs "
          f"CE {ce_ms:.1f} ms per batch) {derived:.3f}; 1-min load average {load}; saved {args.out}")


def isolated_overheads(trainer: Trainer, batch_size: int, batches: int) -> tuple[float, float, float]:
    """Median ms per batch of what the trainer adds to a bare step, each timed on its own (far
    less disturbed by a busy machine than whole steps): data preparation, and the recipe's loss
    forward + backward against cross-entropy's (which the bare side uses)."""
    data_times = []
    batch_iter = trainer._batches(trainer.state.epoch + 1)
    for _ in range(batches):
        start = time.perf_counter()
        next(batch_iter)
        data_times.append(time.perf_counter() - start)
    loss = trainer.losses[0].module
    logits = torch.randn(batch_size, trainer.data.num_classes, requires_grad=True)
    labels = trainer.feed.train_labels
    targets = labels[torch.randperm(len(labels))[:batch_size]]

    def timed(fn) -> float:
        values = []
        for _ in range(15):
            start = time.perf_counter()
            fn(logits, targets).backward()
            values.append(time.perf_counter() - start)
        return 1000 * statistics.median(values)

    return 1000 * statistics.median(data_times), timed(loss), timed(F.cross_entropy)


if __name__ == "__main__":
    main()
