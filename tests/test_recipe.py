"""Recipes: every shipped file validates and says what the thesis ran; resolving, hashing, printing."""

from __future__ import annotations

import pytest
import tomllib

from ltrank.errors import LtrankError
from ltrank.recipe import (
    apply_overrides,
    config_hash,
    find_recipe,
    load_recipe,
    parse_override,
    read_toml,
    resolve,
    shipped_recipes,
)
from ltrank.cli.recipe_toml import to_toml

DATASETS = ["cifar10-ir50", "cifar10-ir100", "cifar100-ir50", "cifar100-ir100"]
METHODS = ["ce", "focal", "cbfocal", "ldam", "ldam-drw", "drolt", "ap", "cbdelta", "cbdelta-divide",
           "cbdelta-progressive", "cbprimary", "cbprimary-progressive"]
# docs/method.md section 6: CB Focal (beta, gamma) of the Bag of Tricks configs.
CB_FOCAL = {"cifar10-ir100": (0.9999, 1.0), "cifar100-ir100": (0.9, 1.0),
            "cifar10-ir50": (0.9999, 2.0), "cifar100-ir50": (0.99, 1.0)}
# recipe method -> (loss name, schedule, head, ap_cb_delta mode)
EXPECTED = {
    "ce": ("ce", "none", "linear", None), "focal": ("focal", "none", "linear", None),
    "cbfocal": ("cb_focal", "fixed", "linear", None), "ldam": ("ldam", "none", "cosine", None),
    "ldam-drw": ("ldam", "drw", "cosine", None), "drolt": ("drolt", "none", "linear", None),
    "ap": ("ap", "none", "linear", None), "cbdelta": ("ap_cb_delta", "fixed", "linear", "multiply"),
    "cbdelta-divide": ("ap_cb_delta", "fixed", "linear", "divide"),
    "cbdelta-progressive": ("ap_cb_delta", "progressive", "linear", "multiply"),
    "cbprimary": ("ap_cb_primary", "fixed", "linear", None),
    "cbprimary-progressive": ("ap_cb_primary", "progressive", "linear", None),
}


#: The large-dataset starting points of issue 13 (checked in test_large_recipes.py).
LARGE = {f"imagenetlt-r50-{m}" for m in ("ce", "ap", "cbdelta", "cbprimary", "ldam-drw")} | {"placeslt-r152-ce"}
# decoupled training on top of a stage-1 recipe (tests/test_decoupling_recipes.py)
DECOUPLED = ["ce-crt", "ap-crt", "cbdelta-crt", "ce-lws", "ap-lws"]


def test_the_thesis_grid_the_decoupling_recipes_and_quickstart_are_shipped():
    expected = {f"{d}-{m}" for d in DATASETS for m in METHODS + DECOUPLED} | {"quickstart"} | LARGE
    assert set(shipped_recipes()) == expected


@pytest.mark.parametrize("name", shipped_recipes())
def test_every_shipped_recipe_validates(name):
    resolved = load_recipe(name)
    assert resolved.name == name
    assert len(resolved.config_hash) == 12
    assert resolved.recipe.description


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("method", METHODS)
def test_recipe_says_what_the_thesis_ran(dataset, method):
    name = f"{dataset}-{method}"
    raw = read_toml(find_recipe(name))
    r = load_recipe(name).recipe
    source, ratio = dataset.split("-ir")
    assert (r.data.source, r.data.imbalance_ratio, r.data.profile, r.data.seed) == (source, float(ratio), "exp", 0)
    loss, schedule, head, mode = EXPECTED[method]
    assert (r.loss.name, r.schedule.name, r.model.backbone, r.model.params["head"]) == (loss, schedule, "resnet32", head)
    if mode:
        assert raw["loss"]["params"]["mode"] == mode
    # every class-balanced recipe states its beta in the file, not by default
    if loss in {"cb_focal", "ap_cb_delta", "ap_cb_primary"} or schedule == "drw":
        assert "beta" in raw["loss"]["params"]
    if loss.startswith("ap_cb"):
        assert r.loss.params["beta"] == 0.99
    if loss == "cb_focal":
        assert (r.loss.params["beta"], r.loss.params["gamma"]) == CB_FOCAL[dataset]
    if method == "ldam-drw":
        assert (r.loss.params["beta"], r.schedule.params["start_epoch"]) == (0.9999, 161)
    t = r.train
    if method == "drolt":
        assert t.init_from == f"recipe:{dataset}-ce"
        s1, s2 = t.stages
        assert (s1.epochs, s1.lr, s1.weight_decay, s1.trainable, s1.sampler, s1.loss) == (80, 0.005, 1e-4, "encoder", "shuffle", None)
        assert (s2.epochs, s2.lr, s2.weight_decay, s2.trainable, s2.sampler, s2.loss.name) == (20, 0.01, 1e-4, "head", "class_aware", "ce")
        assert t.epochs == 100
    else:
        assert (t.epochs, t.batch_size, t.lr, t.momentum, t.nesterov, t.weight_decay) == (200, 128, 0.1, 0.9, True, 2e-4)
        assert (t.warmup_epochs, t.milestones, t.gamma, t.max_batches_per_epoch, t.stages) == (5, [160, 180], 0.01, None, [])
        assert t.warmup_start_factor == pytest.approx(1 / 3)


def test_quickstart_is_cifar10_ir100_cb_delta():
    r = load_recipe("quickstart").recipe
    assert (r.data.source, r.data.imbalance_ratio) == ("cifar10", 100.0)
    assert (r.loss.name, r.loss.params["beta"], r.loss.params["mode"], r.schedule.name) == ("ap_cb_delta", 0.99, "multiply", "fixed")


def _raw(**sections):
    raw = {"data": {"source": "cifar10"}, "loss": {"name": "ce"}}
    raw.update(sections)
    return raw


def test_resolution_fills_every_default():
    r = resolve(_raw(loss={"name": "ap_cb_delta", "params": {"beta": 0.999}}, schedule={"name": "drw"}))
    assert r.loss.params == {"delta": 1.0, "beta": 0.999, "mode": "multiply", "formulation": "thesis", "scope": "global"}
    assert r.schedule.params == {"start_epoch": 161}
    assert r.model.params == {"head": "linear"}
    assert r.eval.groups == "thirds" and r.train.epochs == 200
    assert resolve(_raw()).schedule.name == "none"


def test_config_hash_ignores_paths_and_description_but_not_settings():
    base = resolve(_raw()).model_dump(mode="json")
    h = config_hash(base)
    assert config_hash(resolve(_raw(description="other words")).model_dump(mode="json")) == h
    assert config_hash(resolve(_raw(train={"init_from": "/somewhere/checkpoint.pt"})).model_dump(mode="json")) == h
    assert config_hash(resolve(_raw(eval={"groups": "shots"})).model_dump(mode="json")) == h, "display only"
    assert config_hash(resolve(_raw(train={"lr": 0.05})).model_dump(mode="json")) != h
    assert config_hash(resolve(_raw(data={"source": "cifar10", "seed": 1})).model_dump(mode="json")) != h
    # explicit defaults and omitted defaults are the same experiment
    assert config_hash(resolve(_raw(train={"epochs": 200}, loss={"name": "ce", "params": {"beta": 0.9999}})).model_dump(mode="json")) == h


def test_printed_toml_reads_back_as_the_same_recipe():
    for name in ("cifar10-ir100-drolt", "cifar100-ir50-ldam-drw", "quickstart"):
        resolved = load_recipe(name).as_dict()
        assert resolve(tomllib.loads(to_toml(resolved))).model_dump(mode="json") == resolved


@pytest.mark.parametrize("text,keys,value", [
    ("train.lr=0.05", ["train", "lr"], 0.05),
    ("train.epochs=3", ["train", "epochs"], 3),
    ("train.nesterov=false", ["train", "nesterov"], False),
    ("train.milestones=[2, 3]", ["train", "milestones"], [2, 3]),
    ("train.init_from=runs/x/seed0", ["train", "init_from"], "runs/x/seed0"),
    ('loss.params.mode="divide"', ["loss", "params", "mode"], "divide"),
])
def test_overrides_read_values_as_toml(text, keys, value):
    assert parse_override(text) == (keys, value)


def test_overrides_create_tables_and_refuse_to_descend_into_values():
    raw = apply_overrides(_raw(), ["loss.params.weighted=true", "schedule.name=fixed"])
    assert raw["loss"]["params"] == {"weighted": True} and raw["schedule"] == {"name": "fixed"}
    with pytest.raises(LtrankError, match="loss.name is a value"):
        apply_overrides(_raw(), ["loss.name.x=1"])
    with pytest.raises(LtrankError, match="dotted.key=value"):
        parse_override("train.lr")


def test_stage_epochs_must_add_up():
    stage = {"epochs": 2, "lr": 0.01, "weight_decay": 0.0}
    assert resolve(_raw(train={"stages": [stage, stage]})).train.epochs == 4
    with pytest.raises(LtrankError, match="stages add up to 4"):
        resolve(_raw(train={"epochs": 5, "stages": [stage, stage]}))


def test_a_folder_named_like_a_recipe_does_not_hide_it(tmp_path, monkeypatch):
    (tmp_path / "quickstart").mkdir()  # e.g. left by 'ltrank train --recipe quickstart --out quickstart'
    monkeypatch.chdir(tmp_path)
    assert find_recipe("quickstart").name == "quickstart.toml"
    (tmp_path / "mine").write_text("")  # an existing file is taken as a path, whatever its suffix
    assert find_recipe("mine") == tmp_path.joinpath("mine").relative_to(tmp_path)
