"""`ltrank list ...`, `ltrank show ...` and `ltrank --version`, through the real CLI."""

from __future__ import annotations

import platform

import pytest
import torch
from typer.testing import CliRunner

import ltrank
from ltrank.cli.app import app
from ltrank.catalog import REGISTRIES

WIDE = {"COLUMNS": "250"}  # one table row per line for the short cells read below


def _run(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


def _names(output: str) -> list[str]:
    return [line.split("│")[1].strip() for line in output.splitlines() if line.startswith("│ ") and not line.startswith("│  ")]


def _params(output: str) -> dict[str, tuple[str, str]]:
    """`show`'s parameters: name -> (signature line, description), wrapped lines joined."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("parameters"))
    params: dict[str, list[str]] = {}
    for line in lines[start + 1:]:
        if line.startswith("  ") and not line.startswith("      "):
            current = params[line.split(":")[0].strip()] = [line.strip(), ""]
        elif line.startswith("      "):
            current[1] = f"{current[1]} {line.strip()}".strip()
    return {name: (sig, desc) for name, (sig, desc) in params.items()}


def test_show_renders_name_type_default_constraints_description():
    result = _run("show", "loss", "ap_cb_delta")
    assert result.exit_code == 0, result.output
    params = _params(result.output)
    # defaults and bounds from the issue / docs/method.md section 5: delta 1.0 > 0, beta 0.99 in [0, 1)
    assert params["delta"][0] == "delta: float = 1.0 (> 0.0, finite)"
    assert params["beta"][0] == "beta: float = 0.99 (>= 0.0, < 1.0)"
    assert params["mode"][0] == "mode: 'multiply' | 'divide' = 'multiply'"
    assert params["formulation"][0] == "formulation: 'thesis' | 'interpolated' = 'thesis'"
    assert all(desc for _, desc in params.values())  # every parameter has a description
    assert "parameters ([loss.params] in a recipe):" in result.output
    assert "capabilities: needs_class_weights, uses_class_weights" in result.output


@pytest.mark.parametrize("plural, kind", [("losses", "loss"), ("backbones", "backbone"), ("schedules", "schedule")])
def test_show_documents_every_parameter_of_every_entry(plural, kind):
    registry = REGISTRIES[plural]
    for name in registry.names():
        concrete = name.replace("*", "resnet18")  # 'timm/*' is shown as one model of the namespace
        result = _run("show", kind, concrete)
        assert result.exit_code == 0, (name, result.output)
        fields = registry.get(concrete).params.model_fields
        if not fields:
            assert "parameters: none" in result.output, name
            continue
        params = _params(result.output)
        assert set(fields) == set(params), (name, sorted(params))
        assert all(params[f][1] == fields[f].description for f in fields), name


def test_list_filters_with_fnmatch_and_sorts_naturally():
    result = _run("list", "losses", "ap*")
    assert result.exit_code == 0, result.output
    assert _names(result.output) == ["ap", "ap_cb_delta", "ap_cb_primary"]
    recipes = _run("list", "recipes", "cifar10-ir*-ap")
    assert _names(recipes.output) == ["cifar10-ir50-ap", "cifar10-ir100-ap"]  # 50 before 100
    assert _names(_run("list", "schedules").output) == ["drw", "fixed", "none", "progressive"]
    assert _names(_run("list", "backbones", "timm*").output) == ["timm/*"]
    empty = _run("list", "losses", "no_such_*")
    assert empty.exit_code == 0 and _names(empty.output) == []


@pytest.mark.parametrize("args, hint", [
    (["show", "loss", "ap_cb_delt"], "did you mean 'ap_cb_delta'"),
    (["show", "backbone", "resnet23"], "did you mean 'resnet32'"),
    (["show", "schedule", "progresive"], "did you mean 'progressive'"),
    (["show", "backbone", "timm/resnet181"], "did you mean 'resnet18'"),
])
def test_show_unknown_name_is_one_line_with_suggestion(args, hint):
    result = _run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown ") and hint in lines[0], result.stderr


def test_version_names_ltrank_torch_and_python():
    result = _run("--version")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:3] == [f"ltrank {ltrank.__version__}", f"torch {torch.__version__}",
                         f"python {platform.python_version()}"]
    assert all(line.startswith("plugin ") for line in lines[3:])
