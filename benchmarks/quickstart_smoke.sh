#!/usr/bin/env bash
# The README's main job, shortened for CI: train the quickstart recipe for one epoch of 3 batches,
# tested once at the end on 1,000 of the test images (eval.max_batches=1), then show the
# comparison table beside the thesis. Proves data -> train -> record -> compare on every submission
# in well under a minute on a CPU.
#
#   LTRANK_DATA_DIR=../shared/data bash benchmarks/quickstart_smoke.sh
set -euo pipefail
LTRANK="${LTRANK:-ltrank}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$LTRANK" train --recipe quickstart --device cpu --out "$tmp" \
  --set train.epochs=1 --set "train.milestones=[]" --set train.max_batches_per_epoch=3 --set eval.max_batches=1
"$LTRANK" compare "$tmp/quickstart" --reference thesis
