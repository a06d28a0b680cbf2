"""Sweep overhead on CPU: `ltrank sweep --workers 1` vs the same runs through `ltrank train` one by one.

Both sides train the same 4 runs (a tiny generated image set, 1 recipe x seeds 0-3, one thread
per process) from empty folders: side A is one `python -m ltrank sweep R --seeds 0,1,2,3
--workers 1`, side B four `python -m ltrank train --recipe R --seed S` one after the other. The
sides alternate in rounds (ABBA order, so neither always goes first and a busy machine slows
both alike). Reported: the overhead A / B - 1 of the fastest rounds (goal <= 5%) and of the
medians; the same ratio for CPU time (user + system of every process of a side); the
machinery overhead, i.e. each side's wall time minus the training time its runs recorded
(start-ups, the sweep's planning, gaps between runs), as the difference of the two sides over
side B (the least sensitive to other jobs slowing the training itself); the sweep's fixed cost
(a `--dry-run` of the same sweep: start-up and planning) and the rest per run; and whether both
sides ended with identical records (they must).

The fixed cost is about one Python + torch start-up, so the overhead shrinks as runs get longer:
`--epochs` sets the run length (the default makes each tiny run a few tens of seconds here).

    python benchmarks/sweep_overhead.py --epochs 150 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SEEDS = (0, 1, 2, 3)


def write_tiny_set(folder: Path, epochs: int) -> Path:
    """A 4-class set of 8x8 images (ResNet-32, batch 8) and a recipe training CE on it; returns the recipe."""
    rng = np.random.RandomState(0)
    train_labels = np.repeat(np.arange(4), 20)
    test_labels = np.repeat(np.arange(4), 3)
    np.savez(folder / "tiny.npz", train_images=rng.randint(0, 256, (80, 8, 8, 3), dtype=np.uint8),
             train_labels=train_labels, test_images=rng.randint(0, 256, (12, 8, 8, 3), dtype=np.uint8),
             test_labels=test_labels, class_names=np.array(["a", "b", "c", "d"]))
    recipe = folder / "bench-tiny.toml"
    recipe.write_text(f'[data]\nsource = "npz:{folder / "tiny.npz"}"\nimbalance_ratio = 4\n\n[loss]\nname = "ce"\n\n'
                      f"[train]\nepochs = {epochs}\nbatch_size = 8\nwarmup_epochs = 1\nmilestones = []\n")
    return recipe


def run(cmd: list[str], env: dict[str, str], cpu: list[float] | None = None) -> float:
    """Wall seconds of ``cmd``; adds its CPU seconds (its whole process tree) to ``cpu[0]``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu[0] += after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall


def ltrank(*args: str) -> list[str]:
    return [sys.executable, "-m", "ltrank", *args]


def recorded_seconds(out: Path) -> float:
    """Training time the runs under ``out`` recorded themselves (train_one: data, epochs, evaluation)."""
    return sum(json.loads(p.read_text())["timings"]["total_seconds"] for p in out.glob("*/*/seed*/record.json"))


def finals(out: Path) -> dict[int, dict]:
    found = {}
    for path in out.glob("*/*/seed*/record.json"):
        record = json.loads(path.read_text())
        found[record["seed"]] = {"final": record["final"], "losses": [h["train_loss"] for h in record["history"]]}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150, help="epochs of each tiny run (its length)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each side")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sweep_overhead.json")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}

    sweep_s: list[float] = []
    train_s: list[float] = []
    sweep_cpu: list[float] = []
    train_cpu: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        recipe = write_tiny_set(root, args.epochs)
        seeds = ",".join(map(str, SEEDS))
        fixed = run(ltrank("sweep", str(recipe), "--seeds", seeds, "--out", str(root / "dry"), "--dry-run"), env)

        def side_a(k: int) -> None:
            out, cpu = root / f"sweep{k}", [0.0]
            sweep_s.append(run(ltrank("sweep", str(recipe), "--seeds", seeds, "--out", str(out), "--workers", "1",
                                      "--device", "cpu"), env, cpu))
            sweep_cpu.append(cpu[0])

        def side_b(k: int) -> None:
            out, cpu = root / f"train{k}", [0.0]
            train_s.append(sum(run(ltrank("train", "--recipe", str(recipe), "--seed", str(s), "--out", str(out),
                                          "--device", "cpu"), env, cpu) for s in SEEDS))
            train_cpu.append(cpu[0])

        for k in range(args.rounds):
            for side in ((side_a, side_b) if k % 2 == 0 else (side_b, side_a)):
                side(k)
                print(f"round {k}: {side.__name__} done", flush=True)
        machinery = [(a - recorded_seconds(root / f"sweep{k}")) - (b - recorded_seconds(root / f"train{k}"))
                     for k, (a, b) in enumerate(zip(sweep_s, train_s, strict=True))]
        identical = all(finals(root / f"sweep{k}") == finals(root / f"train{k}") for k in range(args.rounds))
        identical = identical and len(finals(root / "sweep0")) == len(SEEDS)

    fastest = min(sweep_s) / min(train_s) - 1
    medians = statistics.median(sweep_s) / statistics.median(train_s) - 1
    per_run = (statistics.median(sweep_s) - statistics.median(train_s) - fixed) / len(SEEDS)
    result = {
        "runs": len(SEEDS), "epochs_per_run": args.epochs, "rounds": args.rounds, "threads_per_process": 1,
        "sweep_seconds": sweep_s, "train_one_by_one_seconds": train_s,
        "overhead_fastest_rounds": fastest, "overhead_of_medians": medians, "goal": 0.05,
        "sweep_cpu_seconds": sweep_cpu, "train_one_by_one_cpu_seconds": train_cpu,
        "cpu_overhead_of_medians": statistics.median(sweep_cpu) / statistics.median(train_cpu) - 1,
        "machinery_extra_seconds": machinery,
        "machinery_overhead_of_medians": statistics.median(machinery) / statistics.median(train_s),
        "sweep_fixed_seconds_dry_run": fixed, "sweep_other_overhead_seconds_per_run": per_run,
        "mean_run_seconds_one_by_one": statistics.median(train_s) / len(SEEDS),
        "identical_records": identical,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"sweep --workers 1 vs ltrank train one by one, {len(SEEDS)} runs of {args.epochs} epochs "
          f"({result['mean_run_seconds_one_by_one']:.1f} s each): overhead {100 * fastest:.1f}% (fastest rounds), "
          f"{100 * medians:.1f}% (medians); goal <= 5%; CPU time: {100 * result['cpu_overhead_of_medians']:.1f}%; "
          f"machinery (wall minus recorded training): {100 * result['machinery_overhead_of_medians']:.1f}%")
    print(f"fixed (start-up + planning, a dry run): {fixed:.2f} s; the rest: {per_run:.2f} s per run; "
          f"identical records: {identical}; saved {args.out}")


if __name__ == "__main__":
    main()
