"""Decoupled-training recipes: stage methods (crt, lws, tau-norm, logit-adjust, ncm) validate, fill
their defaults and refuse contradictions in one line; the shipped cRT/LWS recipes name their
stage-1 recipe and each runs on tiny data on top of a tiny stage-1 run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _tiny_recipe import tiny_npz
from typer.testing import CliRunner

from ltrank.cli.app import app
from ltrank.cli.recipe_toml import to_toml
from ltrank.engine.phases import lr_at
from ltrank.engine.run import train_one
from ltrank.errors import LtrankError
from ltrank.rebalance import cosine_stage_lr
from ltrank.recipe import find_recipe, load_recipe, read_toml, resolve, shipped_recipes

CPU = torch.device("cpu")
DATASETS = ["cifar10-ir50", "cifar10-ir100", "cifar100-ir50", "cifar100-ir100"]
DECOUPLED = [("ce", "crt"), ("ap", "crt"), ("cbdelta", "crt"), ("ce", "lws"), ("ap", "lws")]
INIT = "runs/ce/seed0"


def _raw(*stages: dict, init_from: str | None = INIT, **train) -> dict:
    train = {"stages": list(stages), **train}
    if init_from is not None:
        train["init_from"] = init_from
    return {"data": {"source": "cifar10"}, "loss": {"name": "ce"}, "train": train}


CRT = {"method": "crt", "epochs": 10, "lr": 0.1, "weight_decay": 2e-4}


def test_stage_methods_fill_in_their_defaults():
    crt = resolve(_raw(CRT)).train
    assert crt.epochs == 10
    s = crt.stages[0]
    assert (s.method, s.trainable, s.sampler, s.lr_schedule, s.tau) == ("crt", "head", "class_aware", "constant", None)
    s = resolve(_raw({**CRT, "method": "lws", "lr_schedule": "cosine", "sampler": "shuffle"})).train.stages[0]
    assert (s.method, s.trainable, s.sampler, s.lr_schedule) == ("lws", None, "shuffle", "cosine")
    s = resolve(_raw({"epochs": 3, "lr": 0.1, "weight_decay": 0.0})).train.stages[0]  # the DRO-LT kind of stage
    assert (s.method, s.trainable, s.sampler, s.lr_schedule) == ("train", "all", "shuffle", "constant")
    post = resolve(_raw({"method": "tau-norm", "tau": 0.5})).train
    assert post.epochs == 0
    s = post.stages[0]
    assert (s.epochs, s.tau, s.lr, s.weight_decay, s.trainable, s.sampler, s.lr_schedule, s.loss) == \
        (0, 0.5, None, None, None, None, None, None)
    assert resolve(_raw({"method": "ncm", "epochs": 0})).train.stages[0].tau is None


@pytest.mark.parametrize("stages,init_from,message", [
    ([{**CRT, "trainable": "all"}], INIT,
     r"train.stages\[0\].trainable: cRT trains only the re-drawn classifier; remove trainable = 'all'"),
    ([{**CRT, "method": "lws", "trainable": "head"}], INIT,
     r"train.stages\[0\].trainable: LWS trains only its per-class scales; remove trainable = 'head'"),
    ([{**CRT, "epochs": 0}], INIT, r"train.stages\[0\].epochs: a crt stage trains; give epochs > 0"),
    ([{"method": "crt", "epochs": 10, "weight_decay": 0.0}], INIT, r"train.stages\[0\].lr: missing"),
    ([{**CRT, "tau": 1.0}], INIT, r"train.stages\[0\].tau: only tau-norm and logit-adjust stages take tau"),
    ([CRT], None, r"train.init_from: cRT re-balances the classifier of a trained model; set train.init_from"),
    ([{**CRT, "method": "lws"}, CRT], INIT, r"train.stages\[1\]: LWS must be the last stage"),
    ([{"method": "tau-norm", "tau": 1.0, "lr": 0.1}], INIT,
     r"train.stages\[0\].lr: a tau-norm stage trains nothing; remove lr"),
    ([{"method": "ncm", "lr_schedule": "cosine"}], INIT, r"train.stages\[0\].lr_schedule: a ncm stage trains nothing"),
    ([{"method": "logit-adjust", "tau": 1.0, "epochs": 3}], INIT,
     r"train.stages\[0\].epochs: a logit-adjust stage trains nothing; set epochs = 0"),
    ([{"method": "tau-norm"}], INIT, r"train.stages\[0\].tau: a tau-norm stage needs tau"),
    ([{"method": "ncm", "tau": 1.0}], INIT, r"train.stages\[0\].tau: ncm takes no tau"),
    ([{"method": "tau-norm", "tau": 1.0}], None, r"train.init_from: a tau-norm stage adjusts a trained model"),
    ([CRT, {"method": "tau-norm", "tau": 1.0}], INIT,
     r"train.stages\[1\].method: a tau-norm stage must be the recipe's only stage.*ltrank eval --posthoc"),
    ([{"method": "tau-norm", "tau": "auto"}], INIT, r"train\.stages\[0\]\.tau: Input should be a valid number"),
    ([{"method": "tau-norm", "tau": -1.0}], INIT, r"train\.stages\[0\]\.tau: Input should be greater than or equal to 0"),
    ([{**CRT, "method": "cRT"}], INIT, r"train\.stages\[0\]\.method: Input should be 'train', 'crt', 'lws'"),
])
def test_contradicting_stage_settings_are_refused_with_the_fix(stages, init_from, message):
    with pytest.raises(LtrankError, match=message):
        resolve(_raw(*stages, init_from=init_from))


def test_a_recipe_without_stages_still_needs_epochs():
    with pytest.raises(LtrankError, match=r"train.epochs: must be > 0"):
        resolve({"data": {"source": "cifar10"}, "loss": {"name": "ce"}, "train": {"epochs": 0}})


def test_a_bad_stage_is_one_line_and_exit_2_from_the_cli():
    result = CliRunner().invoke(app, ["train", "--dry-run", "--recipe", "cifar10-ir100-ce-crt",
                                      "--set", "train.init_from=\"\""])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: recipe cifar10-ir100-ce-crt") and \
        "train.init_from: cRT re-balances the classifier" in lines[0]


@pytest.mark.parametrize("stage", [{**CRT, "lr_schedule": "cosine"}, {**CRT, "method": "lws"},
                                   {"method": "tau-norm", "tau": 1.0}, {"method": "ncm"}])
def test_the_printed_resolved_recipe_reads_back_as_the_same_recipe(stage, tmp_path):
    import tomllib

    first = resolve(_raw(stage))
    again = resolve(tomllib.loads(to_toml(first.model_dump(mode="json"))))
    assert again == first


def test_a_cosine_stage_anneals_its_lr_per_epoch_from_the_stage_start():
    train = resolve(_raw({"epochs": 2, "lr": 0.05, "weight_decay": 0.0},
                         {**CRT, "epochs": 4, "lr": 0.2, "lr_schedule": "cosine"})).train
    assert [lr_at(e, train) for e in (1, 2)] == [0.05, 0.05]
    assert [lr_at(e, train) for e in (3, 4, 5, 6)] == [cosine_stage_lr(e, 4, 0.2) for e in (1, 2, 3, 4)]
    assert lr_at(3, train) == 0.2 and lr_at(6, train) == pytest.approx(0.2 * (1 + 2 ** -0.5) / 2 - 0.2 * 2 ** -0.5)


def _decoupled_names() -> list[str]:
    return [f"{d}-{base}-{method}" for d in DATASETS for base, method in DECOUPLED]


def test_the_decoupling_recipes_are_shipped_and_listed():
    assert set(_decoupled_names()) <= set(shipped_recipes())
    result = CliRunner().invoke(app, ["list", "recipes", "crt"])
    assert result.exit_code == 0
    assert all(name in result.output for name in _decoupled_names() if name.endswith("-crt"))


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("base,method", DECOUPLED)
def test_a_decoupling_recipe_says_its_stage_1_recipe_and_the_cifar_schedule(dataset, base, method):
    resolved = load_recipe(f"{dataset}-{base}-{method}")
    r, stage1 = resolved.recipe, load_recipe(f"{dataset}-{base}").recipe
    assert r.train.init_from == f"recipe:{dataset}-{base}"
    assert r.data == stage1.data and r.model == stage1.model  # the same data and network as stage 1
    assert (r.loss.name, r.schedule.name, r.train.batch_size, r.train.momentum) == ("ce", "none", 128, 0.9)
    (s,) = r.train.stages
    assert (s.method, s.epochs, s.lr, s.lr_schedule, s.weight_decay, s.sampler) == \
        (method, 10, 0.1, "cosine", 2e-4, "class_aware")
    assert find_recipe(f"{dataset}-{base}-{method}").read_text().count("docs/recipes.md") >= 1
    assert read_toml(find_recipe(f"{dataset}-{base}-{method}"))["description"].startswith(
        {"cifar10": "CIFAR-10-LT", "cifar100": "CIFAR-100-LT"}[r.data.source])


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_shipped_decoupling_recipe_runs_on_top_of_its_stage_1_run(dataset, tmp_path: Path):
    """Tiny data, one batch per epoch: each stage-1 recipe for one epoch, then each stage-2 recipe
    (its file as shipped, but 1 epoch instead of 10) starting from the stage-1 run it names, found
    by recipe name as users run them."""
    out, copies = tmp_path / "runs", tmp_path / "recipes"
    copies.mkdir()
    tiny = [f"data.source=npz:{tiny_npz(tmp_path)}", "data.imbalance_ratio=4", "train.batch_size=8",
            "train.max_batches_per_epoch=1"]
    stage1 = {}
    for base in sorted({b for b, _ in DECOUPLED}):
        recipe = load_recipe(f"{dataset}-{base}", tiny + ["train.epochs=1", "train.milestones=[]", "train.warmup_epochs=1"])
        stage1[base] = train_one(recipe, seed=0, out=out, device=CPU)
    for base, method in DECOUPLED:
        name = f"{dataset}-{base}-{method}"
        text = find_recipe(name).read_text()
        assert text.count("\nepochs = 10\n") == 1
        (copies / f"{name}.toml").write_text(text.replace("\nepochs = 10\n", "\nepochs = 1\n"))
        record = train_one(load_recipe(str(copies / f"{name}.toml"), tiny), seed=0, out=out, device=CPU)
        assert record.status == "finished" and len(record.history) == 1 and record.final is not None
        src = record.init_from
        assert (src.recipe_name, src.config_hash, src.seed) == (f"{dataset}-{base}", stage1[base].config_hash, 0)
        assert src.method_key == base
