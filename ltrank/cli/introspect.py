"""`ltrank list ...`, `ltrank show ...` and `ltrank --version`: what is installed and how to use it."""

from __future__ import annotations

import fnmatch
import platform
from typing import Annotated, Any, Literal, Optional, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ltrank.registry import PluginRecord, Registry, natural_key

list_app = typer.Typer(help="List registered losses, backbones, schedules or recipes.", no_args_is_help=True)
show_app = typer.Typer(help="Show one loss, backbone or schedule with its parameters.", no_args_is_help=True)

Pattern = Annotated[Optional[str], typer.Argument(help="fnmatch pattern, e.g. 'ap*'")]


def _registry(plural: str) -> Registry:
    from ltrank.catalog import REGISTRIES

    return REGISTRIES[plural]


def _console() -> Console:
    return Console(soft_wrap=False)


def _list_registry(plural: str, pattern: str | None) -> None:
    registry = _registry(plural)
    records = registry.plugins(load=True)  # importing here shows broken plugins as failed
    names = registry.names(pattern or "*")
    table = Table(title=f"{registry.kind_plural} ({len(names)})", title_justify="left")
    for column in ("name", "description", "capabilities", "from"):
        table.add_column(column, overflow="fold")
    for name in names:
        spec = registry.get(name)
        table.add_row(escape(name), escape(spec.description), ", ".join(sorted(spec.capabilities)) or "-", registry.origin(name))
    console = _console()
    console.print(table)
    failed = [r for r in records if r.error and fnmatch.fnmatch(r.name, pattern or "*")]
    if failed:
        console.print(_failed_table(failed))


def _failed_table(records: list[PluginRecord]) -> Table:
    table = Table(title="failed plugins", title_justify="left", style="red")
    for column in ("name", "distribution", "version", "entry point", "error"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(*(escape(v) for v in (r.name, r.distribution, r.version, r.value, r.error or "")))
    return table


@list_app.command("losses")
def list_losses(pattern: Pattern = None) -> None:
    """Registered losses (built-in and plugins)."""
    _list_registry("losses", pattern)


@list_app.command("backbones")
def list_backbones(pattern: Pattern = None) -> None:
    """Registered backbones; 'timm/*' stands for every timm model."""
    _list_registry("backbones", pattern)


@list_app.command("schedules")
def list_schedules(pattern: Pattern = None) -> None:
    """Registered weighting schedules."""
    _list_registry("schedules", pattern)


@list_app.command("recipes")
def list_recipes(pattern: Pattern = None) -> None:
    """Recipes shipped with ltrank (use them as `ltrank train --recipe NAME`)."""
    from ltrank.recipe import find_recipe, read_toml, shipped_recipes

    names = sorted(fnmatch.filter(shipped_recipes(), pattern or "*"), key=natural_key)
    table = Table(title=f"recipes ({len(names)})", title_justify="left")
    table.add_column("name")
    table.add_column("description", overflow="fold")
    for name in names:
        table.add_row(name, escape(str(read_toml(find_recipe(name)).get("description", ""))))
    _console().print(table)


def _show(plural: str, name: str) -> None:
    registry = _registry(plural)
    spec = registry.get(name)
    if plural == "backbones" and name.startswith("timm/") and registry.origin(name) == "built-in":
        from ltrank.models.timm_adapter import check_timm_model

        check_timm_model(name[len("timm/"):])  # the namespace entry answers any name; timm knows
    console = _console()
    console.print(f"[bold]{escape(name)}[/bold]  ({registry.kind}, {escape(registry.origin(name))})")
    console.print(escape(spec.description))
    if spec.paper:
        console.print(f"paper: {escape(spec.paper)}")
    if spec.capabilities:
        console.print("capabilities: " + ", ".join(sorted(spec.capabilities)))
    if spec.params.__doc__ and spec.params.__doc__.strip() and spec.params.__doc__ != BaseModel.__doc__:
        console.print(escape(spec.params.__doc__.strip()))
    console.print(params_table(spec.params))


def params_table(params: type[BaseModel]) -> Table:
    """One row per parameter: name, type, default, constraints, description."""
    table = Table(title="parameters", title_justify="left")
    for column in ("name", "type", "default", "constraints"):
        table.add_column(column, overflow="fold", max_width=24)
    table.add_column("description", overflow="fold", ratio=1)
    if not params.model_fields:
        table.add_row("-", "", "", "", "no parameters")
    for field_name, info in params.model_fields.items():
        default = "required" if info.default is PydanticUndefined else repr(info.default)
        cells = (field_name, _type_name(info.annotation), default, _constraints(info.metadata), info.description or "")
        table.add_row(*(escape(c) for c in cells))
    return table


def _type_name(annotation: Any) -> str:
    """``float``, ``'a' | 'b'`` for a Literal, else the annotation as Python writes it."""
    if get_origin(annotation) is Literal:
        return " | ".join(repr(a) for a in get_args(annotation))
    if get_args(annotation):
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def _constraints(metadata: list[Any]) -> str:
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "multiple_of": "multiple of", "min_length": "min length", "max_length": "max length"}
    parts = []
    for item in metadata:
        for attr, symbol in symbols.items():
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
        if getattr(item, "allow_inf_nan", None) is False:
            parts.append("finite")
    return ", ".join(parts)


@show_app.command("loss")
def show_loss(name: Annotated[str, typer.Argument(help="loss name, see `ltrank list losses`")]) -> None:
    """A loss: description, paper, capabilities and its parameters."""
    _show("losses", name)


@show_app.command("backbone")
def show_backbone(name: Annotated[str, typer.Argument(help="backbone name, e.g. resnet32 or timm/resnet18")]) -> None:
    """A backbone and its parameters."""
    _show("backbones", name)


@show_app.command("schedule")
def show_schedule(name: Annotated[str, typer.Argument(help="schedule name, see `ltrank list schedules`")]) -> None:
    """A weighting schedule and its parameters."""
    _show("schedules", name)


def version_text() -> str:
    """ltrank, torch and Python versions, and every plugin distribution with its state."""
    import torch

    import ltrank
    from ltrank.catalog import REGISTRIES

    lines = [f"ltrank {ltrank.__version__}", f"torch {torch.__version__}", f"python {platform.python_version()}"]
    for plural, registry in REGISTRIES.items():
        for record in registry.plugins(load=True):  # load, so a broken plugin shows as failed
            state = f"failed: {record.error}" if record.error else "ok"
            lines.append(f"plugin {record.distribution} {record.version}: {plural} {record.name} ({state})")
    return "\n".join(lines)
