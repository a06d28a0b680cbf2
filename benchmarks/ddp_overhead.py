"""What does ranking over the global batch add to a distributed training step? (issue 12 target)

Two CPU processes joined by a gloo process group (torch.multiprocessing, 127.0.0.1), each
holding half of the global batch, time for B=128/C=100 and B=512/C=1000:

* the AP loss's forward + backward on the rank's slice with ``scope="global"`` (all-gather of
  the logits and targets of both ranks, the exact kernel on the global batch, this rank's
  gradient rows) and with ``scope="local"`` (the kernel on the slice alone), interleaved;
* the all-gather alone (``ltrank.distributed.global_batch`` on detached logits);
* one DistributedDataParallel ResNet-32 training step on the slice (32x32 images, forward, the
  local AP loss, backward with DDP's gradient all-reduce, SGD).

The added cost is median(global) - median(local), reported as a fraction of the median step.
Goal: at most 5%. Both ranks start every timed call together (a barrier outside the timing);
rank 0's numbers are printed, both ranks' are saved. Times are medians (and minima) in ms.

    python benchmarks/ddp_overhead.py [--repeats 20] [--step-repeats 4] [--threads 1] [--out PATH]

Prints a table and writes benchmarks/results/ddp_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from ltrank.distributed import global_batch
from ltrank.losses import APLoss
from ltrank.models import resnet32

RESULTS = Path(__file__).parent / "results" / "ddp_overhead.json"
WORLD = 2
CONFIGS = [(128, 100), (512, 1000)]  # (global batch, classes)


def timed(fn: Callable[[], object]) -> float:
    """Milliseconds of one call, started together on every rank."""
    dist.barrier()
    start = time.perf_counter()
    fn()
    return 1000.0 * (time.perf_counter() - start)


def summary(times: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(times), "min_ms": min(times), "n": len(times)}


def measure(rank: int, batch: int, classes: int, repeats: int, step_repeats: int) -> dict:
    local = batch // WORLD
    g = torch.Generator().manual_seed(100 + rank)
    logits = torch.randn(local, classes, generator=g)
    targets = torch.randint(0, classes, (local,), generator=g)
    losses = {scope: APLoss(delta=1.0, scope=scope) for scope in ("global", "local")}

    def loss_call(scope: str) -> None:
        z = logits.clone().requires_grad_(True)
        losses[scope](z, targets).backward()

    times: dict[str, list[float]] = {"global": [], "local": [], "gather": []}
    for i in range(repeats + 1):  # first round: warm-up, not kept
        for scope in (("global", "local") if i % 2 else ("local", "global")):
            t = timed(lambda: loss_call(scope))
            if i:
                times[scope].append(t)
        t = timed(lambda: global_batch(logits, targets))
        if i:
            times["gather"].append(t)

    torch.manual_seed(0)
    model = DistributedDataParallel(resnet32(classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = torch.randn(local, 3, 32, 32, generator=g)
    step_loss = losses["local"]

    def step() -> None:
        loss = step_loss(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    steps = [timed(step) for _ in range(step_repeats + 1)][1:]
    out = {name: summary(t) for name, t in times.items()}
    out["step"] = summary(steps)
    out["added_ms"] = out["global"]["median_ms"] - out["local"]["median_ms"]
    out["added_fraction_of_step"] = out["added_ms"] / out["step"]["median_ms"]
    out["added_fraction_of_step_minima"] = (out["global"]["min_ms"] - out["local"]["min_ms"]) / out["step"]["min_ms"]
    return out


def worker(rank: int, port: int, args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=timedelta(minutes=30))
    try:
        mine = {f"B{b}_C{c}": measure(rank, b, c, args.repeats, args.step_repeats) for b, c in CONFIGS}
        everyone: list[dict | None] = [None] * WORLD
        dist.all_gather_object(everyone, mine)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        report(everyone, args)


def report(per_rank: list, args: argparse.Namespace) -> None:
    result = {
        "command": " ".join(["python", "benchmarks/ddp_overhead.py", *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "processes": WORLD, "backend": "gloo",
                    "threads_per_process": args.threads, "loadavg_before": args.load_before,
                    "loadavg_after": os.getloadavg(), "seconds": time.time() - args.started},
        "goal": "added_fraction_of_step <= 0.05",
        "rank0": per_rank[0],
        "per_rank": per_rank,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(args.out)
    m = result["machine"]
    print(f"torch {m['torch']}, {WORLD} gloo processes x {args.threads} thread(s), {m['cpus']} CPUs; "
          f"load average {m['loadavg_before'][0]:.1f} -> {m['loadavg_after'][0]:.1f}")
    print("per rank (rank 0), ms median (min) | AP global | AP local | gather alone | DDP ResNet-32 step | added / step")
    for name, r in per_rank[0].items():
        cells = [f"{r[k]['median_ms']:.2f} ({r[k]['min_ms']:.2f})" for k in ("global", "local", "gather")]
        step = f"{r['step']['median_ms']:.0f} ({r['step']['min_ms']:.0f})"
        print(f"{name:12s} | {' | '.join(cells)} | {step} | {100 * r['added_fraction_of_step']:.2f}% "
              f"(minima {100 * r['added_fraction_of_step_minima']:.2f}%; goal <= 5%)")
    print(f"wrote {args.out}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed AP-loss calls per scope and config")
    parser.add_argument("--step-repeats", type=int, default=4, help="timed ResNet-32 steps per config")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.load_before, args.started = os.getloadavg(), time.time()
    mp.spawn(worker, args=(free_port(), args), nprocs=WORLD, join=True)


if __name__ == "__main__":
    main()
