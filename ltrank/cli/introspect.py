"""`ltrank list ...`, `ltrank show ...` and `ltrank --version`: what is installed and how to use it.

Readable at 80 columns and in pipes: lists are tables whose descriptions are shortened to their
first sentence or clause (``show`` gives the full text), ``show`` prints wrapped ``key: value``
lines, words are never split, and text from specs, plugins and recipes is never parsed as rich
markup. See :mod:`ltrank.cli.console` for the width rules.
"""

from __future__ import annotations

import platform
from typing import Annotated, Any, Literal, Optional, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ltrank.cli.console import make_console, print_lines, wrap_width, wrapped
from ltrank.registry import PluginRecord, Registry, Spec, natural_key
from ltrank.text import name_matches, plural, summary

list_app = typer.Typer(help="List registered losses, backbones, schedules or recipes.", no_args_is_help=True)
show_app = typer.Typer(help="Show one loss, backbone or schedule with its parameters.", no_args_is_help=True)

Pattern = Annotated[
    Optional[str],
    typer.Argument(help="Part of a name (e.g. 'cbdelta'), or an fnmatch pattern with * ? [ ] (e.g. 'ap*'); case is ignored."),
]

# Descriptions in lists: registry entries have paragraphs, recipes one line by contract.
SUMMARY_CHARS = 80
RECIPE_SUMMARY_CHARS = 120
# Where a component's params go in a recipe, shown by `show`.
RECIPE_TABLE = {"loss": "[loss.params]", "backbone": "[model.params]", "schedule": "[schedule.params]"}


def _registry(plural_name: str) -> Registry:
    from ltrank.catalog import REGISTRIES

    return REGISTRIES[plural_name]


def _list_table(first: str) -> Table:
    table = Table(title_justify="left")
    table.add_column(first, no_wrap=True, overflow="ellipsis")
    table.add_column("description", overflow="ellipsis", min_width=20)
    return table


def _print_title(console: Console, text: str) -> None:
    console.print(Text(text, style="bold"), soft_wrap=True)


def _labelled(spec: Spec) -> str:
    """The description, led by the Spec's display label when it does not already start with it."""
    if spec.label and not spec.description.lower().startswith(spec.label.lower()):
        return f"{spec.label}: {spec.description}"
    return spec.description


def _short_origin(record: PluginRecord | None) -> str:
    """'built-in' or 'distribution version' (the entry point is shown by `show`)."""
    return "built-in" if record is None else f"{record.distribution} {record.version}"


def _list_registry(plural_name: str, pattern: str | None) -> None:
    registry = _registry(plural_name)
    records = registry.plugins(load=True)  # importing here shows broken plugins as failed
    usable = {r.name: r for r in records if not r.error}
    names = [n for n in registry.names() if name_matches(n, pattern)]
    console = make_console()
    matching = f" matching {pattern!r}" if pattern else ""
    _print_title(console, plural(len(names), registry.kind, registry.kind_plural) + matching)
    if names:
        table = _list_table("name")
        table.add_column("from", overflow="ellipsis")
        for name in names:
            spec = registry.get(name)
            table.add_row(Text(name), Text(summary(_labelled(spec), SUMMARY_CHARS)), Text(_short_origin(usable.get(name))))
        console.print(table)
        print_lines(console, wrapped(f"details: ltrank show {registry.kind} NAME", wrap_width(console)), style="dim")
    failed = [r for r in records if r.error and name_matches(r.name, pattern)]
    if failed:
        _print_failed(console, failed)


def _print_failed(console: Console, records: list[PluginRecord]) -> None:
    """Each failed plugin: name, distribution, version and entry point, then its error."""
    width = wrap_width(console)
    print_lines(console, [plural(len(records), "failed plugin") + ":"], style="bold red")
    for r in records:
        print_lines(console, wrapped(f"{r.name}: {r.distribution} {r.version}, entry point {r.name} = {r.value}",
                                     width, "  ", "    "))
        print_lines(console, wrapped(r.error or "", width, "    ", "    "), style="red")


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
    from ltrank.recipe import read_toml, recipes_dir, shipped_recipes

    names = sorted((n for n in shipped_recipes() if name_matches(n, pattern)), key=natural_key)
    console = make_console()
    matching = f" matching {pattern!r}" if pattern else ""
    _print_title(console, plural(len(names), "recipe") + matching)
    if names:
        table = _list_table("name")
        for name in names:
            description = str(read_toml(recipes_dir() / f"{name}.toml").get("description", ""))
            table.add_row(Text(name), Text(summary(description, RECIPE_SUMMARY_CHARS)))
        console.print(table)
        print_lines(console, wrapped("use: ltrank train --recipe NAME", wrap_width(console)), style="dim")


def _show(plural_name: str, name: str) -> None:
    registry = _registry(plural_name)
    spec = registry.get(name)
    if plural_name == "backbones" and name.startswith("timm/") and registry.plugin_record(name) is None:
        from ltrank.models.timm_adapter import check_timm_model

        check_timm_model(name[len("timm/"):])  # the namespace entry answers any name; timm knows
    record = next((r for r in registry.plugins(load=False) if r.name == name and not r.error), None)
    console = make_console()
    width = wrap_width(console)
    header = f"{name} ({registry.kind})" + (f": {spec.label}" if spec.label else "")
    print_lines(console, wrapped(header, width, "", "  "), style="bold")
    print_lines(console, wrapped(spec.description, width) + [""])
    origin = "built-in" if record is None else (
        f"{record.distribution} {record.version} (entry point {record.name} = {record.value})")
    print_lines(console, wrapped(origin, width, "from: ", "  "))
    if spec.paper:
        print_lines(console, wrapped(spec.paper, width, "paper: ", "  "))
    print_lines(console, wrapped(", ".join(sorted(spec.capabilities)) or "none", width, "capabilities: ", "  "))
    # The params schema's docstring is internal (NoParams says "Params schema of ..."): the Spec's
    # description and each field's description are the documentation, for every kind alike.
    print_lines(console, [""] + param_lines(spec.params, RECIPE_TABLE[registry.kind], width))


def param_lines(params: type[BaseModel], recipe_table: str, width: int | None) -> list[str]:
    """One entry per parameter: ``name: type = default (constraints)``, then its description.

    Defaults are shown as the literal a recipe would hold (``5000``, ``'multiply'``), without
    thousands separators, so they can be copied.
    """
    if not params.model_fields:
        return ["parameters: none"]
    lines = [f"parameters ({recipe_table} in a recipe):"]
    for field_name, info in params.model_fields.items():
        default = "required" if info.default is PydanticUndefined else f"= {info.default!r}"
        constraints = _constraints(info.metadata)
        signature = f"{field_name}: {_type_name(info.annotation)} {default}" + (f" ({constraints})" if constraints else "")
        lines += wrapped(signature, width, "  ", "      ")
        lines += wrapped(info.description or "(no description)", width, "      ", "      ")
    return lines


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
    """A loss: description, origin, paper, capabilities and its parameters."""
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
    for kind, registry in REGISTRIES.items():
        for record in registry.plugins(load=True):  # load, so a broken plugin shows as failed
            state = f"failed: {record.error}" if record.error else "ok"
            lines.append(f"plugin {record.distribution} {record.version}: {kind} {record.name} ({state})")
    return "\n".join(lines)
