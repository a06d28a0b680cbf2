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


# ---------------------------------------------------------------- any timm model works or is refused (issue 9, item 6)
TIMM_FAMILIES = [
    ("resnet10t", {}),
    ("mobilenetv3_small_050", {}),  # a 1x1 conv after pooling: pooled width 1024, num_features 288
    ("mobilenetv4_conv_small", {}),  # the same, 1280 vs 960
    ("efficientnet_lite0", {}),
    ("ghostnet_100", {}),
    ("convnext_atto", {}),
    ("regnetx_002", {}),
    ("hgnetv2_b0", {}),
    ("efficientvit_b0", {}),
    ("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 4}),
    ("deit_tiny_patch16_224", {"img_size": 32}),
    ("levit_128s", {"img_size": 32}),
    ("swin_tiny_patch4_window7_224", {"img_size": 32, "window_size": 4}),
]


@pytest.mark.parametrize("name,params", TIMM_FAMILIES, ids=[n for n, _ in TIMM_FAMILIES])
def test_timm_families_train_a_step_at_32x32_with_the_ltrank_head(name, params):
    from ltrank.models.probe import check_backbone_input

    torch.manual_seed(0)
    model = BACKBONES.build(f"timm/{name}", num_classes=10, **params)
    check_backbone_input(model, (3, 32, 32), 10, f"timm/{name}")
    logits, features = model(torch.randn(2, 3, 32, 32), return_features=True)
    assert logits.shape == (2, 10) and features.shape == (2, model.feature_dim) == (2, model.head.in_features)
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 7])).backward()
    assert model.head.weight.grad is not None and torch.isfinite(model.head.weight.grad).all()
    assert model.training  # the probe left the mode as it was


def test_timm_head_width_is_the_pooled_width_not_num_features():
    model = BACKBONES.build("timm/mobilenetv3_small_100", num_classes=10, head="cosine")
    assert model.encoder.num_features == 576 and model.feature_dim == 1024  # the '2x1024 and 576x10'
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("params,fragment", [
    ({"img_size": 32}, "model.params.img_size: timm/resnet18 does not accept img_size"),
    ({"window_size": 4}, "model.params.window_size: timm/resnet18 does not accept window_size"),
    ({"img_size": 0}, "img_size: Input should be greater than 0"),
])
def test_timm_size_params_a_model_does_not_take_are_one_line(params, fragment):
    with pytest.raises(LtrankError) as info:
        BACKBONES.build("timm/resnet18", num_classes=3, **params)
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name,img_size,message", [
    ("vit_tiny_patch16_224", None, "model.backbone: timm/vit_tiny_patch16_224 takes 224x224 images only, but the "
     "data's are 32x32; set [model.params] img_size = 32 (and a patch_size that divides it, e.g. 4), or use a "
     "model without a fixed input size"),
    ("swin_tiny_patch4_window7_224", 224, "model.backbone: timm/swin_tiny_patch4_window7_224 takes 224x224 images "
     "only, but the data's are 32x32; set [model.params] img_size = 32, or use a model without a fixed input size"),
    ("vit_tiny_patch16_224", 32, None),
    ("resnet18", None, None),  # not fixed-size: nothing to check here
])
def test_fixed_input_size_models_are_checked_without_building(name, img_size, message):
    from ltrank.models.timm_adapter import check_timm_input_size

    if message is None:
        check_timm_input_size(name, (32, 32), img_size)
        return
    with pytest.raises(LtrankError) as info:
        check_timm_input_size(name, (32, 32), img_size)
    assert str(info.value) == message


def test_a_model_that_cannot_take_the_images_is_refused_by_the_probe():
    from ltrank.models.probe import check_backbone_input

    model = BACKBONES.build("timm/efficientformer_l1", num_classes=4, img_size=32)  # accepted, but fails at 32x32
    with pytest.raises(LtrankError) as info:
        check_backbone_input(model, (3, 32, 32), 4, "timm/efficientformer_l1")
    message = str(info.value)
    assert message.startswith("model.backbone: timm/efficientformer_l1 cannot take 32x32 images (RuntimeError: ")
    assert message.endswith("img_size = 32), or resize the images") and "\n" not in message


def test_the_probe_checks_the_logits_shape():
    from ltrank.models.probe import check_backbone_input

    model = BACKBONES.build("resnet32", num_classes=10)
    check_backbone_input(model, (3, 32, 32), 10, "resnet32")
    with pytest.raises(LtrankError, match=r"returned logits of shape \[2, 10\] .* expected \[2, 7\]"):
        check_backbone_input(model, (3, 32, 32), 7, "resnet32")
