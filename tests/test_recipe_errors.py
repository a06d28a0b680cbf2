"""A bad recipe is one line on stderr naming its TOML location, and exit code 2 -- before any data loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltrank.cli.app import app

runner = CliRunner()


def train(*args: str):
    return runner.invoke(app, ["train", "--dry-run", *args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args,fragments", [
    # unknown key, with the near miss and the allowed keys
    (["--set", "train.lrr=0.1"], ["train.lrr: unknown key", "did you mean 'lr'", "allowed: "]),
    (["--set", "loss.params.betta=0.9"], ["loss.params.betta: unknown key", "did you mean 'beta'"]),
    (["--set", "colour=1"], ["colour: unknown key"]),
    # wrong type
    (["--set", "train.epochs=\"many\""], ["train.epochs: Input should be a valid integer", "'many'"]),
    (["--set", "train.milestones=160"], ["train.milestones: Input should be a valid list"]),
    # unknown component with a suggestion
    (["--set", "loss.name=ap_cb_delt"], ["loss.name: unknown loss 'ap_cb_delt'", "did you mean 'ap_cb_delta'"]),
    (["--set", "schedule.name=progresive"], ["schedule.name: unknown schedule", "did you mean 'progressive'"]),
    (["--set", "model.backbone=resnet23"], ["model.backbone: unknown backbone", "did you mean 'resnet32'"]),
    # bad range, in the loss's own schema and in the recipe's
    (["--set", "loss.params.beta=1.5"], ["loss.params.beta: Input should be less than 1"]),
    (["--set", "loss.params.mode=\"sideways\""], ["loss.params.mode: Input should be 'multiply' or 'divide'"]),
    (["--set", "train.lr=-1"], ["train.lr: Input should be greater than 0"]),
    (["--set", "train.milestones=[180, 160]"], ["train.milestones: Value error, milestones must be increasing"]),
    (["--set", "data.source=cifar11"], ["data.source", "did you mean 'cifar10'"]),
])
def test_recipe_errors_on_quickstart(args, fragments):
    assert_one_line_error(train("--recipe", "quickstart", *args), "quickstart", *fragments)


def test_cosine_head_mismatch_is_one_clear_error():
    result = train("--recipe", "cifar10-ir100-ldam", "--set", "model.params.head=linear")
    assert_one_line_error(result, "loss.name: loss 'ldam' needs a cosine classifier head", "head = \"cosine\"")


def test_schedule_on_a_loss_without_class_weights():
    result = train("--recipe", "cifar10-ir100-focal", "--set", "schedule.name=progressive")
    assert_one_line_error(result, "schedule.name", "'focal' does not use class weights")


def test_drolt_without_a_pretrained_model_says_how_to_get_one(tmp_path: Path):
    recipe = tmp_path / "my-drolt.toml"
    recipe.write_text('[data]\nsource = "cifar10"\n[loss]\nname = "drolt"\n')
    assert_one_line_error(train("--recipe", str(recipe)), "train.init_from", "-ce", "--set train.init_from=")


def test_toml_syntax_error_names_file_and_line(tmp_path: Path):
    recipe = tmp_path / "broken.toml"
    recipe.write_text('[data]\nsource = "cifar10"\n[loss\nname = "ce"\n')
    assert_one_line_error(train("--recipe", str(recipe)), str(recipe), "line 3")


def test_unknown_recipe_name_suggests_the_close_one():
    assert_one_line_error(train("--recipe", "cifar10-ir100-cbdelt"), "unknown recipe", "did you mean 'cifar10-ir100-cbdelta'")


def test_missing_recipe_file(tmp_path: Path):
    assert_one_line_error(train("--recipe", str(tmp_path / "nope.toml")), "nope.toml not found")


def test_bad_override_syntax():
    assert_one_line_error(train("--recipe", "quickstart", "--set", "train.lr"), "expected dotted.key=value")


def test_dry_run_prints_hash_and_a_reusable_recipe(tmp_path: Path):
    result = train("--recipe", "quickstart", "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    from ltrank.recipe import load_recipe

    expected = load_recipe("quickstart", ["train.epochs=2"])
    assert f"# config hash {expected.config_hash}" in result.stdout
    copy = tmp_path / "quickstart-2.toml"
    copy.write_text(result.stdout)
    again = load_recipe(str(copy))
    assert again.config_hash == expected.config_hash and again.recipe.train.epochs == 2


def test_dry_run_json():
    import json

    result = train("--recipe", "cifar100-ir100-cbdelta", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["recipe"] == "cifar100-ir100-cbdelta" and out["resolved"]["loss"]["params"]["beta"] == 0.99


def test_class_balanced_loss_without_a_schedule_is_refused():
    result = train("--recipe", "cifar10-ir100-cbdelta", "--set", "schedule.name=none")
    assert_one_line_error(result, "schedule.name", "'ap_cb_delta'", "class-balanced", 'name = "fixed"')
