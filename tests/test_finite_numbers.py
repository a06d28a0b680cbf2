"""Every number is finite: inf, -inf and nan are refused in every float field of every schema.

The fields are found by walking the schemas (recipe tables, [data], every registered params
model, plugins included), so a float field added later is covered without a new test.
"""

from __future__ import annotations

import math
import types
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, ConfigDict, Field

from ltrank.errors import LtrankError
from ltrank.recipe import Recipe, config_hash, load_recipe, resolve, shipped_recipes
from ltrank.registry import Registry, Spec

BAD = [math.inf, -math.inf, math.nan]
BASE = {"data": {"source": "cifar10"}, "loss": {"name": "focal"}}
STAGE = {"epochs": 1, "lr": 0.1, "weight_decay": 0.0}


def _is_float(annotation: Any) -> bool:
    if annotation is float:
        return True
    if get_origin(annotation) in (Union, types.UnionType, list):
        return any(_is_float(a) for a in get_args(annotation))
    return False


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _float_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], bool]]:
    """(path, is_list) of every float field, following nested models (lists of them too)."""
    out = []
    for name, info in model.model_fields.items():
        if _is_float(info.annotation):
            out.append((prefix + (name,), get_origin(info.annotation) is list))
        inner = _inner_model(info.annotation)
        if inner is not None:
            out += _float_fields(inner, prefix + (name,))
    return out


def _raw_with(path: tuple[str, ...], value: Any) -> tuple[dict[str, Any], str]:
    """Minimal raw recipe with ``value`` at ``path``, and the location the error must name."""
    raw: dict[str, Any] = {"data": dict(BASE["data"]), "loss": dict(BASE["loss"])}
    if path[:2] == ("train", "stages"):
        stage = dict(STAGE)
        node, location = stage, "train.stages[0]"
        raw["train"] = {"stages": [stage]}
        rest = path[2:]
    else:
        node, location, rest = raw, "", path
    for key in rest[:-1]:
        node = node.setdefault(key, {})
        location += f".{key}"
    node[rest[-1]] = value
    return raw, f"{location}.{rest[-1]}".lstrip(".")


RECIPE_FLOATS = _float_fields(Recipe)


def test_the_walk_finds_the_float_fields_we_know_of():
    paths = {".".join(p) for p, _ in RECIPE_FLOATS}
    assert {"train.lr", "train.weight_decay", "train.momentum", "train.gamma", "train.warmup_start_factor",
            "data.imbalance_ratio", "train.stages.lr", "train.stages.weight_decay"} <= paths


@pytest.mark.parametrize("value", BAD, ids=repr)
@pytest.mark.parametrize("path,is_list", RECIPE_FLOATS, ids=lambda p: ".".join(p) if isinstance(p, tuple) else "")
def test_every_recipe_float_refuses_non_finite(path, is_list, value):
    raw, location = _raw_with(path, [value] if is_list else value)
    with pytest.raises(LtrankError) as info:
        resolve(raw)
    assert str(info.value) == f"{location}: must be a finite number (got {value!r})"


def _registries() -> list[tuple[str, Registry]]:
    from ltrank.catalog import BACKBONES, LOSSES, SCHEDULES

    return [("loss", LOSSES), ("model", BACKBONES), ("schedule", SCHEDULES)]


def _component_floats() -> list[tuple[str, str, str]]:
    out = []
    for where, registry in _registries():
        for name in registry.names():
            name = name.replace("*", "resnet18")  # the timm namespace, through one of its models
            out += [(where, name, ".".join(p)) for p, _ in _float_fields(registry.get(name).params)]
    return out


COMPONENT_FLOATS = _component_floats()


def test_component_walk_covers_builtins_and_the_example_plugin():
    found = {(name, field) for _, name, field in COMPONENT_FLOATS}
    assert {("ap_cb_delta", "delta"), ("ap_cb_delta", "beta"), ("focal", "gamma"), ("ldam", "s"),
            ("drolt", "temperature"), ("timm/resnet18", "drop_rate")} <= found
    try:
        import ltrank_logit_adjust  # noqa: F401
    except ImportError:
        return
    assert ("logit_adjusted", "tau") in found  # its schema forgot allow_inf_nan: the registry catches it


@pytest.mark.parametrize("value", BAD, ids=repr)
@pytest.mark.parametrize("where,name,field", COMPONENT_FLOATS)
def test_every_component_param_refuses_non_finite(where, name, field, value):
    registry = dict(_registries())[where]
    with pytest.raises(LtrankError) as info:
        registry.validate(name, {field: value}, where=f"{where}.params")
    message = str(info.value)
    if registry.origin(name) == "built-in":
        assert message == f"{where}.params.{field}: must be a finite number (got {value!r})"
    else:  # a plugin's own bounds (e.g. ge=0 against -inf) may speak first; refused either way
        assert message.startswith(f"{where}.params.{field}: ") and message.endswith(f"(got {value!r})")


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    values: list[float] = Field(default_factory=list)


class _CarelessParams(BaseModel):
    """A plugin schema that forgot allow_inf_nan=False everywhere."""

    model_config = ConfigDict(extra="forbid")
    scale: float = 1.0
    inner: _Inner = Field(default_factory=_Inner)
    table: dict[str, Any] = Field(default_factory=dict)


@pytest.mark.parametrize("params,location", [
    ({"scale": math.inf}, "loss.params.scale"),
    ({"inner": {"values": [1.0, math.nan]}}, "loss.params.inner.values[1]"),
    ({"table": {"a": {"b": [0.5, -math.inf]}}}, "loss.params.table.a.b[1]"),
])
def test_a_careless_plugin_schema_cannot_let_non_finite_through(params, location):
    reg = Registry("loss", "ltrank.test.v1", context=("class_counts",))
    reg.discover([])
    reg.register("careless", Spec(lambda class_counts, **kw: kw, "careless", params=_CarelessParams))
    with pytest.raises(LtrankError, match=r"^" + location.replace("[", r"\[").replace("]", r"\]")
                       + r": must be a finite number \(got (inf|nan|-inf)\)$"):
        reg.validate("careless", params, where="loss.params")
    with pytest.raises(LtrankError, match="must be a finite number"):
        reg.build("careless", class_counts=[1], **params)  # building from Python is checked too
    assert reg.build("careless", class_counts=[1], scale=2.0)["scale"] == 2.0


@pytest.mark.parametrize("recipe", shipped_recipes())
def test_config_hash_of_every_shipped_recipe(recipe):
    resolved = load_recipe(recipe)
    assert len(resolved.config_hash) == 12
    assert resolved.config_hash == config_hash(resolved.as_dict())
