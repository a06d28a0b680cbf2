"""The generic registry: registration, validation, listing, suggestions, building."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from ltrank.errors import LtrankError
from ltrank.errors import format_validation_error
from ltrank.registry import NEEDS_FEATURES, Registry, Spec, natural_key


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(4, gt=0, description="how wide")
    beta: float = Field(0.5, ge=0, lt=1)


def _make(class_counts, width, beta):
    return ("built", tuple(class_counts), width, beta)


def _registry() -> Registry:
    reg = Registry("loss", "ltrank.test.v1", context=("class_counts",))
    reg.discover([])  # no plugins in these tests
    for name in ("ap", "ap_cb_delta", "ap_cb_primary", "focal", "loss10", "loss2"):
        reg.register(name, Spec(_make, f"{name} desc", params=_Params))
    return reg


def test_build_validates_and_passes_context():
    reg = _registry()
    assert reg.build("ap", class_counts=[3, 1], width=7) == ("built", (3, 1), 7, 0.5)


def test_unknown_param_is_an_error_with_suggestion():
    reg = _registry()
    with pytest.raises(LtrankError, match=r"betta: unknown key \(did you mean 'beta'\?\); allowed: beta, width"):
        reg.build("ap", class_counts=[1], betta=0.9)


def test_constraint_violation_names_the_parameter():
    reg = _registry()
    with pytest.raises(LtrankError, match=r"width: Input should be greater than 0 \(got -1\)"):
        reg.build("ap", class_counts=[1], width=-1)


def test_validate_uses_the_recipe_location():
    reg = _registry()
    with pytest.raises(LtrankError, match=r"^loss\.params\.beta: "):
        reg.validate("ap", {"beta": 2.0}, where="loss.params")


def test_missing_context_is_a_programming_error():
    with pytest.raises(TypeError, match="class_counts"):
        _registry().build("ap", width=2)


def test_unknown_name_suggests_close_names():
    reg = _registry()
    with pytest.raises(LtrankError, match=r"unknown loss 'ap_cb_detla' \(did you mean 'ap_cb_delta'"):
        reg.get("ap_cb_detla")


def test_names_filter_and_natural_sort():
    reg = _registry()
    assert reg.names("ap*") == ["ap", "ap_cb_delta", "ap_cb_primary"]
    assert reg.names("loss*") == ["loss2", "loss10"]
    assert natural_key("resnet8") < natural_key("resnet32") < natural_key("resnet110")


def test_duplicate_and_clashing_registration_rejected():
    reg = _registry()
    with pytest.raises(ValueError, match="already registered"):
        reg.register("ap", Spec(_make, "again", params=_Params))

    class Clash(BaseModel):
        model_config = ConfigDict(extra="forbid")
        class_counts: int = 1

    with pytest.raises(ValueError, match="clash"):
        reg.register("x", Spec(_make, "x", params=Clash))


def test_spec_requires_forbid_and_known_capabilities():
    class Loose(BaseModel):
        a: int = 1

    with pytest.raises(TypeError, match="extra='forbid'"):
        Spec(_make, "d", params=Loose)
    with pytest.raises(TypeError, match="unknown capability"):
        Spec(_make, "d", capabilities=frozenset({"needs_magic"}))
    assert Spec(_make, "d", capabilities=frozenset({NEEDS_FEATURES})).has(NEEDS_FEATURES)


def test_prefix_entries_pass_the_model_name():
    reg = Registry("backbone", "ltrank.test.v1", context=("num_classes",))
    reg.discover([])
    reg.register("timm/", Spec(lambda num_classes, model_name: (model_name, num_classes), "timm"))
    assert reg.build("timm/resnet18", num_classes=3) == ("resnet18", 3)
    assert reg.names() == ["timm/*"]
    with pytest.raises(LtrankError):
        reg.get("timm/")


def test_format_validation_error_counts_further_problems():
    try:
        _Params.model_validate({"width": 0, "beta": 3})
    except Exception as exc:  # pydantic.ValidationError
        line = format_validation_error(exc, "loss.params", _Params)
    assert line.startswith("loss.params.width: ") and line.endswith("(and 1 more problem)")


def test_builtin_registries_are_populated():
    from ltrank.catalog import BACKBONES, LOSSES, SCHEDULES

    assert {"ce"} <= set(LOSSES.names())
    assert {"resnet32", "timm/*"} <= set(BACKBONES.names())
    assert SCHEDULES.names() == ["drw", "fixed", "none", "progressive"]


def test_a_namespace_name_check_runs_at_lookup_and_validation():
    def check(model_name: str) -> None:
        if model_name not in {"resnet18", "vit_tiny"}:
            raise LtrankError(f"unknown timm model {model_name!r}")

    reg = Registry("backbone", "ltrank.test.v1", context=("num_classes",))
    reg.discover([])
    reg.register("timm/", Spec(lambda num_classes, model_name: model_name, "timm"), name_check=check)
    assert reg.get("timm/resnet18").description == "timm"
    assert reg.get("timm/*").description == "timm"  # the listing name is not a model
    for call in (lambda: reg.get("timm/resnet181"), lambda: reg.validate("timm/resnet181", {})):
        with pytest.raises(LtrankError, match="unknown timm model 'resnet181'"):
            call()
    with pytest.raises(ValueError, match="only a namespace"):
        reg.register("plain", Spec(lambda num_classes: 0, "x"), name_check=check)
