"""Data-parallel training through the engine and the CLI: 2 gloo processes on CPU against one (issue 12).

Two layers:

* the engine (``train_one``/``Trainer`` on 2 ranks spawned by ``tests/_dist.py``): the first
  step equals one process's to 1e-5 (``scope="local"`` measurably does not), shared refusals,
  one rank's NaN or SIGTERM stopping both ranks at the same batch, a plugin loss's train loss,
  and a two-stage DRO-LT run (DDP rebuilt per phase, the loss's radii outside DDP);
* the command line (torchrun and ``ltrank train --nproc 2`` in subprocesses): one record, the
  same numbers as one process, a SIGTERM to the launcher and ``--resume`` giving the record of
  the uninterrupted run, a resume under another world size, one line for refusals.

Tolerances: on this tiny set (8x8 images, batches of 8) float rounding differences between
1 and 2 processes (reduction order in BatchNorm and the gradient all-reduce, ~1e-6 after a
step) are amplified by training; a perturbation of 1e-7 of the weights does the same in one
process. So the recipes keep the learning rate low after the first epoch, and numbers that
cross world sizes are compared to 1e-4 (relative) while those of the same world size are
compared exactly.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from _dist import run_ranks
from _dist_train import PluginCE, engine_checks, trainer_state
from _tiny_recipe import tiny_recipe
from typer.testing import CliRunner

from ltrank.catalog import LOSSES
from ltrank.cli.app import app
from ltrank.engine import checkpoint as ckpt
from ltrank.engine.events import Notice
from ltrank.engine.run import run_dir_for, train_one
from ltrank.recipe import config_hash, load_recipe
from ltrank.records import load_record
from ltrank.registry import Spec

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this torch build has no torch.distributed with the gloo backend",
)

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
REL = 1e-4  # across world sizes (see the module docstring)
runner = CliRunner()

STEP = """[train]
epochs = 1
batch_size = 8
lr = 0.01
warmup_epochs = 1
milestones = [1]
gamma = 0.1
sync_bn = true
max_batches_per_epoch = 1
"""
# 5 epochs of 5 steps; from epoch 2 on the learning rate is 1e-4 (see the module docstring).
RUN = """[train]
epochs = 5
batch_size = 8
lr = 0.01
warmup_epochs = 1
milestones = [2]
gamma = 0.01
sync_bn = true
"""
STAGED = """[train]
batch_size = 8
sync_bn = true
max_batches_per_epoch = 2
init_from = "unused/checkpoint.pt"

[[train.stages]]
epochs = 1
lr = 0.005
weight_decay = 1e-4
trainable = "encoder"

[[train.stages]]
epochs = 1
lr = 0.01
weight_decay = 1e-4
trainable = "head"
sampler = "class_aware"
loss = { name = "ce" }
"""


def _close(a: float, b: float, rel: float = REL) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=rel)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(((a[k].double() - b[k].double()).abs().max().item() for k in a), default=0.0)


def _numbers(record) -> tuple[list[dict], dict, dict]:
    """A record's history (without wall-clock times), final and best metrics."""
    history = [{k: v for k, v in h.model_dump().items() if k != "seconds"} for h in record.history]
    return history, record.final.model_dump(), record.best.model_dump()


def _same_numbers(a, b) -> None:
    """Two records of different world sizes: losses to REL, accuracies (per class too) equal."""
    assert [h.epoch for h in a.history] == [h.epoch for h in b.history]
    for x, y in zip(a.history, b.history):
        assert _close(x.train_loss, y.train_loss), (x, y)
        assert (x.train_acc, x.test_acc) == (y.train_acc, y.test_acc), (x, y)
    assert a.final.per_class == b.final.per_class
    assert a.best.model_dump() == b.best.model_dump()


# ============================================================================ the engine, 2 ranks
@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine")
    tiny_recipe(folder, name="step", loss='name = "ap"', train=STEP)
    tiny_recipe(folder, name="staged", loss='name = "drolt"', train=STAGED)
    ranks = run_ranks(partial(engine_checks, folder=str(folder)), 2, folder)
    return folder, ranks


def test_the_first_step_of_two_processes_equals_one_process(engine):
    folder, ranks = engine
    recipe = load_recipe(str(folder / "step.toml"))
    one = train_one(recipe, seed=0, out=folder / "one", device=CPU)
    records = [r["step"]["record"] for r in ranks]
    assert records[0] == records[1], "every rank returns rank 0's record"
    (written,) = (folder / "two").rglob("record.json")  # one record, by rank 0
    two = load_record(written)
    assert two.environment.processes == 2 and one.environment.processes == 1
    assert abs(two.history[0].train_loss - one.history[0].train_loss) < 1e-5
    state_one = ckpt.load_checkpoint(run_dir_for(folder / "one", recipe, 0) / "checkpoint.pt")
    state_two = ckpt.load_checkpoint(written.parent / "checkpoint.pt")
    assert state_two["world_size"] == 2 and state_one["world_size"] == 1
    assert _max_diff(state_one["model"], state_two["model"]) < 1e-5  # parameters and BatchNorm statistics
    local = ckpt.load_checkpoint(next((folder / "two_local").rglob("checkpoint.pt")))
    assert _max_diff(state_one["model"], local["model"]) > 1e-4, "ranking each slice alone is another step"


def test_refusals_and_skips_are_decided_once_for_every_rank(engine):
    folder, ranks = engine
    again = [r["again"] for r in ranks]
    assert all(o["error"] == "LtrankError" and o["shown_by_rank0"] for o in again)
    assert again[0]["message"] == again[1]["message"] and "already holds a finished run" in again[0]["message"]
    assert [r["skip"] for r in ranks] == [{"record": None}] * 2
    odd = [r["odd"] for r in ranks]
    assert all(o["error"] == "LtrankError" and o["shown_by_rank0"] for o in odd)
    assert "does not split evenly over 2 processes" in odd[0]["message"] and odd[0]["message"] == odd[1]["message"]
    assert not (folder / "odd").exists(), "refused before anything was written"


def test_one_ranks_nan_stops_every_rank_at_the_same_batch(engine):
    folder, ranks = engine
    assert [r["nan_calls"] for r in ranks] == [3, 3]
    for r in ranks:
        assert r["nan"]["error"] == "RunFailed" and r["nan"]["shown_by_rank0"]
    (written,) = (folder / "nan").rglob("record.json")
    record = load_record(written)
    assert record.status == "diverged"
    assert record.reason.startswith("the loss or the logits of another process became non-finite at epoch 1, batch 3")


def test_one_ranks_sigterm_stops_every_rank_at_the_same_batch(engine):
    folder, ranks = engine
    assert [r["stop_calls"] for r in ranks] == [3, 3]
    assert all(r["stop"]["error"] == "RunFailed" and "interrupted after epoch 0" in r["stop"]["message"]
               for r in ranks)
    (written,) = (folder / "stop").rglob("record.json")
    record = load_record(written)
    assert record.status == "interrupted" and "a stop request of another process" in record.reason


def test_a_plugin_loss_mean_per_rank_is_averaged_into_the_global_train_loss(engine, monkeypatch):
    folder, ranks = engine
    monkeypatch.setitem(LOSSES._entries, "plugin_ce", Spec(PluginCE, "test: per-sample mean CE"))
    overrides = ['loss.name="plugin_ce"', "train.max_batches_per_epoch=5", "train.epochs=2", "train.milestones=[2]"]
    one = train_one(load_recipe(str(folder / "step.toml"), overrides), seed=0, out=folder / "plugin_one", device=CPU)
    two = load_record(next((folder / "plugin").rglob("record.json")))
    _same_numbers(one, two)
    assert one.history[1].train_loss != one.history[0].train_loss


def test_a_staged_drolt_run_trains_as_one_process_with_the_loss_radii_equal_on_every_rank(engine):
    folder, ranks = engine
    one = trainer_state(folder / "staged.toml", [])
    a, b = (r["staged"] for r in ranks)
    assert _max_diff(a["model"], b["model"]) == 0.0, "every rank holds the same model"
    assert all(_max_diff(x, y) == 0.0 for x, y in zip(a["losses"], b["losses"])), "radii need no all-reduce"
    assert [h["epoch"] for h in a["history"]] == [1, 2] and a["final"]["per_class"] == one["final"]["per_class"]
    for x, y in zip(a["history"], one["history"]):
        assert _close(x["train_loss"], y["train_loss"]) and x["train_acc"] == y["train_acc"], (x, y)
    assert torch.allclose(a["losses"][0]["radii"], one["losses"][0]["radii"], rtol=REL, atol=REL)


# ============================================================================ the command line
def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "ltrank", "train", "--device", "cpu", *args]


def _ltrank(*args: str) -> list[str]:
    return [sys.executable, "-m", "ltrank", "train", "--device", "cpu", *args]


def _wait_for_epoch(out: Path, proc: subprocess.Popen, timeout: float = 300) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in out.rglob("record.json"):
            try:
                if json.loads(path.read_text())["history"]:
                    return path
            except (OSError, ValueError):
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run never finished an epoch")


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """The tiny 5-epoch recipe trained by ``ltrank train --nproc 2`` and by one process in this one."""
    folder = tmp_path_factory.mktemp("cli")
    recipe_path = tiny_recipe(folder, name="tiny-ddp", loss='name = "ap"', train=RUN)
    recipe = load_recipe(str(recipe_path))
    one = train_one(recipe, seed=0, out=folder / "one", device=CPU)
    done = subprocess.run(_ltrank("--recipe", str(recipe_path), "--out", str(folder / "nproc"), "--nproc", "2"),
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    return folder, recipe_path, recipe, one, done


def test_nproc_2_trains_as_one_process_and_rank_0_alone_writes_and_prints(cli):
    folder, _, recipe, one, done = cli
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert [line for line in done.stdout.splitlines() if line.startswith("seed 0: top-1")] != []
    assert len([line for line in done.stdout.splitlines() if line.startswith("seed 0")]) == 1 + 5 + 1, done.stdout
    (written,) = (folder / "nproc").rglob("record.json")
    assert written.parent == run_dir_for(folder / "nproc", recipe, 0)
    assert sorted(p.name for p in written.parent.iterdir()) == ["checkpoint.pt", "record.json"]
    two = load_record(written)
    assert two.status == "finished" and two.environment.processes == 2
    _same_numbers(one, two)


def test_a_sigterm_to_torchrun_interrupts_and_resume_gives_the_uninterrupted_record(cli):
    folder, recipe_path, recipe, one, done = cli
    out = folder / "torchrun"
    proc = subprocess.Popen(_torchrun("--recipe", str(recipe_path), "--out", str(out)), cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record_path = _wait_for_epoch(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert len([line for line in stderr.splitlines() if line.startswith("run failed: interrupted after epoch")]) == 1
    interrupted = load_record(record_path)
    assert interrupted.status == "interrupted" and 1 <= len(interrupted.history) < 5, stderr
    assert ckpt.load_checkpoint(record_path.parent / "checkpoint.pt")["world_size"] == 2
    elsewhere = folder / "one_process_resume"
    shutil.copytree(out, elsewhere)

    resumed = subprocess.run(_torchrun("--recipe", str(recipe_path), "--out", str(out), "--resume"), cwd=REPO,
                             env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    uninterrupted = load_record(next((folder / "nproc").rglob("record.json")))
    assert _numbers(load_record(record_path)) == _numbers(uninterrupted), "bit-identical on CPU, same world size"

    # between epochs the world size may change: the global batches stay the same
    notices: list[str] = []
    other = train_one(recipe, seed=0, out=elsewhere, device=CPU, resume=True,
                      callback=lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
    assert any("checkpointed by 2 processes with 1" in n for n in notices), notices
    assert other.environment.processes == 1 and other.status == "finished"
    _same_numbers(other, uninterrupted)


def test_refusals_under_torchrun_are_one_line_from_rank_0(cli):
    folder, recipe_path, *_ = cli
    again = subprocess.run(_ltrank("--recipe", str(recipe_path), "--out", str(folder / "nproc"), "--nproc", "2"),
                           cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 2
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "already holds a finished run" in lines[0], lines
    odd = subprocess.run(_torchrun("--recipe", str(recipe_path), "--out", str(folder / "odd"),
                                   "--set", "train.batch_size=9"),
                         cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert odd.returncode != 0
    errors = [line for line in odd.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "train.batch_size 9 does not split evenly over 2 processes" in errors[0], odd.stderr
    assert not (folder / "odd").exists()


def test_nproc_refuses_what_cannot_launch_in_one_line_before_starting_anything(tmp_path):
    recipe_path = tiny_recipe(tmp_path, name="tiny-ddp", loss='name = "ap"', train=RUN)
    result = runner.invoke(app, ["train", "--device", "cpu", "--recipe", str(recipe_path), "--out",
                                 str(tmp_path / "runs"), "--nproc", "2", "--set", "train.batch_size=9"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == ("error: train.batch_size 9 does not split evenly over 2 processes; use a multiple of 2 "
                    "(it stays the global batch: each process gets batch_size / 2)")
    assert not (tmp_path / "runs").exists()
    cuda_n = runner.invoke(app, ["train", "--device", "cuda:1", "--recipe", str(recipe_path), "--nproc", "2"])
    assert cuda_n.exit_code == 2 and len(cuda_n.stderr.strip().splitlines()) == 1


def test_sync_bn_enters_the_config_hash_only_when_true(tmp_path):
    recipe = load_recipe(str(tiny_recipe(tmp_path, name="tiny-ddp", loss='name = "ap"', train=RUN)))
    data = recipe.as_dict()
    assert data["train"]["sync_bn"] is True
    off = json.loads(json.dumps(data))
    off["train"]["sync_bn"] = False
    absent = json.loads(json.dumps(off))
    del absent["train"]["sync_bn"]
    assert config_hash(off) == config_hash(absent) != config_hash(data)
