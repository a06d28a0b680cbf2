"""`ltrank train` end to end on tiny data through CliRunner: seeds, folders, exit codes, divergence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _tiny_recipe import tiny_recipe
from torch import nn
from typer.testing import CliRunner

from ltrank.cli.app import app
from ltrank.engine.checkpoint import load_checkpoint
from ltrank.recipe import load_recipe
from ltrank.catalog import LOSSES
from ltrank.registry import Spec
from ltrank.records import load_record

runner = CliRunner()


def train(*args: str):
    return runner.invoke(app, ["train", "--device", "cpu", *args])


def test_train_two_seeds_then_refuse_to_overwrite_then_skip_with_resume(tmp_path: Path):
    recipe = tiny_recipe(tmp_path, epochs=2)
    out = tmp_path / "runs"
    result = train("--recipe", str(recipe), "--seeds", "0,1", "--out", str(out))
    assert result.exit_code == 0, result.output
    config_hash = load_recipe(str(recipe)).config_hash
    records = sorted((out / "tiny-ce" / config_hash).glob("seed*/record.json"))
    assert [p.parent.name for p in records] == ["seed0", "seed1"]
    for path in records:
        record = load_record(path)
        assert record.status == "finished" and record.final.epoch == 2
        assert f"seed {record.seed}: top-1 {record.final.top1:.2f}%" in result.stdout
    assert "\x1b[" not in result.stdout, "no progress bars when stdout is not a terminal"

    again = train("--recipe", str(recipe), "--seed", "1", "--out", str(out))
    assert again.exit_code == 2 and "already holds a finished run" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    skipped = train("--recipe", str(recipe), "--seeds", "0,1", "--out", str(out), "--resume")
    assert skipped.exit_code == 0 and skipped.stdout.count("already finished, skipped") == 2


def test_overrides_make_a_different_experiment_folder(tmp_path: Path):
    recipe = tiny_recipe(tmp_path, epochs=1)
    out = tmp_path / "runs"
    assert train("--recipe", str(recipe), "--out", str(out)).exit_code == 0
    result = train("--recipe", str(recipe), "--out", str(out), "--set", "train.lr=0.05")
    assert result.exit_code == 0, result.output
    assert len(list((out / "tiny-ce").iterdir())) == 2


@pytest.mark.parametrize("args,message", [
    (["--seed", "0", "--seeds", "1,2"], "either --seed N or --seeds"),
    (["--seeds", "0,x"], "comma-separated integers"),
    (["--seeds", "1,1"], "distinct"),
    (["--seed", "-1"], "from 0 to 2**32 - 1"),
    (["--seeds", "0,4294967296"], "distinct integers >= 0 and < 2**32"),
])
def test_seed_option_errors(tmp_path: Path, args, message):
    result = train("--recipe", str(tiny_recipe(tmp_path, epochs=1)), *args)
    assert result.exit_code == 2 and message in result.stderr


class NaNFromEpoch2(nn.Module):
    """Cross-entropy for epoch 1, NaN from epoch 2 on: a run that diverges mid-way."""

    def __init__(self, class_counts):
        super().__init__()
        self.epoch = 0

    def epoch_start(self, ctx) -> None:
        self.epoch = ctx.epoch

    def forward(self, logits, targets):
        loss = F.cross_entropy(logits, targets)
        return loss * float("nan") if self.epoch >= 2 else loss


@pytest.fixture
def nan_loss(monkeypatch):
    spec = Spec(NaNFromEpoch2, "test loss that diverges in epoch 2")
    monkeypatch.setitem(LOSSES._entries, "nan_from_epoch2", spec)


def test_divergence_stops_marks_the_record_and_keeps_the_last_good_checkpoint(tmp_path: Path, nan_loss):
    recipe = tiny_recipe(tmp_path, "tiny-nan", 'name = "nan_from_epoch2"', epochs=3)
    out = tmp_path / "runs"
    result = train("--recipe", str(recipe), "--out", str(out))
    assert result.exit_code == 1, result.output
    assert "run failed: loss became nan at epoch 2, batch 1" in result.stderr
    assert "checkpoint of epoch 1 is kept" in result.stderr
    run_dir = out / "tiny-nan" / load_recipe(str(recipe)).config_hash / "seed0"
    record = load_record(run_dir / "record.json")
    assert record.status == "diverged" and [h.epoch for h in record.history] == [1] and record.final is None
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    # resuming would only diverge again: refused, with the way out
    resumed = train("--recipe", str(recipe), "--out", str(out), "--resume")
    assert resumed.exit_code == 2 and "diverged run; delete that folder" in resumed.stderr


def test_an_absurd_learning_rate_diverges_instead_of_finishing(tmp_path: Path):
    recipe = tiny_recipe(tmp_path, epochs=2)
    result = train("--recipe", str(recipe), "--out", str(tmp_path / "runs"), "--set", "train.lr=1e30")
    assert result.exit_code == 1 and "run failed: loss became" in result.stderr


def test_missing_data_is_a_one_line_error(tmp_path: Path):
    recipe = tiny_recipe(tmp_path, epochs=1)
    recipe.write_text(recipe.read_text().replace("tiny.npz", "missing.npz"))
    result = train("--recipe", str(recipe), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "missing.npz" in result.stderr


def test_record_json_is_plain_json_with_the_resolved_recipe(tmp_path: Path):
    recipe = tiny_recipe(tmp_path, epochs=1)
    out = tmp_path / "runs"
    assert train("--recipe", str(recipe), "--out", str(out), "--seed", "4").exit_code == 0
    (path,) = out.glob("tiny-ce/*/seed4/record.json")
    raw = json.loads(path.read_text())
    assert raw["recipe"]["train"]["batch_size"] == 8 and raw["seed"] == 4 and raw["status"] == "finished"


def test_progress_view_renders_bars_on_a_terminal_and_epoch_lines_otherwise():
    import io

    from rich.console import Console

    from ltrank.cli.train import ProgressView
    from ltrank.engine.events import BatchEnded, EpochEnded, EpochStarted, RunStarted

    events = [RunStarted(seed=0, start_epoch=1, total_epochs=2, batches_per_epoch=3, device="cpu"),
              EpochStarted(1, 2, 0.1, 3), BatchEnded(1, 1, 3, 2.5), BatchEnded(1, 3, 3, 2.25),
              EpochEnded(1, 2, 0.1, 2.4, 31.5, 40.25, 1.0)]
    for terminal in (True, False):
        out = io.StringIO()
        with ProgressView(Console(file=out, force_terminal=terminal, width=150)) as view:
            for event in events:
                view(event)
        text = out.getvalue()
        if terminal:
            assert "seed 0 epochs" in text and "train 31.50% test 40.25% lr 0.1" in text
        else:  # a log: one plain line per epoch, no bars (tests/test_cli_output.py checks them in detail)
            assert "\x1b[" not in text and text.splitlines()[0] == "seed 0: 2 epochs of 3 batches on cpu"
            assert text.splitlines()[1].startswith("seed 0 epoch 1/2: loss 2.4000, train 31.50%, test 40.25%, lr 0.1")


def test_tensorboard_scalars_per_epoch_one_folder_per_run(tmp_path: Path):
    pytest.importorskip("tensorboard", reason="the optional extra ltrank[tensorboard] is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = tiny_recipe(tmp_path, epochs=2)
    boards = tmp_path / "tb"
    result = train("--recipe", str(recipe), "--out", str(tmp_path / "runs"), "--seeds", "0,1",
                   "--tensorboard", str(boards))
    assert result.exit_code == 0, result.output
    config_hash = load_recipe(str(recipe)).config_hash
    folders = sorted((boards / "tiny-ce" / config_hash).iterdir())
    assert [f.name for f in folders] == ["seed0", "seed1"]
    events = EventAccumulator(str(folders[0]))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/accuracy", "train/lr", "test/top1", "test/thirds/Head", "test/shots/Few"} <= tags
    assert "test/shots/Many" not in tags, "an empty group is not a zero"
    record = load_record(tmp_path / "runs" / "tiny-ce" / config_hash / "seed0" / "record.json")
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([h.train_loss for h in record.history])
    assert [e.step for e in events.Scalars("test/top1")] == [1, 2]
    assert events.Scalars("test/top1")[-1].value == pytest.approx(record.final.top1)
