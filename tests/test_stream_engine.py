"""A large long-tailed source through the real trainer, CLI and records (issue 13 items 2, 3, 6):
a generated ``imagenet_lt:ROOT`` tree trained with the shipped ImageNet-LT recipe (a tiny timm
model at 32x32), resumed, evaluated and compared; a corrupt image is skipped and recorded; a
``folder:`` source above the memory budget streams through the same trainer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _streamfakes import imagenet_lt_tree, write_jpeg
from typer.testing import CliRunner

from ltrank.cli.app import app
from ltrank.engine.events import EpochEnded
from ltrank.engine.feeds import MemoryFeed, StreamFeed, load_training_data
from ltrank.engine.run import run_dir_for, train_one
from ltrank.engine.trainer import Trainer
from ltrank.errors import RunFailed
from ltrank.recipe import load_recipe
from ltrank.records import load_record

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")
CPU = torch.device("cpu")
SMALL = ["model.backbone=\"timm/test_resnet\"", "data.image_size=32", "train.epochs=2", "train.batch_size=8",
         "eval.batch_size=16", "eval.every=1", "train.lr=0.05"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return imagenet_lt_tree(tmp_path_factory.mktemp("inet"), train=(14, 8, 4), val=(2, 2, 2), test=(3, 3, 3))


def _recipe(root: Path, *extra: str):
    return load_recipe("imagenetlt-r50-cbdelta", [f'data.source="imagenet_lt:{root}"', *SMALL, *extra])


def _comparable(record):
    history = [{k: v for k, v in h.model_dump().items() if k != "seconds"} for h in record.history]
    return history, record.final.model_dump()


def test_the_shipped_recipe_trains_a_streamed_source_and_records_it(tree, tmp_path):
    recipe = _recipe(tree)
    record = train_one(recipe, seed=0, out=tmp_path, device=CPU, workers=0)
    assert record.status == "finished" and [h.epoch for h in record.history] == [1, 2]
    assert record.data.source_kind == "imagenet_lt" and record.data.class_counts == [14, 8, 4]
    assert record.data.profile == "asis" and record.data.imbalance_ratio == pytest.approx(3.5)
    # the tree does not have ImageNet-LT's published counts: one warning, on screen and in the record
    assert len(record.warnings) == 1 and "ImageNet-LT" in record.warnings[0]
    assert record.skipped_images is None
    assert set(record.final.groups) == {"thirds", "shots"} and record.recipe["eval"]["groups"] == "shots"
    assert len(record.final.per_class) == 3


def test_the_trainer_streams_with_any_worker_count_and_resumes_bit_identically(tree, tmp_path):
    recipe = _recipe(tree)
    data = load_training_data(recipe.recipe.data)
    assert isinstance(Trainer(recipe.recipe, data, seed=0, device=CPU).feed, StreamFeed)
    whole = train_one(recipe, seed=1, out=tmp_path / "w0", device=CPU, data=data, workers=0)
    two = train_one(recipe, seed=1, out=tmp_path / "w2", device=CPU, data=data, workers=2)
    assert _comparable(two) == _comparable(whole)

    def stop_after_epoch_1(event):
        if isinstance(event, EpochEnded) and event.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(RunFailed, match="interrupted after epoch 1"):
        train_one(recipe, seed=1, out=tmp_path / "r", device=CPU, data=data, callback=stop_after_epoch_1)
    resumed = train_one(recipe, seed=1, out=tmp_path / "r", device=CPU, data=data, resume=True)
    assert _comparable(resumed) == _comparable(whole)


def test_a_corrupt_image_is_skipped_listed_once_and_counted(tmp_path):
    root = imagenet_lt_tree(tmp_path / "inet", train=(10, 6, 4), val=(1, 1, 1), test=(2, 2, 2))
    bad = sorted((root / "train" / "c0").glob("*.jpg"))[0]
    bad.write_bytes(b"\xff\xd8 this is not a JPEG any more")
    record = train_one(_recipe(root), seed=0, out=tmp_path / "runs", device=CPU)
    assert record.status == "finished"
    skipped = record.skipped_images
    assert skipped is not None and [f["path"] for f in skipped.files] == [str(bad)]
    assert skipped.skipped_samples >= 2, "drawn once per epoch (2 epochs), plus the feature pass if any"


def test_eval_and_compare_default_to_many_medium_few_for_these_sources(tree, tmp_path):
    recipe = _recipe(tree)
    train_one(recipe, seed=0, out=tmp_path, device=CPU)
    runner = CliRunner()
    run_dir = run_dir_for(tmp_path, recipe, 0)
    shown = runner.invoke(app, ["eval", str(run_dir), "--data-workers", "0"], env={"COLUMNS": "120"})
    assert shown.exit_code == 0, shown.output
    assert "Many" in shown.output and "Few" in shown.output and "Head" not in shown.output
    table = runner.invoke(app, ["compare", str(tmp_path)], env={"COLUMNS": "120"})
    assert table.exit_code == 0, table.output
    assert "Many" in table.output and "Medium" in table.output and "Tail" not in table.output


def test_a_folder_above_the_memory_budget_streams_through_the_trainer(tmp_path):
    for split, per_class in (("train", (8, 4)), ("test", (2, 2))):
        for label, n in enumerate(per_class):
            for i in range(n):
                write_jpeg(tmp_path / "imgs" / split / f"class{label}" / f"{i}.jpg", seed=100 * label + i,
                           size=(32, 32))
    base = ['data.source="folder:{}"'.format(tmp_path / "imgs"), 'data.profile="asis"', *SMALL]
    roomy = load_recipe("imagenetlt-r50-ce", [*base, "data.memory_budget_mb=64"])
    tight = load_recipe("imagenetlt-r50-ce", [*base, "data.memory_budget_mb=0.001"])
    assert isinstance(Trainer(roomy.recipe, load_training_data(roomy.recipe.data), seed=0, device=CPU).feed,
                      MemoryFeed), "one image size, within the budget: held in memory"
    trainer = Trainer(tight.recipe, load_training_data(tight.recipe.data), seed=0, device=CPU)
    assert isinstance(trainer.feed, StreamFeed), "over the budget: streamed"
    record = train_one(tight, seed=0, out=tmp_path / "runs", device=CPU)
    assert record.status == "finished" and record.data.class_counts == [8, 4]
    assert record.data.source_kind == "folder"


def test_make_dataset_refuses_a_streamed_source_with_one_line(tree):
    result = CliRunner().invoke(app, ["make-dataset", f"imagenet_lt:{tree}", "--profile", "asis"])
    assert result.exit_code == 2 and "streamed from disk" in result.stderr


def test_posthoc_adjustments_of_a_streamed_run_select_tau_on_its_validation_split(tree, tmp_path):
    """ImageNet-LT has a validation split: tau-norm=auto selects there (never on test); NCM reads
    the training split through the same streaming pipeline."""
    from ltrank.engine.checkpoint_eval import evaluate_checkpoint
    from ltrank.rebalance.spec import parse_posthoc
    from ltrank.rebalance.tau_norm import TAU_GRID

    recipe = _recipe(tree)
    train_one(recipe, seed=0, out=tmp_path, device=CPU)
    run_dir = run_dir_for(tmp_path, recipe, 0)
    ev = evaluate_checkpoint(run_dir, posthoc=[parse_posthoc("tau-norm=auto"), parse_posthoc("ncm")])
    auto, ncm = ev.adjusted
    assert "auto on validation" in auto.label and ncm.label == "NCM"
    record = load_record(auto.record_path)
    assert record.posthoc.tau in TAU_GRID and {float(t) for t in record.posthoc.tau_scores} == set(TAU_GRID)
    assert len(ncm.metrics.per_class) == 3
