#!/usr/bin/env bash
# Save, in .whl/ (ignored by git), the wheels of the Python packages ltrank needs that the device
# machines' image lacks (pydantic and its own dependencies), for Python 3.12 on x86-64 Linux, at
# the versions installed here. benchmarks/gpu_check.sh installs them there when pydantic is missing.
#
#   bash benchmarks/gpu_wheels.sh        # then carry [".whl"] in the device run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
PINS=$("$PY" - <<'EOF'
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in ("pydantic", "pydantic_core", "annotated-types", "typing-inspection",
                                              "typing_extensions")))
EOF
)
mkdir -p "$ROOT/.whl"
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$ROOT/.whl" $PINS
ls -1 "$ROOT/.whl"
