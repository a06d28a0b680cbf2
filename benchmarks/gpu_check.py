"""The measurements of issue 11.5 on one lent GPU, as ratios and times measured in one run.

    python benchmarks/gpu_check.py [--device cuda] [--epochs 4] [--packing 1,2,4,8] [--set k=v ...]

(a) one ``cifar100-ir100-cbdelta`` run, eager and with ``train.compile = true``: epoch time and
    the extrapolated 200-epoch time (data loading + epoch 1 + 199 x the median later epoch; the
    first epoch pays for CUDA warm-up and, compiled, for compilation). Goal: <= 60 s per run.
(b) run packing: N runs of the same recipe (different seeds) at once through
    ``ltrank sweep --workers N`` on the one GPU, N = 1, 2, 4, 8; 200-epoch runs per hour each,
    and the ratio to N = 1. Goal: >= 3x; a thesis table (24-27 runs) in <= 10 minutes.
(c) the AP kernel (``ap_loss`` forward + backward, exact) at B=128/C=100 and B=512/C=1000
    against the per-positive loop of the public code (benchmarks/loss_speed.py's LoopAPLoss),
    CUDA-event timed, medians of interleaved repeats.

Every run trains the recipe's real settings except the epoch count (no LR milestones inside the
short run; warm-up at most the epochs run). ``--set`` adds overrides to every run (e.g.
``train.max_batches_per_epoch=2`` to try the script on a CPU with ``--device cpu``). Writes
``gpu_check.json`` to $OUT (the device tool brings it back) or benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "cifar100-ir100-cbdelta"


def ltrank(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m ltrank ARGS`` from this source tree; raises with its stderr when it fails."""
    proc = subprocess.run([sys.executable, "-m", "ltrank", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"ltrank {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def short_run_sets(epochs: int, extra: list[str]) -> list[str]:
    sets = [f"train.epochs={epochs}", "train.milestones=[]", f"train.warmup_epochs={min(epochs, 5)}", *extra]
    return [arg for kv in sets for arg in ("--set", kv)]


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("record.json"))]


def run_time(record: dict, epochs_full: int = 200) -> dict:
    """Epoch times of one record and its extrapolation to ``epochs_full`` epochs."""
    seconds = [h["seconds"] for h in record["history"]]
    steady = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    data = record["timings"]["data_seconds"]
    return {"epoch_seconds": seconds, "steady_epoch_seconds": steady, "data_seconds": data,
            "eval_seconds_per_epoch": record["timings"]["eval_seconds"] / len(seconds),
            "estimated_200_epoch_seconds": data + seconds[0] + (epochs_full - 1) * steady}


def part_a(device: str, epochs: int, extra: list[str], work: Path) -> dict:
    out = {}
    for mode, sets in (("eager", []), ("compiled", ["train.compile=true"])):
        folder = work / f"a-{mode}"
        start = time.perf_counter()
        ltrank("train", "--recipe", RECIPE, "--device", device, "--out", str(folder), "--seed", "0",
               *short_run_sets(epochs, [*extra, *sets]))
        (record,) = records(folder)
        out[mode] = {**run_time(record), "process_wall_seconds": time.perf_counter() - start,
                     "device": record["environment"]["device"], "top1_after_timed_epochs": record["final"]["top1"]}
    out["compiled_vs_eager_steady"] = out["compiled"]["steady_epoch_seconds"] / out["eager"]["steady_epoch_seconds"]
    out["goal_seconds_per_200_epoch_run"] = 60
    return out


def part_b(device: str, epochs: int, packing: list[int], extra: list[str], work: Path) -> dict:
    out: dict = {"runs": {}}
    for n in packing:
        folder = work / f"b-{n}"
        seeds = ",".join(str(s) for s in range(n))
        start = time.perf_counter()
        ltrank("sweep", RECIPE, "--seeds", seeds, "--workers", str(n), "--device", device, "--out", str(folder),
               *short_run_sets(epochs, extra))
        wall = time.perf_counter() - start
        done = records(folder)
        per_hour = 3600.0 * len(done) * (epochs / 200.0) / wall  # 200-epoch runs per hour
        out["runs"][str(n)] = {"runs": len(done), "wall_seconds": wall, "runs_per_hour_200_epochs": per_hour,
                               "steady_epoch_seconds": [run_time(r)["steady_epoch_seconds"] for r in done]}
    base = out["runs"][str(packing[0])]["runs_per_hour_200_epochs"]
    for n, row in out["runs"].items():
        row["speedup_vs_one_at_a_time"] = row["runs_per_hour_200_epochs"] / base
    best = max(out["runs"].values(), key=lambda r: r["runs_per_hour_200_epochs"])
    out["best_runs_per_hour"] = best["runs_per_hour_200_epochs"]
    out["estimated_table_minutes_27_runs"] = 27 / best["runs_per_hour_200_epochs"] * 60
    out["goal_speedup"], out["goal_table_minutes"] = 3, 10
    return out


def part_c(device: str, repeats: int) -> dict:
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from loss_speed import LoopAPLoss  # the public code's per-positive loop, as the baseline

    from ltrank.losses.functional import ap_loss

    dev = torch.device(device)

    def timed(fn) -> float:
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1000.0
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    out = {}
    for batch, classes in ((128, 100), (512, 1000)):
        g = torch.Generator(device="cpu").manual_seed(0)
        logits = torch.randn(batch, classes, generator=g).to(dev).requires_grad_(True)
        targets = torch.randint(0, classes, (batch,), generator=g).to(dev)

        def kernel() -> None:
            ap_loss(logits, targets).backward()

        def loop() -> None:
            LoopAPLoss.apply(logits, targets, 1.0, "thesis").backward()

        for fn in (kernel, loop):  # warm-up
            fn()
        times: dict[str, list[float]] = {"kernel": [], "loop": []}
        for _ in range(repeats):
            times["kernel"].append(timed(kernel))
            times["loop"].append(timed(loop))
        k, lp = statistics.median(times["kernel"]), statistics.median(times["loop"])
        out[f"B{batch}_C{classes}"] = {"kernel_ms": 1000 * k, "loop_ms": 1000 * lp, "speedup": lp / k}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--packing", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--parts", default="a,b,c")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    out_dir = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"date": time.strftime("%Y-%m-%d"), "device_arg": args.device, "epochs_per_run": args.epochs,
                    "data": os.environ.get("LTRANK_CHECK_DATA", "real"), "sets": args.sets}
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "a" in parts:
            result["a_one_run"] = part_a(args.device, args.epochs, args.sets, work)
            a = result["a_one_run"]
            print(f"(a) {a['eager']['device']}: eager {a['eager']['steady_epoch_seconds']:.2f} s/epoch, 200 epochs "
                  f"~ {a['eager']['estimated_200_epoch_seconds']:.0f} s; compiled {a['compiled']['steady_epoch_seconds']:.2f}"
                  f" s/epoch, ~ {a['compiled']['estimated_200_epoch_seconds']:.0f} s (goal <= 60 s)", flush=True)
        if "b" in parts:
            packing = [int(n) for n in args.packing.split(",")]
            result["b_packing"] = part_b(args.device, args.epochs, packing, args.sets, work)
            for n, row in result["b_packing"]["runs"].items():
                print(f"(b) {n} at once: {row['runs_per_hour_200_epochs']:.1f} runs/h of 200 epochs "
                      f"({row['speedup_vs_one_at_a_time']:.2f}x one at a time)", flush=True)
            print(f"(b) a 27-run thesis table ~ {result['b_packing']['estimated_table_minutes_27_runs']:.1f} min "
                  "(goal <= 10)", flush=True)
        if "c" in parts:
            result["c_ap_kernel"] = part_c(args.device, args.repeats)
            for key, row in result["c_ap_kernel"].items():
                print(f"(c) AP kernel {key}: {row['kernel_ms']:.2f} ms vs loop {row['loop_ms']:.2f} ms "
                      f"({row['speedup']:.1f}x)", flush=True)
    path = out_dir / "gpu_check.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
