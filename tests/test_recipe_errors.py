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


# ---------------------------------------------------------------- every number is finite (issue 9, item 3)
@pytest.mark.parametrize("recipe,override,message", [
    ("quickstart", "train.lr=inf", "train.lr: must be a finite number (got inf)"),
    ("quickstart", "train.weight_decay=inf", "train.weight_decay: must be a finite number (got inf)"),
    ("quickstart", "train.weight_decay=nan", "train.weight_decay: must be a finite number (got nan)"),
    ("quickstart", "data.imbalance_ratio=inf", "data.imbalance_ratio: must be a finite number (got inf)"),
    ("quickstart", "loss.params.delta=nan", "loss.params.delta: must be a finite number (got nan)"),
    ("quickstart", "train.momentum=-inf", "train.momentum: must be a finite number (got -inf)"),
    ("cifar10-ir100-focal", "loss.params.gamma=inf", "loss.params.gamma: must be a finite number (got inf)"),
    ("cifar10-ir100-ldam", "loss.params.s=nan", "loss.params.s: must be a finite number (got nan)"),
    ("cifar10-ir100-drolt", "loss.params.temperature=inf", "loss.params.temperature: must be a finite number (got inf)"),
    ("quickstart", "model.backbone=timm/resnet18", None),  # a control: finite and known, accepted
])
def test_non_finite_numbers_are_refused_with_their_location(recipe, override, message):
    extra = ["--set", "train.init_from=x.pt"] if recipe.endswith("drolt") else []
    result = train("--recipe", recipe, "--set", override, *extra)
    if message is None:
        assert result.exit_code == 0, result.output
    else:
        assert_one_line_error(result, f"recipe {recipe} (", f"): {message}")


def test_non_finite_inside_a_stage_names_the_stage():
    result = train("--recipe", "cifar10-ir100-drolt", "--set", "train.init_from=x.pt",
                   "--set", "train.stages=[{epochs=1, lr=nan, weight_decay=0}]")
    assert_one_line_error(result, "train.stages[0].lr: must be a finite number (got nan)")


# ---------------------------------------------------------------- validation means what it says (item 4)
def test_unknown_timm_model_is_caught_by_dry_run():
    result = train("--recipe", "quickstart", "--set", "model.backbone=timm/resnet181")
    assert_one_line_error(result, "model.backbone: unknown timm model 'resnet181'", "did you mean 'resnet18'")


def test_recipe_that_is_not_utf8_is_one_line(tmp_path: Path):
    recipe = tmp_path / "latin1.toml"
    recipe.write_bytes('description = "caf\u00e9"\n[data]\nsource = "cifar10"\n[loss]\nname = "ce"\n'.encode("latin-1"))
    assert_one_line_error(train("--recipe", str(recipe)), f"{recipe}: not UTF-8 text (byte 0xe9 at offset 18)",
                          "save the file as UTF-8")


def test_recipe_with_a_utf8_byte_order_mark_reads(tmp_path: Path):
    recipe = tmp_path / "bom.toml"
    recipe.write_bytes(b'\xef\xbb\xbf[data]\nsource = "cifar10"\n[loss]\nname = "ce"\n')
    result = train("--recipe", str(recipe))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("recipe,overrides,fragments", [
    # the example: trains unweighted under 'none' while the record says weighted
    ("cifar10-ir100-ce", ["loss.params.weighted=true"],
     ["loss.params.weighted: true, but schedule 'none' gives the loss all-ones weights every epoch",
      "'ce' would train unweighted", 'set [schedule] name = "fixed"']),
    # the other members of the kind: ldam's flag, and any schedule that replaces the weights
    ("cifar10-ir100-ldam", ["loss.params.weighted=true"],
     ["loss.params.weighted: true, but schedule 'none'", "'ldam' would train unweighted"]),
    ("cifar10-ir100-ldam-drw", ["loss.params.weighted=true"],
     ["loss.params.weighted: true has no effect, schedule 'drw' sets the class weights every epoch", "remove weighted"]),
    ("cifar10-ir100-ce", ["loss.params.weighted=true", "schedule.name=progressive"],
     ["loss.params.weighted: true has no effect, schedule 'progressive'"]),
    # a stage's own loss is checked too
    ("cifar10-ir100-drolt", ["train.init_from=x.pt", "train.stages=[{epochs=2, lr=0.01, weight_decay=0, "
                             "loss={name='ce', params={weighted=true}}}]"],
     ["train.stages[0].loss.params.weighted: true, but schedule 'none'"]),
    # epoch numbers past the last epoch never fire
    ("cifar10-ir100-cbdelta", ["train.epochs=30"],
     ["train.milestones: [160, 180] are after the last epoch (30)", "'train.milestones=[24, 27]'", "[] for no decay"]),
    ("quickstart", ["train.epochs=1"], ["train.milestones: [2] is after the last epoch (1)", "'train.milestones=[1]'"]),
    ("cifar10-ir100-ldam-drw", ["train.epochs=150", "train.milestones=[120, 135]"],
     ["schedule.params.start_epoch: epoch 161 is after the last epoch (150)", "set it within 1..150"]),
    ("cifar10-ir100-ce", ["train.epochs=3", "train.milestones=[]"],
     ["train.warmup_epochs: 5 is longer than the run (3 epochs)", "at most 3 (0 for none)"]),
])
def test_settings_a_run_would_ignore_are_refused_with_the_fix(recipe, overrides, fragments):
    args = [a for o in overrides for a in ("--set", o)]
    assert_one_line_error(train("--recipe", recipe, *args), *fragments)


@pytest.mark.parametrize("recipe,overrides", [
    ("cifar10-ir100-ce", ["loss.params.weighted=true", "schedule.name=fixed"]),  # fixed keeps them: CB-CE
    ("cifar10-ir100-ldam-drw", ["train.epochs=161", "train.milestones=[160]"]),  # DRW fires in the last epoch
    ("cifar10-ir100-cbdelta", ["train.epochs=30", "train.milestones=[24, 27]"]),
    ("cifar10-ir100-ce", ["train.epochs=5", "train.milestones=[]"]),  # warm-up ends in the last epoch
    ("cifar10-ir100-drolt", ["train.init_from=x.pt"]),  # stages: the default milestones do not apply
])
def test_settings_that_take_effect_are_accepted(recipe, overrides):
    args = [a for o in overrides for a in ("--set", o)]
    result = train("--recipe", recipe, *args)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("stage,fragments", [
    ("{epochs=1, lr=0.1, weight_decay=0, trainabel='head'}",
     ["train.stages[0].trainabel: unknown key (did you mean 'trainable'?)",
      "allowed: epochs, loss, lr, lr_schedule, method, sampler, tau, trainable, weight_decay"]),
    ("{epochs=1, lr=0.1, weight_decay=0, loss={name='ce', parms={}}}",
     ["train.stages[0].loss.parms: unknown key (did you mean 'params'?); allowed: name, params"]),
])
def test_unknown_keys_in_stages_list_the_allowed_keys(stage, fragments):
    result = train("--recipe", "cifar10-ir100-drolt", "--set", "train.init_from=x.pt", "--set", f"train.stages=[{stage}]")
    assert_one_line_error(result, *fragments)


@pytest.mark.parametrize("overrides,message", [
    (["model.backbone=timm/vit_tiny_patch16_224"],
     "model.backbone: timm/vit_tiny_patch16_224 takes 224x224 images only, but the data's are 32x32; "
     "set [model.params] img_size = 32"),
    (["model.backbone=timm/vit_tiny_patch16_224", "model.params.img_size=32", "model.params.patch_size=4"], None),
    (["model.backbone=timm/mobilenetv3_small_100"], None),
    (["model.backbone=timm/vit_tiny_patch16_224", "model.params.img_size=-32"],
     "model.params.img_size: Input should be greater than 0"),
])
def test_fixed_input_size_timm_models_on_cifar_are_checked_by_dry_run(overrides, message):
    result = train("--recipe", "quickstart", *[a for o in overrides for a in ("--set", o)])
    if message is None:
        assert result.exit_code == 0, result.output
    else:
        assert_one_line_error(result, message)
