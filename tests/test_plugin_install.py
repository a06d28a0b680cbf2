"""The example plugin, really installed: ltrank sees its losses through entry-point metadata.

Runs only where the distribution ``ltrank-logit-adjust`` is installed (``.ci/run`` installs it
with ``pip install ./plugins/ltrank-logit-adjust``). The check runs in a fresh interpreter so
that no other test's registry state or LTRANK_NO_PLUGINS setting can hide or fake the result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

from ltrank.registry import PLUGINS_ENV

try:
    metadata.distribution("ltrank-logit-adjust")
    INSTALLED = True
except metadata.PackageNotFoundError:
    INSTALLED = False

pytestmark = pytest.mark.skipif(
    not INSTALLED,
    reason="plugin distribution ltrank-logit-adjust not installed; run: pip install ./plugins/ltrank-logit-adjust",
)

SCRIPT = r"""
import json, torch
from typer.testing import CliRunner
from ltrank.cli.app import app
from ltrank.catalog import LOSSES

names = LOSSES.names()
loss = LOSSES.build("logit_adjusted", class_counts=[50, 10, 2], tau=1.0)
logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]], requires_grad=True)
value = loss(logits, torch.tensor([0, 2]))
value.backward()
listing = CliRunner().invoke(app, ["list", "losses"], terminal_width=200)
print(json.dumps({
    "names": names,
    "origin": LOSSES.origin("logit_adjusted"),
    "value": value.item(),
    "grad_finite": bool(torch.isfinite(logits.grad).all()),
    "list_exit": listing.exit_code,
    "list_output": listing.output,
}))
"""


def test_installed_plugin_is_listed_built_and_run():
    env = {k: v for k, v in os.environ.items() if k != PLUGINS_ENV}
    env["COLUMNS"] = "200"
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"balanced_softmax", "logit_adjusted"} <= set(out["names"])
    assert out["origin"].startswith("ltrank-logit-adjust ")
    # CE on z + log(n / N): sample 0 (class 0, n=50) and sample 1 (class 2, n=2), N = 62.
    import math

    def ce(z, n, y):
        a = [zi + math.log(ni / sum(n)) for zi, ni in zip(z, n)]
        return math.log(sum(math.exp(v) for v in a)) - a[y]

    want = (ce([2.0, 0.0, -1.0], [50, 10, 2], 0) + ce([0.0, 1.0, 0.5], [50, 10, 2], 2)) / 2
    assert abs(out["value"] - want) < 1e-5
    assert out["grad_finite"]
    assert out["list_exit"] == 0, out["list_output"]
    assert "balanced_softmax" in out["list_output"] and "logit_adjusted" in out["list_output"]
