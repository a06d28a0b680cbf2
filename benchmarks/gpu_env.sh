# Sourced by the GPU scripts (gpu_check.sh, gpu_ddp_check.sh, gpu_reproduce.sh): run ltrank from
# this source tree on a device image as it is. Sets ROOT (and cd's there), PY (the device image
# has 'python3' only; $PYTHON overrides), RUNS (a temp folder removed on exit), PYTHONPATH
# (pydantic and the like from carried wheels in .whl/ when missing, see gpu_wheels.sh, then this
# tree), LTRANK_DATA_DIR and DATA: "real" when CIFAR-100 is found (a carried .devdata from
# ../shared/tools/device_pack.py, or the pools beside the checkout), else "synthetic" -- random
# 32x32 images with the exact CIFAR-100-LT IR100 class counts, 10,847 train / 10,000 test: times
# do not depend on pixel values, accuracies are then meaningless. Needs DEVICE set.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export LTRANK_NO_PLUGINS=1
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"; elif command -v python3 >/dev/null; then PY=python3; else PY=python; fi

RUNS="$(mktemp -d)"
trap 'rm -rf "$RUNS"' EXIT

if ! "$PY" -c "import pydantic" 2>/dev/null && compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$RUNS/site" "$ROOT"/.whl/*.whl
  export PYTHONPATH="$RUNS/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

"$PY" - <<'PYEOF' || exit 2
import importlib.util, os, sys
missing = [m for m in ("torch", "numpy", "pydantic", "typer", "rich") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu scripts: missing Python packages {missing}; run 'bash benchmarks/gpu_wheels.sh' here "
             "and carry .whl (see the header of benchmarks/gpu_check.sh)")
import torch
if os.environ["DEVICE"].startswith("cuda") and not torch.cuda.is_available():
    sys.exit("gpu scripts: torch sees no CUDA device")
PYEOF

if [ -z "${LTRANK_DATA_DIR:-}" ]; then
  for candidate in "$ROOT/.devdata" "$ROOT/shared/data" "$ROOT/../shared/data"; do
    if [ -f "$candidate/cifar100-lt-pool.npz" ]; then export LTRANK_DATA_DIR="$candidate"; break; fi
  done
fi
DATA=real
if [ ! -f "${LTRANK_DATA_DIR:-/nonexistent}/cifar100-lt-pool.npz" ] && [ ! -d "${LTRANK_DATA_DIR:-/nonexistent}/cifar-100-python" ]; then
  DATA=synthetic
  export LTRANK_DATA_DIR="$RUNS/data"
  mkdir -p "$LTRANK_DATA_DIR"
  "$PY" - "$LTRANK_DATA_DIR/cifar100-lt-pool.npz" <<'PYEOF'
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
PYEOF
  echo "no CIFAR-100 found; timing on synthetic data of the same shape" >&2
fi
export DATA
