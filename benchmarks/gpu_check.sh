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
# shellcheck source=benchmarks/gpu_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/gpu_env.sh"

export LTRANK_CHECK_DATA="$DATA"
"$PY" benchmarks/gpu_check.py --device "$DEVICE" --epochs "$EPOCHS" --packing "${PACKING:-1,2,4,8}" ${SETS[@]+"${SETS[@]}"}
if [ "$DEVICE" != cpu ] && [ -f benchmarks/gpu_ddp_check.sh ]; then
  GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
  if [ "$GPUS" -ge 2 ]; then bash benchmarks/gpu_ddp_check.sh "$EPOCHS"; else echo "gpu_check: 1 GPU visible; DDP checks skipped"; fi
fi
