#!/usr/bin/env bash
# Time a few epochs of cifar100-ir100-cbdelta on one CUDA GPU and extrapolate to the protocol's
# 200 epochs (goal: at most 5 minutes on one H100). Installs nothing: it runs ltrank from this
# source tree (PYTHONPATH) with the torch already on the machine.
#
#   LTRANK_DATA_DIR=/path/to/pools bash benchmarks/gpu_check.sh [EPOCHS [key=value ...]]
#
# Extra key=value arguments are passed on as --set overrides (only to try the script itself on
# a CPU, e.g. DEVICE=cpu bash benchmarks/gpu_check.sh 2 data.source=npz:tiny.npz).
# EPOCHS (default 4) are trained with the recipe's real settings except the epoch count, evaluating
# on the 10,000 test images after every epoch as the recipe does. Epoch 1 pays for CUDA/cuDNN
# warm-up, so the estimate is: data loading + epoch 1 + 199 x the median of the later epochs.
# Prints one summary line and writes JSON to $OUT/gpu_check.json (or benchmarks/results/).
set -euo pipefail

EPOCHS="${1:-4}"
shift || true
DEVICE="${DEVICE:-cuda}"
SETS=()
for kv in "$@"; do SETS+=(--set "$kv"); done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export LTRANK_NO_PLUGINS=1
PY="${PYTHON:-python}"

if [ -z "${LTRANK_DATA_DIR:-}" ]; then
  for candidate in "$ROOT/shared/data" "$ROOT/../shared/data"; do
    if [ -f "$candidate/cifar100-lt-pool.npz" ]; then export LTRANK_DATA_DIR="$candidate"; break; fi
  done
fi
if [ ! -f "${LTRANK_DATA_DIR:-/nonexistent}/cifar100-lt-pool.npz" ] && [ ! -d "${LTRANK_DATA_DIR:-/nonexistent}/cifar-100-python" ]; then
  echo "gpu_check: no CIFAR-100 data; set LTRANK_DATA_DIR to a folder with cifar100-lt-pool.npz" >&2
  exit 2
fi

"$PY" - <<'EOF' || exit 2
import importlib.util, os, sys
missing = [m for m in ("torch", "numpy", "pydantic", "typer", "rich") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing Python packages {missing}; pip install them (no other setup is needed)")
import torch
if os.environ.get("DEVICE", "cuda") == "cuda" and not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device")
EOF

RUNS="$(mktemp -d)"
trap 'rm -rf "$RUNS"' EXIT
START=$(date +%s.%N)
"$PY" -c "from ltrank.cli.app import main; main()" train --recipe cifar100-ir100-cbdelta --device "$DEVICE" \
  --set "train.epochs=$EPOCHS" "${SETS[@]}" --out "$RUNS" --seed 0 > "$RUNS/train.log" 2>&1 || { cat "$RUNS/train.log" >&2; exit 1; }
END=$(date +%s.%N)

RESULTS="${OUT:-$ROOT/benchmarks/results}"
mkdir -p "$RESULTS"
"$PY" - "$RUNS" "$START" "$END" "$RESULTS/gpu_check.json" <<'EOF'
import json, statistics, sys, time
from pathlib import Path
import torch

runs, start, end, out = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
(record_path,) = runs.glob("*/*/seed0/record.json")
record = json.loads(record_path.read_text())
epochs = [h["seconds"] for h in record["history"]]
steady = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]
eval_per_epoch = record["timings"]["eval_seconds"] / len(epochs)
estimate = record["timings"]["data_seconds"] + epochs[0] + 199 * steady
result = {
    "device": torch.cuda.get_device_name(0) if record["environment"]["device"].startswith("cuda") else "cpu", "torch": torch.__version__, "recipe": "cifar100-ir100-cbdelta",
    "epochs_timed": len(epochs), "epoch_seconds": epochs, "steady_epoch_seconds": steady,
    "eval_seconds_per_epoch": eval_per_epoch, "data_seconds": record["timings"]["data_seconds"],
    "process_wall_seconds": end - start, "estimated_200_epoch_seconds": estimate, "goal_seconds": 300,
    "final_top1_after_timed_epochs": record["final"]["top1"], "date": time.strftime("%Y-%m-%d"),
}
out.write_text(json.dumps(result, indent=2) + "\n")
print(f"{result['device']}: epoch 1 {epochs[0]:.2f} s, then {steady:.2f} s/epoch "
      f"({eval_per_epoch:.2f} s of it test-set evaluation); 200 epochs ~ {estimate / 60:.1f} min "
      f"(goal <= 5 min); wrote {out}")
EOF
