#!/usr/bin/env bash
# The README's main job, shortened for CI: train the quickstart recipe for one epoch of 3 batches
# (tested once at the end), then show the comparison table. Proves data -> train -> record ->
# compare on every submission in about a minute on a CPU.
#
#   LTRANK_DATA_DIR=../shared/data bash benchmarks/quickstart_smoke.sh
set -euo pipefail
LTRANK="${LTRANK:-ltrank}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$LTRANK" train --recipe quickstart --device cpu --out "$tmp" \
  --set train.epochs=1 --set "train.milestones=[]" --set train.max_batches_per_epoch=3
"$LTRANK" compare "$tmp"
