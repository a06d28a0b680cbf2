"""One run of a sweep, as data: which recipe (already validated), which seed, where its folder is.

Kept apart from the planning (which imports torch through the recipe registries) so that a
worker-side process, e.g. a submitit job unpickling its run, starts without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a recipe (validated, with the sweep's overrides) and a seed.

    ``recipe_arg`` is what the worker's ``--recipe`` gets (a shipped name or an absolute path);
    ``needs`` names the recipe whose run with the same seed this one starts from
    (``train.init_from = "recipe:NAME"``); ``added_for`` is set on runs the sweep added
    because another recipe needs them.
    """

    recipe_arg: str
    name: str
    config_hash: str
    seed: int
    out: Path
    total_epochs: int
    needs: Optional[str] = None
    added_for: Optional[str] = None

    @property
    def run_dir(self) -> Path:
        """``OUT/<recipe>/<config hash>/seed<N>``, the folder ``ltrank train`` writes."""
        return self.out / self.name / self.config_hash / f"seed{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.name} seed {self.seed}"
