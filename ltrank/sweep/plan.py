"""Sweep planning: recipe arguments x seeds -> the ordered list of runs.

A recipe argument is a shipped recipe name, a path to a TOML file, or an fnmatch pattern over
the shipped names (``'cifar100-ir100-*'``). Every recipe is loaded and validated here, before
anything runs, so a bad recipe or ``--set`` stops the sweep at once (one line, exit 2).

Order is deterministic: recipes as given (a pattern's matches sorted), each recipe's seeds in
the order given. A recipe with ``train.init_from = "recipe:NAME"`` (DRO-LT after CE) starts
from the finished run of NAME with the same seed, so NAME's runs are placed before it; when
NAME is not in the sweep it is added (``NAME.toml`` beside the recipe that names it, else the
shipped recipe NAME) for every seed that has no finished NAME run under ``--out`` yet.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ltrank.errors import LtrankError
from ltrank.recipe import ResolvedRecipe, find_recipe, load_recipe, recipes_dir, shipped_recipes
from ltrank.registry import natural_key
from ltrank.records import load_record
from ltrank.run_folder import RECORD_FILENAME
from ltrank.sweep.spec import RunSpec

PATTERN_CHARS = frozenset("*?[")
INIT_PREFIX = "recipe:"


def expand_recipe_args(args: Sequence[str]) -> list[str]:
    """Recipe names, paths and patterns -> recipe arguments, duplicates dropped, order kept.

    Raises :class:`LtrankError` when a pattern matches no shipped recipe.
    """
    if not args:
        raise LtrankError("no recipe given; name one or more recipes, paths or patterns, e.g. 'cifar100-ir100-*'")
    out: list[str] = []
    for arg in args:
        is_path = arg.endswith(".toml") or Path(arg).is_file()
        if not is_path and PATTERN_CHARS & set(arg):
            matches = sorted(fnmatch.filter(shipped_recipes(), arg), key=natural_key)
            if not matches:
                raise LtrankError(f"{arg!r} matches no shipped recipe; see 'ltrank list recipes'")
        else:
            matches = [arg]
        out += [m for m in matches if m not in out]
    return out


def dependency(recipe: ResolvedRecipe) -> Optional[str]:
    """The recipe NAME of ``train.init_from = "recipe:NAME"``, else None (a path needs no run)."""
    init = recipe.recipe.train.init_from
    return init[len(INIT_PREFIX):] if init and init.startswith(INIT_PREFIX) else None


def finished_run_exists(out: Path, name: str, seed: int) -> bool:
    """Whether ``out`` holds a finished run of recipe ``name`` with ``seed`` (any config hash)."""
    for path in (out / name).glob(f"*/seed{seed}/{RECORD_FILENAME}"):
        try:
            if load_record(path).status == "finished":
                return True
        except LtrankError:
            continue
    return False


@dataclass
class _Entry:
    recipe: ResolvedRecipe
    arg: str
    added_for: Optional[str] = None


def _recipe_arg(arg: str) -> str:
    """Shipped names stay names (readable in logs); paths become absolute (workers may run elsewhere)."""
    path = find_recipe(arg)
    return arg if path.parent == recipes_dir() and path.stem == arg else str(path.resolve())


def plan_runs(args: Sequence[str], seeds: Sequence[int], out: Path,
              overrides: Sequence[str] = ()) -> list[RunSpec]:
    """The sweep's runs, in the order they should start (see the module docstring).

    Raises :class:`LtrankError` for an unknown recipe, a bad override, a pattern that matches
    nothing, or a cycle of ``init_from`` recipes.
    """
    out = Path(out)
    entries: list[_Entry] = []
    seen: set[tuple[str, str]] = set()
    for arg in expand_recipe_args(args):
        recipe = load_recipe(arg, list(overrides))
        if (recipe.name, recipe.config_hash) not in seen:
            seen.add((recipe.name, recipe.config_hash))
            entries.append(_Entry(recipe, _recipe_arg(arg)))

    by_name: dict[str, list[_Entry]] = {}
    for e in entries:
        by_name.setdefault(e.recipe.name, []).append(e)
    ordered: list[_Entry] = []

    def visit(entry: _Entry, chain: tuple[str, ...]) -> None:
        if any(entry is o for o in ordered):
            return
        name = entry.recipe.name
        needed = dependency(entry.recipe)
        if needed is not None:
            if needed in chain or needed == name:
                raise LtrankError(f"train.init_from: recipes start from each other in a cycle "
                                  f"({' -> '.join((*chain, name, needed))}); break the cycle")
            if needed not in by_name:
                beside = Path(entry.recipe.source).parent / f"{needed}.toml"  # a recipe's own folder first
                dep_arg = str(beside) if beside.is_file() else needed
                try:
                    dep = load_recipe(dep_arg, list(overrides))
                except LtrankError as exc:
                    raise LtrankError(f"{name} starts from recipe:{needed} (train.init_from), which the sweep "
                                      f"adds: {exc}") from None
                by_name[needed] = [_Entry(dep, _recipe_arg(dep_arg), added_for=name)]
            for dep_entry in by_name[needed]:
                visit(dep_entry, (*chain, name))
        ordered.append(entry)

    for e in entries:
        visit(e, ())

    runs: list[RunSpec] = []
    for e in ordered:
        for seed in seeds:
            if e.added_for is not None and finished_run_exists(out, e.recipe.name, seed):
                continue  # the run it needs is already there (maybe under other settings)
            runs.append(RunSpec(
                recipe_arg=e.arg, name=e.recipe.name, config_hash=e.recipe.config_hash, seed=seed, out=out,
                total_epochs=e.recipe.recipe.train.epochs, needs=dependency(e.recipe), added_for=e.added_for,
            ))
    return runs
