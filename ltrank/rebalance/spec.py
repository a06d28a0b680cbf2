"""The ``--posthoc`` forms: ``tau-norm=TAU``, ``tau-norm=auto``, ``logit-adjust=TAU``, ``ncm``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ltrank.errors import LtrankError, did_you_mean

PosthocKind = Literal["tau-norm", "logit-adjust", "ncm"]
KINDS: tuple[str, ...] = ("tau-norm", "logit-adjust", "ncm")
FORMS = "tau-norm=TAU, tau-norm=auto, logit-adjust=TAU or ncm (TAU a number >= 0, e.g. tau-norm=1.0)"


@dataclass(frozen=True)
class PosthocSpec:
    """One post-hoc adjustment; ``tau`` None means "pick on validation" (tau-norm) or unused (ncm)."""

    kind: PosthocKind
    tau: float | None = None

    @property
    def label(self) -> str:
        """The row label, e.g. ``tau-norm (tau 1.0)``, ``tau-norm (tau auto)``, ``NCM``."""
        if self.kind == "ncm":
            return "NCM"
        return f"{self.kind} (tau {'auto' if self.tau is None else format_tau(self.tau)})"


def format_tau(tau: float) -> str:
    """``1.0``, ``0.5``, ``1.25``: a float as Python writes it."""
    return repr(float(tau))


def parse_posthoc(text: str) -> PosthocSpec:
    """Read one ``--posthoc`` value; a one-line LtrankError listing the allowed forms otherwise."""
    raw = text.strip()
    kind, sep, value = (part.strip() for part in raw.partition("="))
    kind = kind.lower()
    if kind not in KINDS:
        raise LtrankError(f"--posthoc {text!r}: unknown adjustment {kind!r}{did_you_mean(kind, KINDS)}; use {FORMS}")
    if kind == "ncm":
        if sep:
            raise LtrankError(f"--posthoc {text!r}: ncm takes no value; use {FORMS}")
        return PosthocSpec("ncm")
    if not sep or not value:
        raise LtrankError(f"--posthoc {text!r}: {kind} needs a tau; use {FORMS}")
    if kind == "tau-norm" and value.lower() == "auto":
        return PosthocSpec("tau-norm", None)
    try:
        tau = float(value)
    except ValueError:
        tau = math.nan
    if not math.isfinite(tau) or tau < 0:
        auto = " or 'auto'" if kind == "tau-norm" else ""
        raise LtrankError(f"--posthoc {text!r}: tau must be a finite number >= 0{auto}, got {value!r}; use {FORMS}")
    return PosthocSpec(kind, tau)  # type: ignore[arg-type]
