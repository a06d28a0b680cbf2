"""Every baseline builds from the registry with its defaults, runs forward and backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ltrank.losses.base import EpochContext
from ltrank.catalog import LOSSES
from ltrank.registry import (
    NEEDS_CLASS_WEIGHTS,
    NEEDS_COSINE_HEAD,
    NEEDS_FEATURES,
    NEEDS_INIT_FROM,
    USES_CLASS_WEIGHTS,
)
from ltrank.schedules import Fixed

BASELINES = ["ce", "focal", "cb_focal", "ldam", "drolt"]
COUNTS = [50, 20, 8, 3, 1]


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(6, 4)
        self.head = nn.Linear(4, len(COUNTS))

    def forward(self, x, return_features=False):
        f = self.encoder(x)
        return (self.head(f), f) if return_features else self.head(f)


@pytest.mark.parametrize("name", BASELINES)
def test_build_with_defaults_forward_backward(name):
    spec = LOSSES.get(name)
    assert spec.description and spec.paper
    for field_name, field in spec.params.model_fields.items():
        assert field.description, f"{name}.{field_name} has no description"
    loss = LOSSES.build(name, class_counts=COUNTS)
    g = torch.Generator().manual_seed(0)
    model = _Model()
    images = torch.randn(12, 6, generator=g)
    targets = torch.tensor([0, 0, 1, 2, 0, 3, 4, 1, 0, 0, 2, 1])
    if hasattr(loss, "epoch_start"):  # the one per-epoch hook; a class-weighted loss takes the fixed weights
        loss.epoch_start(EpochContext(1, 1, schedule=Fixed(), model=model,
                                      feature_batches=lambda: [(images, targets)]))
    logits, features = model(images, return_features=True)
    if spec.has(NEEDS_COSINE_HEAD):
        logits = torch.tanh(logits)  # stands in for cosine similarities in [-1, 1]
    value = loss(logits, targets, features=features) if spec.has(NEEDS_FEATURES) else loss(logits, targets)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    grads = [p.grad for p in list(model.parameters()) + list(loss.parameters())]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert model.encoder.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", BASELINES)
def test_unknown_param_is_rejected(name):
    from ltrank.errors import LtrankError

    with pytest.raises(LtrankError, match="unknown key"):
        LOSSES.build(name, class_counts=COUNTS, not_a_param=1)


def test_capabilities_are_declared():
    assert LOSSES.get("ldam").capabilities == {NEEDS_COSINE_HEAD, USES_CLASS_WEIGHTS}
    assert LOSSES.get("drolt").capabilities == {NEEDS_FEATURES, NEEDS_INIT_FROM}
    assert LOSSES.get("cb_focal").capabilities == {USES_CLASS_WEIGHTS, NEEDS_CLASS_WEIGHTS}
    assert LOSSES.get("focal").capabilities == frozenset()


@pytest.mark.parametrize("name", BASELINES)
def test_show_loss_documents_each_parameter_with_paper_and_default(name):
    from typer.testing import CliRunner

    from ltrank.cli.app import app

    result = CliRunner().invoke(app, ["show", "loss", name], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"paper: {LOSSES.get(name).paper}" in result.output
    lines = result.output.splitlines()  # `name: type = default (constraints)`, then the description
    rows = {line.split(":")[0].strip(): line + lines[i + 1] for i, line in enumerate(lines)
            if line.startswith("  ") and not line.startswith("      ")}
    for field_name, field in LOSSES.get(name).params.model_fields.items():
        default = repr(field.default) if isinstance(field.default, str) else str(field.default)
        assert field_name in rows, f"{name}.{field_name} not shown"
        assert default in rows[field_name] and field.description[:40] in rows[field_name]


def test_shipped_baseline_recipes_use_the_method_md_settings():
    """CB Focal: Bag of Tricks' per-dataset beta/gamma with the 'fixed' schedule; LDAM-DRW: drw,
    beta 0.9999 and the cosine head; DRO-LT: 80 + 20 epochs, lr 0.005 / 0.01, wd 1e-4, class-aware
    classifier stage (docs/method.md section 6)."""
    from ltrank.losses import CB_FOCAL_CONFIGS
    from ltrank.recipe import load_recipe

    expected_cb = {  # docs/method.md section 6, written out independently of CB_FOCAL_CONFIGS
        "cifar10-ir100": (0.9999, 1.0), "cifar100-ir100": (0.9, 1.0),
        "cifar10-ir50": (0.9999, 2.0), "cifar100-ir50": (0.99, 1.0),
    }
    assert {k: (v["beta"], v["gamma"]) for k, v in CB_FOCAL_CONFIGS.items()} == expected_cb
    for key, (beta, gamma) in expected_cb.items():
        r = load_recipe(f"{key}-cbfocal").recipe
        assert (r.loss.name, r.schedule.name) == ("cb_focal", "fixed")
        assert (r.loss.params["beta"], r.loss.params["gamma"]) == (beta, gamma)
        ldam = load_recipe(f"{key}-ldam-drw").recipe
        assert (ldam.loss.name, ldam.schedule.name, ldam.model.params["head"]) == ("ldam", "drw", "cosine")
        assert ldam.loss.params["beta"] == 0.9999 and ldam.loss.params["max_m"] == 0.5 and ldam.loss.params["s"] == 30.0
        dro = load_recipe(f"{key}-drolt").recipe
        feat, cls = dro.train.stages
        assert (feat.epochs, feat.lr, feat.weight_decay, feat.trainable, feat.sampler) == (80, 0.005, 1e-4, "encoder", "shuffle")
        assert (cls.epochs, cls.lr, cls.weight_decay, cls.trainable, cls.sampler) == (20, 0.01, 1e-4, "head", "class_aware")
        assert dro.loss.name == "drolt" and cls.loss.name == "ce"
