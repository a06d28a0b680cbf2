"""Does the channels_last memory layout pay on this CPU? (issue 11.4, measured in one run.)

    python benchmarks/layout_speed.py [--batches 20] [--rounds 4] [--threads 2]

Times training epochs of the real trainer on the ``quickstart`` recipe (AP CB Delta, ResNet-32,
CIFAR-10-LT IR 100, batches of 128; each epoch capped at ``--batches`` batches, no test pass) in
the layout ltrank uses on every device (channels_last) and in the contiguous layout it used on
CPU before, alternating the two (ABBA) so that load changes hit both. Also the bare ResNet-32
step (forward + backward + SGD) in each layout. Prints the ratios and writes
benchmarks/results/layout_speed.json. The contiguous side is the same trainer with the two
layout helpers of :mod:`ltrank.engine.device` switched back, nothing else changed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "layout_speed.json"


@contextmanager
def contiguous_layout():
    """The engine as it was on CPU before: images and model in the default (contiguous) layout."""
    from ltrank.engine import device, trainer

    saved = (device.to_model_layout, device.place_model, trainer.to_model_layout, trainer.place_model)

    def same(x: torch.Tensor) -> torch.Tensor:
        return x

    def place(model, dev):
        return model.to(dev)

    device.to_model_layout, device.place_model = same, place
    trainer.to_model_layout, trainer.place_model = same, place
    try:
        yield
    finally:
        device.to_model_layout, device.place_model, trainer.to_model_layout, trainer.place_model = saved


def epoch_seconds(data, batches: int) -> float:
    """One trainer epoch of the quickstart recipe capped at ``batches`` batches (no test pass)."""
    from ltrank.engine.trainer import Trainer
    from ltrank.recipe import load_recipe

    recipe = load_recipe("quickstart", [f"train.max_batches_per_epoch={batches}", "train.epochs=1",
                                        "train.milestones=[]", "train.warmup_epochs=1"]).recipe
    trainer = Trainer(recipe, data, seed=0, device=torch.device("cpu"))
    trainer._enter_phase(1)
    start = time.perf_counter()
    trainer._train_epoch(1)
    return time.perf_counter() - start


def bare_step_seconds(channels_last: bool, steps: int = 5) -> float:
    from ltrank.catalog import BACKBONES

    torch.manual_seed(0)
    model = BACKBONES.build("resnet32", num_classes=10)
    x, y = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from ltrank.data import DatasetConfig, load_longtailed

    data = load_longtailed(DatasetConfig(source="cifar10", imbalance_ratio=100))
    times: dict[str, list[float]] = {"channels_last": [], "contiguous": []}
    steps: dict[str, list[float]] = {"channels_last": [], "contiguous": []}
    for r in range(args.rounds):
        order = ("channels_last", "contiguous") if r % 2 == 0 else ("contiguous", "channels_last")
        for layout in order:
            if layout == "contiguous":
                with contiguous_layout():
                    times[layout].append(epoch_seconds(data, args.batches))
            else:
                times[layout].append(epoch_seconds(data, args.batches))
            steps[layout].append(bare_step_seconds(layout == "channels_last"))
    med = {k: statistics.median(v) for k, v in times.items()}
    fast = {k: min(v) for k, v in times.items()}
    step = {k: statistics.median(v) for k, v in steps.items()}
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(), "threads": args.threads,
        "load_average": os.getloadavg(), "torch": torch.__version__, "batches_per_epoch": args.batches,
        "trainer_epoch_seconds": times, "bare_step_seconds": steps,
        "trainer_speedup_median": med["contiguous"] / med["channels_last"],
        "trainer_speedup_fastest": fast["contiguous"] / fast["channels_last"],
        "bare_step_speedup_median": step["contiguous"] / step["channels_last"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"quickstart trainer epoch ({args.batches} batches), contiguous / channels_last: "
          f"{result['trainer_speedup_median']:.3f}x (medians), {result['trainer_speedup_fastest']:.3f}x (fastest); "
          f"bare ResNet-32 step: {result['bare_step_speedup_median']:.3f}x; load {os.getloadavg()[0]:.1f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
