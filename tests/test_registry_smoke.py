"""Smoke tests generated from the registries: every loss, backbone family and weighting schedule
that is registered (built-in or installed plugin) is exercised here without being named, so a
new entry is tested for free (as timm's tests loop over ``list_models``).

The per-entry reference tests (loops in float64, closed forms) live in the suites of each entry;
these check the contract every entry must keep.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _tiny_recipe import tiny_recipe
from torch import nn

from ltrank.catalog import BACKBONES, LOSSES, SCHEDULES
from ltrank.engine.run import train_one
from ltrank.losses.base import EpochContext
from ltrank.models.classifier import Classifier
from ltrank.recipe import load_recipe
from ltrank.registry import NEEDS_CLASS_WEIGHTS, NEEDS_COSINE_HEAD, NEEDS_FEATURES, NEEDS_INIT_FROM, USES_CLASS_WEIGHTS

COUNTS = [40, 20, 9, 4]
ALL_LOSSES = LOSSES.names()
ALL_SCHEDULES = SCHEDULES.names()
#: One small model per backbone family: every concrete name, and one member of each namespace.
NAMESPACE_MEMBER = {"timm/*": "timm/resnet18"}
BACKBONE_FAMILIES = [NAMESPACE_MEMBER.get(n, n) for n in BACKBONES.names()]


def test_the_registries_list_every_builtin():
    assert {"ap", "ap_cb_delta", "ap_cb_primary", "ce", "focal", "cb_focal", "ldam", "drolt"} <= set(ALL_LOSSES)
    assert {"none", "fixed", "progressive", "drw"} <= set(ALL_SCHEDULES)
    assert set(NAMESPACE_MEMBER) <= set(BACKBONES.names()), "a namespace without a smoke member"


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(6, 5)
        self.head = nn.Linear(5, len(COUNTS))

    def forward(self, x, return_features=False):
        f = self.encoder(x)
        return (self.head(f), f) if return_features else self.head(f)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_every_loss_builds_documents_itself_and_gives_a_finite_scalar_with_gradients(name):
    spec = LOSSES.get(name)
    assert spec.description.strip(), f"{name}: no description"
    for field_name, field in spec.params.model_fields.items():
        assert field.description, f"{name}.{field_name} has no description"
    loss = LOSSES.build(name, class_counts=COUNTS)
    assert isinstance(loss, nn.Module)
    g = torch.Generator().manual_seed(0)
    model = _Model()
    x = torch.randn(10, 6, generator=g)
    y = torch.tensor([0, 0, 1, 2, 0, 3, 1, 0, 0, 2])
    if hasattr(loss, "epoch_start"):
        loss.epoch_start(EpochContext(1, 4, schedule=SCHEDULES.build("fixed"), model=model,
                                      feature_batches=lambda: [(x, y)]))
    logits, features = model(x, return_features=True)
    if spec.has(NEEDS_COSINE_HEAD):
        logits = torch.tanh(logits)
    value = loss(logits, y, features=features) if spec.has(NEEDS_FEATURES) else loss(logits, y)
    assert isinstance(value, torch.Tensor) and value.ndim == 0 and value.is_floating_point()
    assert torch.isfinite(value)
    value.backward()
    assert model.encoder.weight.grad is not None and torch.isfinite(model.encoder.weight.grad).all()
    assert model.encoder.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_every_loss_survives_a_class_absent_from_the_batch_and_a_one_class_batch(name):
    spec = LOSSES.get(name)
    loss = LOSSES.build(name, class_counts=COUNTS)
    model = _Model()
    x = torch.randn(6, 6, generator=torch.Generator().manual_seed(1))
    for y in (torch.tensor([0, 1, 0, 1, 0, 1]), torch.zeros(6, dtype=torch.long)):
        if hasattr(loss, "epoch_start"):
            loss.epoch_start(EpochContext(1, 1, model=model, feature_batches=lambda: [(x, y)]))
        logits, features = model(x, return_features=True)
        if spec.has(NEEDS_COSINE_HEAD):
            logits = torch.tanh(logits)
        value = loss(logits, y, features=features) if spec.has(NEEDS_FEATURES) else loss(logits, y)
        assert torch.isfinite(value), (name, y.tolist())


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_every_loss_trains_one_tiny_epoch_through_the_trainer(tmp_path: Path, name):
    spec = LOSSES.get(name)
    extra = []
    if spec.has(NEEDS_COSINE_HEAD):
        extra.append('[model.params]\nhead = "cosine"')
    if spec.has(NEEDS_CLASS_WEIGHTS):
        extra.append('[schedule]\nname = "fixed"')
    train = None
    if spec.has(NEEDS_INIT_FROM):
        out = tmp_path / "runs"
        train_one(load_recipe(str(tiny_recipe(tmp_path, epochs=1))), seed=0, out=out, device=torch.device("cpu"))
        train = ('[train]\nbatch_size = 8\ninit_from = "recipe:tiny-ce"\n'
                 '[[train.stages]]\nepochs = 1\nlr = 0.01\nweight_decay = 1e-4\n')
    recipe = load_recipe(str(tiny_recipe(tmp_path, f"tiny-{name}", f'name = "{name}"', epochs=1,
                                         extra="\n".join(extra), train=train)))
    record = train_one(recipe, seed=0, out=tmp_path / "runs", device=torch.device("cpu"))
    assert record.status == "finished" and record.final is not None and len(record.final.per_class) == 4


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_every_schedule_gives_one_finite_nonnegative_weight_per_class_each_epoch(name):
    schedule = SCHEDULES.build(name)
    target = torch.tensor([0.5, 0.8, 1.2, 1.5])
    for epoch in (1, 2, 5, 10):
        weights = torch.as_tensor(schedule.weights(epoch, 10, target))
        assert weights.shape == target.shape, name
        assert torch.isfinite(weights).all() and (weights >= 0).all(), (name, epoch)


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_every_schedule_drives_a_class_weighted_loss_through_its_epoch_hook(name):
    loss = LOSSES.build("ce", class_counts=COUNTS, weighted=True)
    loss.epoch_start(EpochContext(3, 10, schedule=SCHEDULES.build(name)))
    assert torch.equal(loss.class_weights, torch.as_tensor(SCHEDULES.build(name).weights(3, 10, loss.target_weights)))


@pytest.mark.parametrize("name", BACKBONE_FAMILIES)
@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_every_backbone_family_builds_a_classifier_with_both_heads(name, head):
    model = BACKBONES.build(name, num_classes=5, head=head)
    assert isinstance(model, Classifier)
    x = torch.randn(2, 3, 32, 32)
    logits, features = model(x, return_features=True)
    assert logits.shape == (2, 5) and features.shape == (2, model.feature_dim)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.head.parameters())


def test_capability_flags_are_consistent_across_the_registry():
    for name in ALL_LOSSES:
        spec = LOSSES.get(name)
        if spec.has(NEEDS_CLASS_WEIGHTS):
            assert spec.has(USES_CLASS_WEIGHTS), name
        if spec.has(USES_CLASS_WEIGHTS):
            assert hasattr(LOSSES.build(name, class_counts=COUNTS), "epoch_start"), \
                f"{name} takes class weights but has no epoch hook to receive them"
