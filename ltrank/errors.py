"""User-facing errors.

Anything a user can fix (a typo, a missing file, a bad value) is raised as
:class:`LtrankError` with a one-line message that says what is wrong and how to fix it.
The CLI prints it on stderr and exits with code 2; library users get a normal exception.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError


class LtrankError(Exception):
    """A problem the user can fix; the message is one line: what is wrong, and the fix."""

    exit_code = 2


class RunFailed(Exception):
    """A run that started but did not finish (diverged, interrupted); exit code 1."""

    exit_code = 1


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean ...?)' suffix, or '' when nothing is close."""
    close = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.5)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def format_validation_error(exc: ValidationError, where: str, model: type[BaseModel] | None = None,
                            rename: Mapping[str, str] | None = None) -> str:
    """One line for the first pydantic error, e.g. ``loss.params.beta: Input should be < 1``: the one
    way every validation error (recipes, plugin params, run records, command options) is told.

    With ``model`` given, an unknown key also gets "did you mean" and the allowed keys (also
    inside lists of tables such as ``[[train.stages]]``). A non-finite number reads
    ``train.lr: must be a finite number (got inf)``.
    With ``rename``, a top-level field is shown under another name (a command-line option:
    ``imbalance_ratio`` -> ``--imbalance-ratio``).
    """
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    if rename and loc and str(loc[0]) in rename:
        where, loc = rename[str(loc[0])], loc[1:]
    location = field_location(where, loc)
    msg = err["msg"]
    if err["type"] == "finite_number":
        msg = f"must be a finite number (got {err['input']!r})"
    elif err["type"] == "extra_forbidden":
        fields = _fields_at(model, err["loc"][:-1]) if model else []
        msg = "unknown key" + did_you_mean(str(err["loc"][-1]), fields)
        if fields:
            msg += f"; allowed: {', '.join(sorted(fields))}"
    elif "input" in err and err["type"] != "missing":
        msg += f" (got {err['input']!r})"
    more = len(exc.errors()) - 1
    return f"{location}: {msg}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def field_location(where: str, loc: tuple[Any, ...]) -> str:
    """``where`` plus a pydantic location: ``train.stages[0].lr``, ``loss.params.beta``."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if not path:
        return where
    if not where:
        return path
    if where.endswith(" parameter"):  # "loss 'x' parameter beta"
        return f"{where} {path}"
    return f"{where}{path}" if path.startswith("[") else f"{where}.{path}"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model found by following ``loc`` from ``model``.

    Integer parts step into a list's items; ``Optional[X]`` is followed as ``X``.
    """
    current: Any = model
    for part in loc:
        current = _unwrap_optional(current)
        if isinstance(part, int):
            if get_origin(current) not in (list, tuple):
                return []
            current = get_args(current)[0]
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = fields[part].annotation
    fields = getattr(_unwrap_optional(current), "model_fields", None)
    return list(fields) if fields else []


def _unwrap_optional(annotation: Any) -> Any:
    """``X`` for ``Optional[X]`` / ``X | None``; anything else unchanged."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation
