"""End to end through the CLI on tiny data: train -> eval on its checkpoint -> compare its records."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from typer.testing import CliRunner

from ltrank.cli.app import app
from ltrank.engine.checkpoint_eval import evaluate_checkpoint
from ltrank.records import load_record
from ltrank.run_folder import find_records

runner = CliRunner()
NAMES = ["red", "green", "blue", "grey"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A 4-class npz set of 8x8 images (class = a colour cast; small to keep the test fast) and a recipe that trains on it for 2 short epochs."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.RandomState(0)

    def images(labels):
        x = rng.randint(0, 80, size=(len(labels), 8, 8, 3)).astype(np.uint8)
        for i, label in enumerate(labels):
            if label < 3:
                x[i, :, :, label] += 150
        return x

    train = np.repeat(np.arange(4), 24)
    test = np.repeat(np.arange(4), 6)
    np.savez_compressed(root / "tiny.npz", train_images=images(train), train_labels=train, test_images=images(test),
                        test_labels=test, class_names=np.array(NAMES))
    recipe = root / "tiny-cbdelta.toml"
    recipe.write_text(
        f'[data]\nsource = "npz:{root / "tiny.npz"}"\nimbalance_ratio = 4\n'
        '[loss]\nname = "ap_cb_delta"\nparams = { beta = 0.99 }\n'
        '[schedule]\nname = "fixed"\n'
        "[train]\nepochs = 2\nbatch_size = 8\nwarmup_epochs = 1\nmilestones = []\n"
    )
    return root


@pytest.fixture(scope="module")
def tiny(tiny_data):
    """Two seeds of a tiny AP CB Delta recipe, trained through the CLI."""
    recipe, out = tiny_data / "tiny-cbdelta.toml", tiny_data / "runs"
    result = runner.invoke(app, ["train", "--recipe", str(recipe), "--seeds", "0,1", "--out", str(out),
                                 "--device", "cpu", "--set", "train.max_batches_per_epoch=2"])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_finished_records_with_per_class_metrics(tiny):
    records = [load_record(p) for p in find_records([tiny])]
    assert sorted(r.seed for r in records) == [0, 1]
    for rec in records:
        assert rec.status == "finished" and rec.finished_at is not None
        assert len(rec.history) == 2 and rec.final.epoch == 2
        assert rec.data.class_counts == [24, 15, 9, 6]  # int(24 * (1/4) ** (c/3)), docs/method.md section 1
        assert len(rec.final.per_class) == 4 and set(rec.final.groups) == {"thirds", "shots"}
    assert records[0].config_hash == records[1].config_hash  # the seed is not part of the hash


def test_eval_reproduces_the_recorded_last_epoch(tiny):
    path = find_records([tiny])[0]
    rec = load_record(path)
    ev = evaluate_checkpoint(path.parent / "checkpoint.pt", device="cpu")
    assert ev.metrics.epoch == 2
    assert ev.metrics.per_class == rec.final.per_class  # same weights, same test set, same loop: exact on CPU
    assert ev.test_counts == [6, 6, 6, 6] and ev.notes == []

    result = runner.invoke(app, ["eval", str(path.parent / "checkpoint.pt"), "--per-class"])
    assert result.exit_code == 0, result.output
    assert f"{rec.final.groups['thirds']['Average']:.2f}" in result.output
    for name in ("Head", "Body", "Tail", "Average", *NAMES):
        assert name in result.output
    shots = runner.invoke(app, ["eval", str(path.parent), "--groups", "shots"])  # a run folder works too
    assert shots.exit_code == 0 and "Few" in shots.output and "empty" in shots.output  # no class has >100 images

    missing = runner.invoke(app, ["eval", str(tiny / "nope.pt")])
    assert missing.exit_code == 2 and "no such checkpoint" in missing.output


def test_compare_aggregates_the_trained_seeds(tiny):
    records = [load_record(p) for p in find_records([tiny])]
    result = runner.invoke(app, ["compare", str(tiny), "--format", "csv"])
    assert result.exit_code == 0, result.output
    header, row = result.output.strip().splitlines()
    fields = dict(zip(header.split(","), row.split(",")))
    assert fields["n"] == "2" and fields["method_key"] == "cbdelta"
    averages = [statistics.fmean(r.final.per_class) for r in records]
    heads = [statistics.fmean(r.final.per_class[:2]) for r in records]  # 4 classes: thirds 2/1/1
    assert float(fields["Average_mean"]) == pytest.approx(statistics.fmean(averages), abs=1e-4)
    assert float(fields["Average_std"]) == pytest.approx(statistics.stdev(averages), abs=1e-4)
    assert float(fields["Head_mean"]) == pytest.approx(statistics.fmean(heads), abs=1e-4)
    table = runner.invoke(app, ["compare", str(tiny)])
    assert table.exit_code == 0 and "AP CB Delta (beta 0.99)" in table.output and "last epoch" in table.output


def test_quickstart_recipe_end_to_end_on_tiny_data(tiny_data, tmp_path):
    """The shipped quickstart recipe (the README's main job) through train -> eval -> compare,
    its data and budget overridden to tiny sizes."""
    out = tmp_path / "runs"
    result = runner.invoke(app, [
        "train", "--recipe", "quickstart", "--seed", "0", "--out", str(out), "--device", "cpu",
        "--set", f"data.source=npz:{tiny_data / 'tiny.npz'}", "--set", "data.imbalance_ratio=4",
        "--set", "train.epochs=2", "--set", "train.max_batches_per_epoch=2", "--set", "train.batch_size=8",
        "--set", "train.milestones=[2]", "--set", "eval.every=1",
    ])
    assert result.exit_code == 0, result.output
    (path,) = find_records([out])
    rec = load_record(path)
    assert rec.recipe_name == "quickstart" and rec.status == "finished" and rec.final.epoch == 2
    evaluated = runner.invoke(app, ["eval", str(path.parent)])
    assert evaluated.exit_code == 0 and f"{rec.final.groups['thirds']['Average']:.2f}" in evaluated.output
    compared = runner.invoke(app, ["compare", str(out), "--format", "markdown", "--reference", "thesis"])
    assert compared.exit_code == 0, compared.output
    # a dataset the thesis does not have: our row only, n = 1, no spread shown for one run
    assert "| AP CB Delta (beta 0.99) | 1 | " in compared.output and "±" not in compared.output.split("\n| Method")[1]
    assert "*thesis:" not in compared.output and "the thesis reference has no numbers for these runs" in compared.output
