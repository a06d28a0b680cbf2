#!/usr/bin/env bash
# The largest thesis reproduction that fits a lent GPU (issue 11.6): `ltrank reproduce TABLE` with
# its runs packed on the one GPU, then the records and the table beside the thesis come back.
#
#   bash benchmarks/gpu_reproduce.sh [TABLE [SEEDS [WORKERS]]]      # defaults: 4.12 0,1,2 8
#
# On a lent device machine, from a session's checkout (see benchmarks/gpu_check.sh for the two
# preparation steps: `bash benchmarks/gpu_wheels.sh` and
# `python ../shared/tools/device_pack.py cifar100 100 .devdata`), run there:
#   command `LTRANK_DATA_DIR=.devdata bash benchmarks/gpu_reproduce.sh 4.12 0,1,2 8`,
#   carry [".whl", ".devdata"], timeout_s 600.
# A run that did not finish before the time limit is left interrupted and resumable; the table
# then holds the finished ones. What comes back from $OUT (at most 8 files):
#   records.tar.gz    every run folder's record.json (no checkpoints)
#   table.md          `ltrank compare --reference thesis --format markdown` of those runs
#   table.csv         the same as CSV (means and stds in separate columns)
#   reproduce.log     the sweep's own output (one line per run start and end)
# Commit them under docs/results/ with the date and the device (see docs/results/README.md).
set -euo pipefail

TABLE="${1:-4.12}"
SEEDS="${2:-0,1,2}"
WORKERS="${3:-8}"
DEVICE="${DEVICE:-cuda}"
export DEVICE
# shellcheck source=benchmarks/gpu_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/gpu_env.sh"

RESULTS="${OUT:-$ROOT/benchmarks/results/reproduce}"
mkdir -p "$RESULTS"

# Leave 60 s of the call for the table and the transfer: the sweep is stopped (SIGTERM: every run
# interrupted cleanly, resumable) when LIMIT_S runs out.
LIMIT_S="${LIMIT_S:-530}"
set +e
timeout --signal=TERM --kill-after=30 "$LIMIT_S" "$PY" -m ltrank reproduce "$TABLE" --seeds "$SEEDS" \
  --workers "$WORKERS" --device "$DEVICE" --out "$RUNS/runs" ${EXTRA:-} > "$RESULTS/reproduce.log" 2>&1
CODE=$?
set -e
echo "reproduce exited with $CODE (124: stopped at the time limit)" >> "$RESULTS/reproduce.log"

( cd "$RUNS/runs" && find . -name record.json -print0 | tar --null -czf "$RESULTS/records.tar.gz" -T - )
"$PY" -m ltrank compare "$RUNS/runs" --reference thesis --format markdown > "$RESULTS/table.md" || true
"$PY" -m ltrank compare "$RUNS/runs" --reference thesis --format csv > "$RESULTS/table.csv" || true
tail -n 3 "$RESULTS/reproduce.log"
echo "wrote $RESULTS/{records.tar.gz,table.md,table.csv,reproduce.log}"
