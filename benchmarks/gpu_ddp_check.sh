#!/usr/bin/env bash
# Data-parallel training on 1, 2 and 8 GPUs (issue 12): for each world size, one line with the
# epoch time and whether the run equals the 1-GPU run within tolerance. A world size larger than
# the number of visible GPUs is skipped (the line says so). Called by benchmarks/gpu_check.sh;
# runs alone too:
#
#   bash benchmarks/gpu_ddp_check.sh [EPOCHS [key=value ...]]
#
# Setup on a lent device machine: as benchmarks/gpu_check.sh (carry .whl from gpu_wheels.sh).
# Recipe: cifar100-ir100-cbdelta (AP CB Delta, scope "global") with train.sync_bn = true, so that
# N processes compute what one does; data from $LTRANK_DATA_DIR, else a synthetic stand-in of the
# same shape (as gpu_check.sh; timings hold, accuracies are meaningless, the JSON says so).
#
# Two runs per world size W (W = 1 through plain `ltrank train`, W > 1 through torchrun):
#   * one training step (train.max_batches_per_epoch=1, 1 epoch): the largest parameter/statistic
#     difference from the 1-GPU checkpoint, tolerance STEP_TOL (default 5e-3: bf16 autocast);
#   * EPOCHS epochs (default 2): the median epoch time after the first (epoch 1 pays for warm-up),
#     and the train loss of every epoch and the final top-1 against the 1-GPU run, tolerances
#     LOSS_TOL (relative, default 0.02) and TOP1_TOL (points, default 2.0): rounding differences
#     grow as training goes on, so these are looser than the step's.
# Extra key=value arguments become --set overrides. WORLD_SIZES (default "1 2 8") and DEVICE
# (default cuda; DEVICE=cpu runs the same on CPU processes with gloo, e.g. to try the script:
# DEVICE=cpu WORLD_SIZES="1 2" bash benchmarks/gpu_ddp_check.sh 1 train.max_batches_per_epoch=2
# eval.max_batches=1) can be set. Prints one line per world size and writes
# $OUT/gpu_ddp_check.json (or benchmarks/results/gpu_ddp_check.json). Exit code 1 when a world
# size that ran is outside the tolerances.
set -euo pipefail

EPOCHS="${1:-2}"
shift || true
DEVICE="${DEVICE:-cuda}"
WORLD_SIZES="${WORLD_SIZES:-1 2 8}"
STEP_TOL="${STEP_TOL:-5e-3}"
LOSS_TOL="${LOSS_TOL:-0.02}"
TOP1_TOL="${TOP1_TOL:-2.0}"
export DEVICE WORLD_SIZES STEP_TOL LOSS_TOL TOP1_TOL
SETS=()
for kv in "$@"; do SETS+=(--set "$kv"); done
# shellcheck source=benchmarks/gpu_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/gpu_env.sh"

VISIBLE=$("$PY" -c "import os, torch; print(torch.cuda.device_count() if os.environ['DEVICE'] == 'cuda' else os.cpu_count())")
COMMON=(--recipe cifar100-ir100-cbdelta --device "$DEVICE" --seed 0 --set train.sync_bn=true
        --set "train.milestones=[]" --set "train.warmup_epochs=1")

train() {  # train W OUT [args...]: one ltrank train in W processes (args override SETS), log in OUT/train.log
  local w="$1" out="$2"; shift 2
  mkdir -p "$out"
  if [ "$w" -eq 1 ]; then
    "$PY" -m ltrank train "${COMMON[@]}" ${SETS[@]+"${SETS[@]}"} "$@" --out "$out/runs" > "$out/train.log" 2>&1
  else
    "$PY" -m torch.distributed.run --standalone --nproc-per-node "$w" -m ltrank train "${COMMON[@]}" \
      ${SETS[@]+"${SETS[@]}"} "$@" --out "$out/runs" > "$out/train.log" 2>&1
  fi
}

STATUS=0
for W in $WORLD_SIZES; do
  if [ "$W" -gt "$VISIBLE" ]; then
    echo "world size $W: skipped ($VISIBLE visible $( [ "$DEVICE" = cuda ] && echo GPU\(s\) || echo CPU\(s\) ))"
    continue
  fi
  train "$W" "$RUNS/w$W/step" --set train.epochs=1 --set train.max_batches_per_epoch=1 \
    || { echo "world size $W: the one-step run failed:" >&2; tail -5 "$RUNS/w$W/step/train.log" >&2; STATUS=1; continue; }
  train "$W" "$RUNS/w$W/run" --set "train.epochs=$EPOCHS" \
    || { echo "world size $W: the $EPOCHS-epoch run failed:" >&2; tail -5 "$RUNS/w$W/run/train.log" >&2; STATUS=1; continue; }
done

RESULTS="${OUT:-$ROOT/benchmarks/results}"
mkdir -p "$RESULTS"
"$PY" - "$RUNS" "$RESULTS/gpu_ddp_check.json" "$DATA" <<'EOF' || STATUS=1
import json, os, statistics, sys, time
from pathlib import Path
import torch

runs, out, data = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
step_tol, loss_tol, top1_tol = (float(os.environ[k]) for k in ("STEP_TOL", "LOSS_TOL", "TOP1_TOL"))


def one(path: Path, name: str):
    found = sorted(path.glob(f"runs/*/*/seed0/{name}"))
    return found[0] if found else None


def load(w: int):
    step, run = one(runs / f"w{w}" / "step", "checkpoint.pt"), one(runs / f"w{w}" / "run", "record.json")
    if step is None or run is None:
        return None
    return torch.load(step, map_location="cpu", weights_only=True)["model"], json.loads(run.read_text())


sizes = [int(w) for w in os.environ["WORLD_SIZES"].split()]
base = load(1)
results, bad = [], False
for w in sizes:
    got = load(w)
    if got is None:
        continue
    model, record = got
    epochs = [h["seconds"] for h in record["history"]]
    steady = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]
    row = {"world_size": w, "processes_recorded": record["environment"].get("processes", 1),
           "device": record["environment"]["device"], "epoch_seconds": epochs, "steady_epoch_seconds": steady}
    if base is not None and w != 1:
        base_model, base_record = base
        step_diff = max((model[k].double() - base_model[k].double()).abs().max().item() for k in base_model)
        loss_diff = max(abs(a["train_loss"] - b["train_loss"]) / max(abs(b["train_loss"]), 1e-12)
                        for a, b in zip(record["history"], base_record["history"]))
        top1_diff = abs(record["final"]["top1"] - base_record["final"]["top1"])
        ok = step_diff <= step_tol and loss_diff <= loss_tol and top1_diff <= top1_tol
        base_steady = statistics.median([h["seconds"] for h in base_record["history"]][1:] or
                                        [base_record["history"][0]["seconds"]])
        row.update(first_step_max_abs_diff=step_diff, train_loss_max_rel_diff=loss_diff, final_top1_abs_diff=top1_diff,
                   speedup_vs_1=base_steady / steady, within_tolerance=ok)
        bad |= not ok
        print(f"world size {w}: {steady:.2f} s/epoch (x{base_steady / steady:.2f} vs 1), first step max |diff| "
              f"{step_diff:.1e} (tol {step_tol:g}), train loss {100 * loss_diff:.2f}% (tol {100 * loss_tol:g}%), "
              f"top-1 {top1_diff:.2f} points (tol {top1_tol:g}): {'equal to 1 process' if ok else 'OUTSIDE TOLERANCE'}")
    else:
        print(f"world size {w}: {steady:.2f} s/epoch (the reference run)" if w == 1 else
              f"world size {w}: {steady:.2f} s/epoch (no 1-process run to compare with)")
    results.append(row)
out.write_text(json.dumps({"recipe": "cifar100-ir100-cbdelta", "sync_bn": True, "data": data,
                           "torch": torch.__version__, "tolerances": {"step": step_tol, "loss_rel": loss_tol,
                                                                      "top1_points": top1_tol},
                           "runs": results, "date": time.strftime("%Y-%m-%d")}, indent=2) + "\n")
print(f"wrote {out}")
sys.exit(1 if bad else 0)
EOF
exit "$STATUS"
