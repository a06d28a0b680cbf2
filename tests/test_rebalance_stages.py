"""cRT and LWS (ltrank.rebalance): what trains, what stays bit-identical, how the head is re-drawn."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ltrank.data.batches import train_transform
from ltrank.data.samplers import class_aware_indices
from ltrank.errors import LtrankError
from ltrank.losses.base import EpochContext
from ltrank.models import CifarResNetEncoder, CosineHead, resnet32
from ltrank.models.classifier import Classifier
from ltrank.models.timm_adapter import build_timm
from ltrank.rebalance import (
    LearnableWeightScaling,
    prepare_crt,
    prepare_lws,
    reinit_head,
)
from ltrank.registry import (
    NEEDS_COSINE_HEAD,
    NEEDS_FEATURES,
)
from ltrank.schedules import Fixed

C = 4
COUNTS = [24, 12, 6, 3]


def _data(seed: int = 0, size: int = 16):
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(COUNTS)])
    images = torch.randint(0, 256, (len(labels), 3, size, size), dtype=torch.uint8, generator=g)
    return images, labels


def _trained_model(head: str = "linear", seed: int = 0) -> Classifier:
    """A ResNet-32 in train mode whose BatchNorm statistics are not the defaults (as after stage 1)."""
    torch.manual_seed(seed)
    model = resnet32(C, head=head).train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(1000)
    return model


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_identical(before: dict[str, torch.Tensor], module: nn.Module, prefix: str = "") -> None:
    after = module.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), f"{prefix}{key} changed"


def _run_steps(plan, loss: nn.Module, steps: int = 3, *, features: bool = False, seed: int = 0) -> list[float]:
    """SGD steps as the trainer takes them: train_mode each epoch, class-aware batches, augmentation."""
    images, labels = _data(seed)
    params = plan.trainable + [p for p in loss.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5, momentum=0.9, nesterov=True, weight_decay=5e-4)
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(steps):
        plan.train_mode()
        idx = class_aware_indices(labels, 8, generator=g)
        x, y = train_transform(images[idx], g), labels[idx]
        if features:
            logits, feats = plan.model(x, return_features=True)
            value = loss(logits, y, features=feats)
        else:
            value = loss(plan.model(x), y)
        opt.zero_grad()
        value.backward()
        opt.step()
        values.append(value.item())
    return values


# ----------------------------------------------------------------------------------- cRT
@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_crt_trains_only_a_reinitialised_head_and_the_encoder_stays_bit_identical(head):
    model = _trained_model(head)
    encoder_before, head_before = _snapshot(model.encoder), _snapshot(model.head)
    plan = prepare_crt(model, "resnet32")
    assert plan.method == "crt" and plan.sampler == "class_aware" and plan.frozen == [model.encoder]
    assert not model.encoder.training  # frozen parts are in eval mode from the start
    assert {id(p) for p in plan.trainable} == {id(p) for p in model.head.parameters()}
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    _assert_identical(encoder_before, model.encoder)  # re-initialising touched only the head
    reinit_state = _snapshot(model.head)
    for key, value in head_before.items():
        assert not torch.equal(reinit_state[key], value), f"head {key} was not re-initialised"

    _run_steps(plan, nn.CrossEntropyLoss())
    _assert_identical(encoder_before, model.encoder, "encoder.")  # parameters AND BatchNorm buffers
    assert not torch.equal(model.head.weight, reinit_state["weight"])  # the head did train


def test_without_train_mode_the_frozen_encoders_batchnorm_statistics_would_move():
    """The control for the test above: model.train() alone updates running statistics."""
    model = _trained_model()
    plan = prepare_crt(model, "resnet32")
    before = _snapshot(model.encoder)
    plan.model.train()  # NOT plan.train_mode()
    images, _ = _data()
    with torch.no_grad():
        model(train_transform(images[:8], torch.Generator().manual_seed(0)))
    assert not torch.equal(model.encoder.bn1.running_mean, before["bn1.running_mean"])


def test_crt_head_is_drawn_exactly_as_resnet32_draws_a_new_one():
    for head_kind in ("linear", "cosine"):
        torch.manual_seed(7)
        reference = resnet32(C, head=head_kind)
        head = nn.Linear(64, C) if head_kind == "linear" else CosineHead(64, C)  # arbitrary values
        torch.manual_seed(7)
        CifarResNetEncoder(blocks_per_stage=5)  # the encoder's draws come first in resnet32()
        reinit_head(head, "resnet32")
        for key, value in reference.head.state_dict().items():
            assert torch.equal(head.state_dict()[key], value), (head_kind, key)


def test_crt_head_is_drawn_exactly_as_a_timm_backbone_draws_a_new_one():
    import timm

    torch.manual_seed(3)
    reference = build_timm(C, "resnet18")
    head = nn.Linear(512, C)
    torch.manual_seed(3)
    timm.create_model("resnet18", pretrained=False, num_classes=0, drop_rate=0.0)
    reinit_head(head, "timm/resnet18")
    assert torch.equal(head.weight, reference.head.weight) and torch.equal(head.bias, reference.head.bias)


def test_crt_refuses_a_head_it_cannot_reinitialise():
    model = Classifier(nn.Flatten(), nn.Sequential(nn.Linear(3, C)), 3)
    with pytest.raises(LtrankError, match="linear or cosine head") as err:
        prepare_crt(model, "resnet32")
    assert "\n" not in str(err.value)
    with pytest.raises(LtrankError, match="needs an ltrank Classifier"):
        prepare_crt(nn.Linear(3, 4), "resnet32")


# ----------------------------------------------------------------------------------- LWS
@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_lws_starts_as_the_trained_model_and_trains_only_the_scales(head):
    model = _trained_model(head)
    images, _ = _data()
    x = train_transform(images[:6], torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        logits_before = model(x)
    before = _snapshot(model)
    model.train()
    plan = prepare_lws(model)
    assert isinstance(model.head, LearnableWeightScaling) and plan.sampler == "class_aware"
    assert plan.frozen == [model.encoder, model.head.head] and not any(m.training for m in plan.frozen)
    assert [id(p) for p in plan.trainable] == [id(model.head.scales)]
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.scales"]
    assert torch.equal(model.head.scales, torch.ones(C))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), logits_before)  # scales of 1 change nothing

    _run_steps(plan, nn.CrossEntropyLoss())
    after = model.state_dict()
    for key, value in before.items():
        wrapped = key.replace("head.", "head.head.", 1) if key.startswith("head.") else key
        assert torch.equal(after[wrapped], value), f"{key} changed"
    assert not torch.equal(model.head.scales, torch.ones(C))


def test_lws_scales_multiply_each_class_logit():
    head = nn.Linear(5, 3)
    lws = LearnableWeightScaling(head, 3)
    with torch.no_grad():
        lws.scales.copy_(torch.tensor([2.0, 0.5, -1.0]))
    f = torch.randn(4, 5)
    expected = torch.stack([(f @ head.weight[c] + head.bias[c]) * s for c, s in enumerate([2.0, 0.5, -1.0])], 1)
    assert torch.allclose(lws(f), expected, atol=1e-6)


# ----------------------------------------------------------------------------------- any loss, any backbone
def _loss_names() -> list[str]:
    from ltrank.catalog import LOSSES

    return LOSSES.names()


@pytest.mark.parametrize("method", ["crt", "lws"])
@pytest.mark.parametrize("loss_name", _loss_names())
def test_every_registered_loss_trains_the_stage_and_leaves_the_frozen_parts_alone(method, loss_name):
    from ltrank.catalog import LOSSES

    spec = LOSSES.get(loss_name)
    model = _trained_model("cosine" if spec.has(NEEDS_COSINE_HEAD) else "linear")
    encoder_before = _snapshot(model.encoder)
    plan = prepare_crt(model, "resnet32") if method == "crt" else prepare_lws(model)
    trainable_before = [p.detach().clone() for p in plan.trainable]
    loss = LOSSES.build(loss_name, class_counts=COUNTS)
    if hasattr(loss, "epoch_start"):  # the one epoch hook: class weights from the schedule, DRO-LT centroids
        images, labels = _data()

        def batches():
            return [(images[:20].float() / 255, labels[:20]), (images[20:].float() / 255, labels[20:])]

        loss.epoch_start(EpochContext(1, 1, schedule=Fixed(), model=model, feature_batches=batches))
    values = _run_steps(plan, loss, steps=4, features=spec.has(NEEDS_FEATURES))
    assert all(torch.isfinite(torch.tensor(values)))
    _assert_identical(encoder_before, model.encoder, "encoder.")
    assert any(not torch.equal(p, b) for p, b in zip(plan.trainable, trainable_before)), f"{loss_name}: nothing trained"


@pytest.mark.parametrize("method", ["crt", "lws"])
def test_a_timm_backbone_keeps_its_batchnorm_statistics_too(method):
    torch.manual_seed(0)
    model = build_timm(C, "resnet18")
    before = _snapshot(model.encoder)
    plan = prepare_crt(model, "timm/resnet18") if method == "crt" else prepare_lws(model)
    _run_steps(plan, nn.CrossEntropyLoss(), steps=2)
    assert any(k.endswith("running_mean") for k in before)
    _assert_identical(before, model.encoder, "encoder.")
