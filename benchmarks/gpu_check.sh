#!/usr/bin/env bash
# One prepared script for a lent GPU (issue 11.5-11.6): sets up the device image, then runs
# benchmarks/gpu_check.py -- (a) one cifar100-ir100-cbdelta run eager vs compiled, extrapolated to
# 200 epochs; (b) run packing with 1, 2, 4, 8 runs at once (ltrank sweep --workers N); (c) the AP
# kernel vs the per-positive loop -- and, when 2 or more GPUs are visible, benchmarks/gpu_ddp_check.sh.
# Installs nothing system-wide: it runs ltrank from this source tree (PYTHONPATH) with the torch
# already on the machine.
#
#   bash benchmarks/gpu_check.sh [EPOCHS [key=value ...]]
#
# On a lent device machine (see /work/.library/device/README.md), from a session's checkout:
#   1. here, once: `bash benchmarks/gpu_wheels.sh` (the device image has no pydantic; this saves
#      its wheels in .whl/, which git ignores; about 3 MB), and pack the exact CIFAR-100-LT IR100
#      split (about 46 MB): `python ../shared/tools/device_pack.py cifar100 100 .devdata`;
#   2. run there: command `LTRANK_DATA_DIR=.devdata bash benchmarks/gpu_check.sh`, carry
#      [".whl", ".devdata"], timeout_s 540.
# The JSON comes back as gpu_check.json from $OUT.
#
# Without carried data the script writes a SYNTHETIC stand-in of the same shape (random 32x32
# images with the exact CIFAR-100-LT IR100 class counts, 10,847 train / 10,000 test): times do
# not depend on pixel values, accuracies are meaningless, and the JSON says "synthetic".
# EPOCHS (default 4) per timed run. Extra key=value arguments become --set overrides of every run
# (to try the script on a CPU: DEVICE=cpu bash benchmarks/gpu_check.sh 1 train.max_batches_per_epoch=2
# eval.max_batches=1).
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

export LTRANK_CHECK_DATA="$DATA"
"$PY" benchmarks/gpu_check.py --device "$DEVICE" --epochs "$EPOCHS" --packing "${PACKING:-1,2,4,8}" ${SETS[@]+"${SETS[@]}"}
if [ "$DEVICE" != cpu ] && [ -f benchmarks/gpu_ddp_check.sh ]; then
  GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
  if [ "$GPUS" -ge 2 ]; then bash benchmarks/gpu_ddp_check.sh "$EPOCHS"; else echo "gpu_check: 1 GPU visible; DDP checks skipped"; fi
fi
