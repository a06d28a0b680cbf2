"""Every way a run ends is recorded; one writer per run folder; nothing half-written (issue 9.1-9.2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _tiny_recipe import tiny_recipe
from torch import nn
from typer.testing import CliRunner

from ltrank.catalog import LOSSES, SCHEDULES
from ltrank.cli.app import app
from ltrank.engine import checkpoint as ckpt
from ltrank.engine.events import EpochEnded, Notice
from ltrank.engine.run import run_dir_for, train_one
from ltrank.errors import LtrankError, RunFailed
from ltrank.losses.base import ClassWeightedLoss
from ltrank.recipe import load_recipe
from ltrank.records import load_record
from ltrank.registry import USES_CLASS_WEIGHTS, Spec
from ltrank.run_folder import exclusive_lock

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def train(*args: str):
    return runner.invoke(app, ["train", "--device", "cpu", *args])


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def _comparable(record):
    history = [{k: v for k, v in h.model_dump().items() if k != "seconds"} for h in record.history]
    return history, record.final.model_dump(), record.best.model_dump()


# ------------------------------------------------------------------ plugin-like faulty components
class RaisesInEpoch2(nn.Module):
    """Cross-entropy, except that forward raises from epoch 2 on (a buggy plugin loss)."""

    def __init__(self, class_counts):
        super().__init__()
        self.epoch = 0

    def epoch_start(self, ctx) -> None:
        self.epoch = ctx.epoch

    def forward(self, logits, targets):
        if self.epoch >= 2:
            raise RuntimeError("plugin bug: index out of range")
        return nn.functional.cross_entropy(logits, targets)


class PerSample(nn.Module):
    """Returns a [B] vector: forgot to reduce."""

    def __init__(self, class_counts):
        super().__init__()

    def forward(self, logits, targets):
        return nn.functional.cross_entropy(logits, targets, reduction="none")


class WeightedCE(ClassWeightedLoss):
    def __init__(self, class_counts):
        super().__init__(class_counts, beta=0.9)

    def forward(self, logits, targets):
        return nn.functional.cross_entropy(logits, targets, weight=self.class_weights)


class ThreeWeights:
    """A weighting schedule that returns the wrong number of weights."""

    def weights(self, epoch, total_epochs, target):
        return torch.ones(3)


@pytest.fixture
def faulty(monkeypatch):
    monkeypatch.setitem(LOSSES._entries, "raises_in_epoch2", Spec(RaisesInEpoch2, "test: raises in epoch 2"))
    monkeypatch.setitem(LOSSES._entries, "per_sample", Spec(PerSample, "test: returns [B]"))
    monkeypatch.setitem(LOSSES._entries, "weighted_ce_test",
                        Spec(WeightedCE, "test: weighted", capabilities=frozenset({USES_CLASS_WEIGHTS})))
    monkeypatch.setitem(SCHEDULES._entries, "three_weights", Spec(ThreeWeights, "test: wrong count"))


def test_an_exception_mid_run_is_recorded_as_failed_with_a_log_and_the_last_good_checkpoint(tmp_path, faulty):
    recipe = tiny_recipe(tmp_path, "tiny-bug", 'name = "raises_in_epoch2"', epochs=3)
    out = tmp_path / "runs"
    result = train("--recipe", str(recipe), "--out", str(out))
    assert result.exit_code == 1
    line = _one_line(result)
    assert line.startswith("run failed: failed in epoch 2: RuntimeError: plugin bug: index out of range")
    assert "error.log" in line and "checkpoint of epoch 1 is kept" in line
    run_dir = out / "tiny-bug" / load_recipe(str(recipe)).config_hash / "seed0"
    record = load_record(run_dir / "record.json")
    assert record.status == "failed" and [h.epoch for h in record.history] == [1]
    assert record.reason.startswith("failed in epoch 2: RuntimeError: plugin bug") and "\n" not in record.reason
    assert record.finished_at is not None
    log = (run_dir / "error.log").read_text()
    assert "Traceback (most recent call last)" in log and "plugin bug" in log
    assert ckpt.load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1
    assert not (run_dir / ".lock").exists(), "the lock goes with the process"
    # a failed run is unfinished, not blocking: --resume continues from epoch 1 (and fails again here)
    again = train("--recipe", str(recipe), "--out", str(out), "--resume")
    assert again.exit_code == 1 and "failed in epoch 2" in _one_line(again)
    assert log.count("Traceback") < (run_dir / "error.log").read_text().count("Traceback"), "the log is appended"


@pytest.mark.parametrize("loss,schedule,message", [
    ("per_sample", "none", "loss 'per_sample' returned torch.float32 [8]; a loss must return a float scalar"),
    ("weighted_ce_test", "three_weights",
     "weighting schedule ThreeWeights returned (3,) class weights, expected (4,) (one per class)"),
])
def test_a_faulty_plugin_component_fails_the_run_with_one_line(tmp_path, faulty, loss, schedule, message):
    recipe = tiny_recipe(tmp_path, "tiny-faulty", f'name = "{loss}"', epochs=2,
                         extra=f'[schedule]\nname = "{schedule}"')
    out = tmp_path / "runs"
    result = train("--recipe", str(recipe), "--out", str(out))
    assert result.exit_code == 1 and message in _one_line(result)
    (record_path,) = out.glob("tiny-faulty/*/seed0/record.json")
    assert load_record(record_path).status == "failed"


def test_a_training_set_smaller_than_one_batch_is_refused_before_anything_is_written(tmp_path):
    recipe = tiny_recipe(tmp_path, epochs=1)  # 44 training images
    out = tmp_path / "runs"
    result = train("--recipe", str(recipe), "--out", str(out), "--set", "train.batch_size=64")
    assert result.exit_code == 2
    assert "the training set has 44 images, fewer than one batch of 64" in _one_line(result)
    assert not out.exists()


def test_a_learning_rate_beyond_float32_fails_the_run_with_one_line(tmp_path):
    recipe = tiny_recipe(tmp_path, epochs=2)
    out = tmp_path / "runs"
    result = train("--recipe", str(recipe), "--out", str(out), "--set", "train.lr=1e300")
    assert result.exit_code == 1 and "overflow" in _one_line(result)
    (record_path,) = out.glob("tiny-ce/*/seed0/record.json")
    record = load_record(record_path)
    assert record.status == "failed" and "overflow" in record.reason and record.history == []


def test_a_diverging_ap_model_is_caught_through_its_logits(tmp_path):
    """AP Loss is bounded: the loss value alone would not show a blow-up."""
    recipe = tiny_recipe(tmp_path, "tiny-ap", 'name = "ap"', epochs=2)
    out = tmp_path / "runs"
    result = train("--recipe", str(recipe), "--out", str(out), "--set", "train.lr=1e30")
    assert result.exit_code == 1, result.output
    (record_path,) = out.glob("tiny-ap/*/seed0/record.json")
    assert load_record(record_path).status == "diverged"


# ------------------------------------------------------------------ one writer, safe names
def test_a_second_writer_of_the_same_run_folder_gets_one_line_and_exit_2(tmp_path):
    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=1)))
    out = tmp_path / "runs"
    folder = run_dir_for(out, recipe, 0)
    folder.mkdir(parents=True)
    with exclusive_lock(folder):
        with pytest.raises(LtrankError, match=rf"being written by pid {os.getpid()} on .*wait for it"):
            train_one(recipe, seed=0, out=out, device=CPU)
    assert not (folder / "record.json").exists()
    assert train_one(recipe, seed=0, out=out, device=CPU).status == "finished", "free again after release"


def test_two_processes_aimed_at_one_run_folder_never_both_succeed(tmp_path):
    recipe = tiny_recipe(tmp_path, epochs=6)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "ltrank", "train", "--device", "cpu", "--recipe", str(recipe), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert len(loser.strip().splitlines()) == 1 and ("being written by" in loser or "unfinished run" in loser
                                                      or "finished run" in loser)
    (record_path,) = out.glob("tiny-ce/*/seed0/record.json")
    assert load_record(record_path).status == "finished"


def test_a_recipe_file_name_cannot_make_a_run_write_outside_out(tmp_path):
    source = tiny_recipe(tmp_path, epochs=1)
    sneaky = tmp_path / "...toml"  # its stem is '..'
    sneaky.write_text(source.read_text())
    out = tmp_path / "deep" / "runs"
    for extra in ([], ["--dry-run"]):
        result = train("--recipe", str(sneaky), "--out", str(out), *extra)
        assert result.exit_code == 2 and "recipe name '..' cannot name a run folder" in _one_line(result)
    assert not (tmp_path / "deep").exists()


@pytest.mark.parametrize("args,message", [
    (["--device", "mps"], "--device 'mps': not a device ltrank trains on; use cpu, cuda, cuda:N or auto"),
    (["--device", "cuda:x"], "not a device ltrank trains on"),
])
def test_devices_are_checked_before_any_work_also_in_dry_run(tmp_path, args, message):
    recipe = tiny_recipe(tmp_path, epochs=1)
    for extra in ([], ["--dry-run"]):
        result = runner.invoke(app, ["train", "--recipe", str(recipe), "--out", str(tmp_path / "runs"), *args, *extra])
        assert result.exit_code == 2 and message in _one_line(result)
    assert not (tmp_path / "runs").exists()


def test_an_out_that_is_a_file_is_refused_before_the_data_loads(tmp_path):
    recipe = tiny_recipe(tmp_path, epochs=1)
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "runs"):
        for extra in ([], ["--dry-run"]):
            result = train("--recipe", str(recipe), "--out", str(out), *extra)
            assert result.exit_code == 2 and "is a file, not a folder" in _one_line(result)
    assert blocker.read_text() == "not a folder"


# ------------------------------------------------------------------ resume: data, orphans, consistency
def test_resume_refuses_data_whose_fingerprint_changed(tmp_path):
    from _datafakes import write_npz

    recipe_path = tiny_recipe(tmp_path, epochs=3)
    recipe = load_recipe(str(recipe_path))
    out = tmp_path / "runs"

    def stop_after_epoch_1(event):
        if isinstance(event, EpochEnded) and event.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(RunFailed):
        train_one(recipe, seed=0, out=out, device=CPU, callback=stop_after_epoch_1)
    write_npz(tmp_path / "tiny.npz", num_classes=4, per_class=20, test_per_class=4, size=8)
    with pytest.raises(LtrankError, match="not the data this run trained on"):
        train_one(recipe, seed=0, out=out, device=CPU, resume=True)


def test_orphaned_temp_files_are_removed_and_a_lagging_record_is_reconciled(tmp_path):
    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=3)))
    whole = train_one(recipe, seed=0, out=tmp_path / "a", device=CPU)
    out = tmp_path / "b"
    run_dir = run_dir_for(out, recipe, 0)
    saved: dict[str, bytes] = {}

    def events(event):
        if isinstance(event, EpochEnded) and event.epoch == 1:
            saved["record"] = (run_dir / "record.json").read_bytes()
        if isinstance(event, EpochEnded) and event.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(RunFailed):
        train_one(recipe, seed=0, out=out, device=CPU, callback=events)
    # as if SIGKILL struck between the epoch-2 checkpoint and its record, in the middle of a write
    (run_dir / "record.json").write_bytes(saved["record"])
    (run_dir / ".checkpoint.pt.x1y2z3.tmp").write_bytes(b"half a checkpoint")
    (run_dir / ".record.json.abc.tmp").write_text("{")
    notices = []
    resumed = train_one(recipe, seed=0, out=out, device=CPU, resume=True,
                        callback=lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
    assert not list(run_dir.glob(".*.tmp"))
    assert sum("left by a write that was killed" in n for n in notices) == 2
    assert _comparable(resumed) == _comparable(whole)


def test_the_record_never_claims_more_epochs_than_the_checkpoint(tmp_path):
    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=3)))
    out = tmp_path / "runs"
    run_dir = run_dir_for(out, recipe, 0)
    seen = []

    def check(event):
        if isinstance(event, EpochEnded):
            record = json.loads((run_dir / "record.json").read_text())
            seen.append((len(record["history"]), ckpt.load_checkpoint(run_dir / "checkpoint.pt")["epoch"]))

    train_one(recipe, seed=0, out=out, device=CPU, callback=check)
    assert seen == [(1, 1), (2, 2), (3, 3)]


# ------------------------------------------------------------------ real signals
def _wait_for_epochs(record_glob: Path, pattern: str, epochs: int, proc: subprocess.Popen, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in record_glob.glob(pattern):
            try:
                if len(json.loads(path.read_text())["history"]) >= epochs:
                    return path
            except (OSError, ValueError):
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run never reached the epoch")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_real_signal_interrupts_cleanly_and_resume_is_bit_identical(tmp_path, signum):
    recipe_path = tiny_recipe(tmp_path, epochs=8)
    recipe = load_recipe(str(recipe_path))
    whole = train_one(recipe, seed=0, out=tmp_path / "whole", device=CPU)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "ltrank", "train", "--device", "cpu", "--recipe", str(recipe_path),
           "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    record_path = _wait_for_epochs(out, "tiny-ce/*/seed0/record.json", 2, proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert len(stderr.strip().splitlines()) == 1 and "interrupted after epoch" in stderr and "--resume" in stderr
    record = load_record(record_path)
    assert record.status == "interrupted" and record.reason.startswith("interrupted after epoch")
    assert len(record.history) == ckpt.load_checkpoint(record_path.parent / "checkpoint.pt")["epoch"]
    assert not list(record_path.parent.glob(".*")), "no lock or temp file left"
    resumed = runner.invoke(app, ["train", "--device", "cpu", "--recipe", str(recipe_path), "--out", str(out),
                                  "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert _comparable(load_record(record_path)) == _comparable(whole)


# ------------------------------------------------------------------ provenance of init_from (issue 9.9)
STAGES = ('[train]\nbatch_size = 8\ninit_from = "recipe:tiny-ce"\n'
          '[[train.stages]]\nepochs = 1\nlr = 0.005\nweight_decay = 1e-4\ntrainable = "encoder"\n')


def test_init_from_names_the_run_it_used_and_never_picks_silently(tmp_path):
    out = tmp_path / "runs"
    ce_path = tiny_recipe(tmp_path, epochs=2)
    smoke = load_recipe(str(ce_path), ["train.max_batches_per_epoch=1"])
    train_one(smoke, seed=0, out=out, device=CPU)
    drolt = load_recipe(str(tiny_recipe(tmp_path, "tiny-drolt", 'name = "drolt"', train=STAGES)))

    # one finished run, not the recipe's own settings: used, and the difference is said
    notices: list[str] = []
    record = train_one(drolt, seed=0, out=out, device=CPU,
                       callback=lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
    src = record.init_from
    assert (src.recipe_name, src.config_hash, src.seed, src.epochs) == ("tiny-ce", smoke.config_hash, 0, 2)
    assert src.path == str(run_dir_for(out, smoke, 0) / "checkpoint.pt") and src.finished_at
    assert any(n.startswith(f"starting from tiny-ce seed 0 [{smoke.config_hash}], 2 epochs") for n in notices)
    assert any("train.max_batches_per_epoch 1 (recipe: None)" in n for n in notices), notices

    # the recipe's own run exists too: it wins, the other is named
    ce = load_recipe(str(ce_path))
    train_one(ce, seed=0, out=out, device=CPU)
    from ltrank.run_folder import resolve_init_from

    choice = resolve_init_from("recipe:tiny-ce", out, 0, recipe_dir=tmp_path)
    assert choice.source.config_hash == ce.config_hash
    assert choice.notes and str(run_dir_for(out, smoke, 0)) in choice.notes[0]

    # several runs, none with the recipe's settings: refused, all named
    other = load_recipe(str(ce_path), ["train.lr=0.05"])
    train_one(other, seed=0, out=out, device=CPU)
    import shutil

    shutil.rmtree(run_dir_for(out, ce, 0))
    with pytest.raises(LtrankError, match="2 finished runs of tiny-ce seed 0.*none has the recipe's own settings") as err:
        resolve_init_from("recipe:tiny-ce", out, 0, recipe_dir=tmp_path)
    assert "train.lr 0.05 (recipe: 0.1)" in str(err.value) and "train.max_batches_per_epoch 1" in str(err.value)


def test_init_from_with_overrides_prefers_the_run_trained_with_the_same_overrides(tmp_path):
    from ltrank.run_folder import resolve_init_from

    out = tmp_path / "runs"
    ce_path = tiny_recipe(tmp_path, epochs=1)
    for overrides in ([], ["train.lr=0.05"]):
        train_one(load_recipe(str(ce_path), overrides), seed=0, out=out, device=CPU)
    chosen = resolve_init_from("recipe:tiny-ce", out, 0, ["train.lr=0.05"], recipe_dir=tmp_path)
    assert chosen.source.config_hash == load_recipe(str(ce_path), ["train.lr=0.05"]).config_hash


def test_a_backbone_that_cannot_take_the_images_is_refused_before_anything_is_written(tmp_path):
    """timm models are only probed on real data: MaxViT's windows do not fit 8x8 images."""
    recipe = tiny_recipe(tmp_path, "tiny-maxvit", 'name = "ce"', epochs=1,
                         extra='[model]\nbackbone = "timm/maxvit_nano_rw_256"')
    out = tmp_path / "runs"
    result = train("--recipe", str(recipe), "--out", str(out))
    assert result.exit_code == 2
    line = _one_line(result)
    assert "model.backbone: timm/maxvit_nano_rw_256 cannot take 8x8 images" in line and "divisible by window" in line
    assert not out.exists()
