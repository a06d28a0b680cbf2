"""The three registries and the explicit registration of ltrank's built-ins.

Each built-in module exposes ``register(registry)``; this module calls them, once, in one
place, so what ships with ltrank is readable here.
"""

from __future__ import annotations

from torch import nn

from ltrank.registry import Registry

LOSSES: Registry[nn.Module] = Registry("loss", "ltrank.losses.v1", context=("class_counts",))
BACKBONES: Registry[nn.Module] = Registry("backbone", "ltrank.backbones.v1", context=("num_classes",))
SCHEDULES: Registry[object] = Registry("schedule", "ltrank.schedules.v1")

REGISTRIES: dict[str, Registry] = {"losses": LOSSES, "backbones": BACKBONES, "schedules": SCHEDULES}


def _register_builtins() -> None:
    from ltrank import models
    from ltrank.losses import ap, ce
    from ltrank.losses import drolt, focal, ldam
    from ltrank.schedules import weighting

    models.register(BACKBONES)
    ce.register(LOSSES)
    focal.register(LOSSES)
    ldam.register(LOSSES)
    drolt.register(LOSSES)
    ap.register(LOSSES)
    weighting.register(SCHEDULES)


_register_builtins()
