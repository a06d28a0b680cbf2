#!/usr/bin/env bash
# Time a few epochs of cifar100-ir100-cbdelta on one CUDA GPU and extrapolate to the protocol's
# 200 epochs (goal: at most 5 minutes on one H100). Installs nothing system-wide: it runs ltrank
# from this source tree (PYTHONPATH) with the torch already on the machine.
#
#   bash benchmarks/gpu_check.sh [EPOCHS [key=value ...]]
#
# On a lent device machine (see /work/.library/device/README.md), from a session's checkout:
#   1. here, once: `bash benchmarks/gpu_wheels.sh` (the device image has no pydantic; this saves
#      its wheels in .whl/, which git ignores; about 3 MB);
#   2. run there: command `bash benchmarks/gpu_check.sh`, carry [".whl"], timeout_s 420.
# It takes about a minute there; the JSON comes back as gpu_check.json from $OUT.
#
# Data: CIFAR-100 from $LTRANK_DATA_DIR (or ./shared/data, ../shared/data) when present. The
# offline pool (82 MB) is too big to travel to a device machine (64 MiB per call), so when no
# CIFAR-100 is found the script writes a SYNTHETIC stand-in of the same shape (random 32x32
# images with the exact CIFAR-100-LT IR100 class counts, 10,847 train / 10,000 test): epoch
# times do not depend on pixel values, accuracies are meaningless, and the JSON says "synthetic".
#
# EPOCHS (default 4) are trained with the recipe's real settings except the epoch count (and, so that
# the recipe checks accept the short run, no LR milestones and a warm-up of at most EPOCHS), evaluating
# on the 10,000 test images after every epoch as the recipe does. Epoch 1 pays for CUDA/cuDNN
# warm-up, so the estimate is: data loading + epoch 1 + 199 x the median of the later epochs.
# Extra key=value arguments become --set overrides (to try the script on a CPU:
# DEVICE=cpu bash benchmarks/gpu_check.sh 1 train.max_batches_per_epoch=2).
# Prints one summary line and writes JSON to $OUT/gpu_check.json (or benchmarks/results/).
set -euo pipefail

EPOCHS="${1:-4}"
shift || true
DEVICE="${DEVICE:-cuda}"
export DEVICE
SETS=()
for kv in "$@"; do SETS+=(--set "$kv"); done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export LTRANK_NO_PLUGINS=1
# The device image has 'python3' only; PYTHON overrides.
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"; elif command -v python3 >/dev/null; then PY=python3; else PY=python; fi

RUNS="$(mktemp -d)"
trap 'rm -rf "$RUNS"' EXIT

# Missing pure-Python dependencies (pydantic on the device image) from carried wheels in .whl/.
if ! "$PY" -c "import pydantic" 2>/dev/null && compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$RUNS/site" "$ROOT"/.whl/*.whl
  export PYTHONPATH="$RUNS/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

if [ -z "${LTRANK_DATA_DIR:-}" ]; then
  for candidate in "$ROOT/shared/data" "$ROOT/../shared/data"; do
    if [ -f "$candidate/cifar100-lt-pool.npz" ]; then export LTRANK_DATA_DIR="$candidate"; break; fi
  done
fi

"$PY" - <<'EOF' || exit 2
import importlib.util, os, sys
missing = [m for m in ("torch", "numpy", "pydantic", "typer", "rich") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing Python packages {missing}; run 'bash benchmarks/gpu_wheels.sh' here "
             "and carry .whl (see the header of benchmarks/gpu_check.sh)")
import torch
if os.environ["DEVICE"].startswith("cuda") and not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device")
EOF

DATA=real
if [ ! -f "${LTRANK_DATA_DIR:-/nonexistent}/cifar100-lt-pool.npz" ] && [ ! -d "${LTRANK_DATA_DIR:-/nonexistent}/cifar-100-python" ]; then
  DATA=synthetic
  export LTRANK_DATA_DIR="$RUNS/data"
  mkdir -p "$LTRANK_DATA_DIR"
  "$PY" - "$LTRANK_DATA_DIR/cifar100-lt-pool.npz" <<'EOF'
# A stand-in for the CIFAR-100 pool: 100 classes, the IR100 counts (docs/method.md section 1), random pixels.
import sys
import numpy as np
rng = np.random.default_rng(0)
counts = [int(500 * (1 / 100) ** (c / 99)) for c in range(100)]
train_labels = np.repeat(np.arange(100), counts)
test_labels = np.repeat(np.arange(100), 100)
np.savez(sys.argv[1],
         train_images=rng.integers(0, 256, (len(train_labels), 32, 32, 3), dtype=np.uint8), train_labels=train_labels,
         test_images=rng.integers(0, 256, (len(test_labels), 32, 32, 3), dtype=np.uint8), test_labels=test_labels,
         class_names=np.array([f"class{c}" for c in range(100)]))
EOF
  echo "gpu_check: no CIFAR-100 found; timing on synthetic data of the same shape" >&2
fi

START=$(date +%s.%N)
"$PY" -c "from ltrank.cli.app import main; main()" train --recipe cifar100-ir100-cbdelta --device "$DEVICE" \
  --set "train.epochs=$EPOCHS" --set "train.milestones=[]" --set "train.warmup_epochs=$(( EPOCHS < 5 ? EPOCHS : 5 ))" \
  ${SETS[@]+"${SETS[@]}"} --out "$RUNS/runs" --seed 0 > "$RUNS/train.log" 2>&1 \
  || { cat "$RUNS/train.log" >&2; exit 1; }
END=$(date +%s.%N)

RESULTS="${OUT:-$ROOT/benchmarks/results}"
mkdir -p "$RESULTS"
"$PY" - "$RUNS/runs" "$START" "$END" "$RESULTS/gpu_check.json" "$DATA" <<'EOF'
import json, statistics, sys, time
from pathlib import Path
import torch

runs, start, end, out, data = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
(record_path,) = runs.glob("*/*/seed0/record.json")
record = json.loads(record_path.read_text())
epochs = [h["seconds"] for h in record["history"]]
steady = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]
eval_per_epoch = record["timings"]["eval_seconds"] / len(epochs)
estimate = record["timings"]["data_seconds"] + epochs[0] + 199 * steady
result = {
    "device": record["environment"]["device"], "torch": torch.__version__, "recipe": "cifar100-ir100-cbdelta",
    "data": data, "class_counts_total": sum(record["data"]["class_counts"]),
    "epochs_timed": len(epochs), "epoch_seconds": epochs, "steady_epoch_seconds": steady,
    "eval_seconds_per_epoch": eval_per_epoch, "data_seconds": record["timings"]["data_seconds"],
    "process_wall_seconds": end - start, "estimated_200_epoch_seconds": estimate, "goal_seconds": 300,
    "final_top1_after_timed_epochs": record["final"]["top1"], "date": time.strftime("%Y-%m-%d"),
}
out.write_text(json.dumps(result, indent=2) + "\n")
print(f"{result['device']} ({data} data): epoch 1 {epochs[0]:.2f} s, then {steady:.2f} s/epoch "
      f"({eval_per_epoch:.2f} s of it test-set evaluation); 200 epochs ~ {estimate / 60:.1f} min "
      f"(goal <= 5 min); wrote {out}")
EOF
