"""Backbones: ResNet-32 shape and size, heads, the timm adapter."""

from __future__ import annotations

import pytest
import torch

from ltrank.errors import LtrankError
from ltrank.models import Classifier, CosineHead
from ltrank.models.resnet_cifar import BasicBlock, _ShortcutA
from ltrank.catalog import BACKBONES


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet32_structure_and_parameter_count():
    model = BACKBONES.build("resnet32", num_classes=10)
    assert isinstance(model, Classifier)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 15  # 3 stages x 5 blocks: 1 + 15*2 + 1 = 32 weighted layers
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 31
    assert sum(isinstance(m, _ShortcutA) for m in model.modules()) == 2  # option A: parameter-free
    # closed form: convs + BN affine + linear head 64*10+10
    widths = [16] * 11 + [32] * 10 + [64] * 10
    conv_params = 3 * 16 * 9
    in_c = 16
    for w in widths[1:]:
        conv_params += in_c * w * 9
        in_c = w
    bn_params = 2 * sum(widths)
    assert _count(model) == conv_params + bn_params + 64 * 10 + 10
    assert 0.45e6 < _count(model) < 0.47e6


def test_resnet32_shapes_and_features():
    model = BACKBONES.build("resnet32", num_classes=100).eval()
    x = torch.randn(3, 3, 32, 32)
    logits, features = model(x, return_features=True)
    assert logits.shape == (3, 100) and features.shape == (3, 64)
    assert torch.allclose(model.head(features), logits, atol=1e-6)
    assert torch.allclose(model(x), logits)


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.randn(2, 16, 8, 8)
    out = _ShortcutA(16, 32)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, :8]) == 0 and torch.count_nonzero(out[:, 24:]) == 0


def test_cosine_head_gives_cosines():
    model = BACKBONES.build("resnet32", num_classes=10, head="cosine")
    assert isinstance(model.head, CosineHead) and not hasattr(model.head, "bias")
    logits = model(torch.randn(4, 3, 32, 32))
    assert logits.abs().max() <= 1 + 1e-5
    f = torch.randn(2, 64)
    expected = torch.nn.functional.cosine_similarity(f[:, None, :], model.head.weight[None], dim=2)
    assert torch.allclose(model.head(f), expected, atol=1e-6)


def test_bad_head_is_a_validation_error():
    with pytest.raises(LtrankError, match="head"):
        BACKBONES.build("resnet32", num_classes=10, head="mlp")


def test_timm_adapter_builds_with_classes_and_features():
    model = BACKBONES.build("timm/resnet18", num_classes=7)
    logits, features = model(torch.randn(2, 3, 32, 32), return_features=True)
    assert logits.shape == (2, 7) and features.shape == (2, model.feature_dim) and model.feature_dim == 512
    cosine = BACKBONES.build("timm/resnet18", num_classes=7, head="cosine")
    assert isinstance(cosine.head, CosineHead)


def test_timm_unknown_model_suggests():
    with pytest.raises(LtrankError, match="did you mean 'resnet18'"):
        BACKBONES.build("timm/resnet181", num_classes=3)


def test_timm_pretrained_offline_is_a_clear_error(monkeypatch):
    from ltrank.models import timm_adapter

    monkeypatch.setattr(timm_adapter, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-ltrank-test-cache")
    with pytest.raises(LtrankError, match="pretrained weights for timm/resnet18.*pretrained = false"):
        BACKBONES.build("timm/resnet18", num_classes=3, pretrained=True)
