"""The shipped large-dataset recipes (issue 13): the Decoupling protocol, explicit beta and delta,
GPU note, Many/Medium/Few groups; Places-LT without local weights is one line, not a hang."""

from __future__ import annotations

import pytest

from ltrank.errors import LtrankError
from ltrank.recipe import find_recipe, load_recipe, read_toml

IMAGENET = {"ce": ("ce", "none", "linear"), "ap": ("ap", "none", "linear"),
            "cbdelta": ("ap_cb_delta", "fixed", "linear"), "cbprimary": ("ap_cb_primary", "fixed", "linear"),
            "ldam-drw": ("ldam", "drw", "cosine")}


@pytest.mark.parametrize("method", sorted(IMAGENET))
def test_imagenet_lt_recipes_follow_the_decoupling_protocol(method):
    name = f"imagenetlt-r50-{method}"
    raw, r = read_toml(find_recipe(name)), load_recipe(name).recipe
    assert "Kang et al., ICLR 2020" in r.description and "For GPUs" in r.description
    assert (r.data.source, r.data.profile, r.data.image_size) == ("imagenet_lt:ImageNet_LT", "asis", 224)
    assert (r.model.backbone, r.model.params["pretrained"]) == ("timm/resnet50", False)
    t = r.train
    assert (t.epochs, t.batch_size, t.lr, t.lr_schedule, t.weight_decay, t.warmup_epochs) == (90, 256, 0.1, "cosine", 5e-4, 0)
    assert (t.momentum, t.nesterov) == (0.9, False)
    loss, schedule, head = IMAGENET[method]
    assert (r.loss.name, r.schedule.name, r.model.params["head"]) == (loss, schedule, head)
    assert r.eval.groups == "shots"
    if loss.startswith("ap"):
        assert raw["loss"]["params"]["delta"] == 1.0
    if loss.startswith("ap_cb"):
        assert raw["loss"]["params"]["beta"] == 0.999
    if method == "ldam-drw":
        assert raw["loss"]["params"]["beta"] == 0.9999 and r.schedule.params["start_epoch"] == 61


def test_places_lt_recipe_starts_from_imagenet_weights():
    r = load_recipe("placeslt-r152-ce").recipe
    assert (r.data.source, r.data.profile) == ("places_lt:Places_LT", "asis")
    assert (r.model.backbone, r.model.params["pretrained"]) == ("timm/resnet152", True)
    assert (r.train.epochs, r.train.lr, r.train.lr_schedule) == (30, 0.01, "cosine")
    assert "For GPUs" in r.description and r.eval.groups == "shots"


def test_places_lt_model_without_local_weights_is_one_line(monkeypatch, tmp_path):
    from ltrank.models import timm_adapter

    r = load_recipe("placeslt-r152-ce").recipe
    monkeypatch.setattr(timm_adapter, "_hub_reachable", lambda timeout=3.0: False)  # offline: cache only, no retries
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(LtrankError) as info:
        timm_adapter.build_timm(365, "resnet152", **r.model.params)
    assert "\n" not in str(info.value) and "pretrained weights for timm/resnet152" in str(info.value)
