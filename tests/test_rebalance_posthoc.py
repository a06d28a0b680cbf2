"""Post-hoc re-balancing (ltrank.rebalance): tau-norm, tau selection, NCM, logit adjustment, specs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ltrank.data.batches import normalize
from ltrank.engine.device import to_model_layout
from ltrank.errors import LtrankError
from ltrank.models import resnet32
from ltrank.models.classifier import Classifier
from ltrank.rebalance import (
    TAU_GRID,
    LogitAdjusted,
    NCMHead,
    PosthocSpec,
    Split,
    adjust_logits,
    build_posthoc,
    class_means,
    class_prior,
    cosine_stage_lr,
    extract_features,
    ncm_logits,
    parse_posthoc,
    select_tau,
    tau_normalize,
    tau_normalized_head,
)

CPU = torch.device("cpu")


class ChannelMeans(nn.Module):
    """A toy encoder: the per-channel mean of the normalised image, features [B, 3]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _toy_classifier(weight, bias) -> Classifier:
    head = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        head.weight.copy_(torch.tensor(weight))
        head.bias.copy_(torch.tensor(bias))
    return Classifier(ChannelMeans(), head, len(weight[0]))


def _images(n: int, seed: int, size: int = 4) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------- tau-norm
def test_tau_normalize_matches_a_hand_computation():
    w = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 1.0]])
    assert torch.equal(tau_normalize(w, 0.0), w)
    expected_1 = [[0.6, 0.8], [0.0, 1.0], [1 / math.sqrt(2), 1 / math.sqrt(2)]]
    assert torch.allclose(tau_normalize(w, 1.0), torch.tensor(expected_1), atol=1e-7)
    expected_half = [[3 / 5**0.5, 4 / 5**0.5], [0.0, 2 / 2**0.5], [1 / 2**0.25, 1 / 2**0.25]]
    assert torch.allclose(tau_normalize(w, 0.5), torch.tensor(expected_half), atol=1e-6)
    assert torch.equal(tau_normalize(torch.zeros(2, 3), 1.0), torch.zeros(2, 3))  # a zero vector stays zero


def test_tau_zero_leaves_the_model_unchanged_and_tau_one_matches_a_hand_computation():
    torch.manual_seed(0)
    model = resnet32(5).eval()
    x = normalize(_images(6, 0, 16))
    with torch.no_grad():
        logits, feats = model(x, return_features=True)
        zero = Classifier(model.encoder, tau_normalized_head(model.head, 0.0), 64)(x)
        one = Classifier(model.encoder, tau_normalized_head(model.head, 1.0), 64)(x)
    assert torch.equal(zero, logits)
    w, b, f = (t.detach().double() for t in (model.head.weight, model.head.bias, feats))
    for i in range(6):
        for c in range(5):
            norm = math.sqrt(sum(float(v) ** 2 for v in w[c]))
            hand = sum(float(f[i, d]) * float(w[c, d]) / norm for d in range(64)) + float(b[c])
            assert abs(float(one[i, c]) - hand) < 1e-4
    assert all(not p.requires_grad for p in tau_normalized_head(model.head, 1.0).parameters())
    assert model.head.weight.requires_grad  # the trained model is not modified


def test_tau_norm_on_a_cosine_head_is_refused_with_the_reason():
    model = resnet32(5, head="cosine")
    for call in (lambda: tau_normalized_head(model.head, 1.0),
                 lambda: build_posthoc(PosthocSpec("tau-norm", 1.0), model, class_counts=[5] * 5, device=CPU)):
        with pytest.raises(LtrankError, match="cosine head") as err:
            call()
        assert "\n" not in str(err.value) and "logit-adjust" in str(err.value)


# Toy geometry for tau selection: w0 = (3, 0) (a head class, large norm), w1 = (0, 1), no bias.
# A feature (a, b) with a > 0 is called class 1 iff b > a * 3 ** (1 - tau), so a class-1 point
# with b / a = 3 ** k is right iff tau > 1 - k, a class-0 point with b / a = 3 ** k iff tau < 1 - k.
W, B = [[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [0.0, 0.0]


def _point(k: float) -> list[float]:
    return [1.0, 3.0**k, 0.0]


def _reference_scores(features, labels, grid):
    scores = {}
    for tau in grid:
        per_class = {0: [0, 0], 1: [0, 0]}
        for f, y in zip(features, labels):
            logits = [sum(fd * wd for fd, wd in zip(f, w)) / math.sqrt(sum(v * v for v in w)) ** tau for w in W]
            per_class[y][0] += int(max(range(2), key=lambda c: logits[c]) == y)
            per_class[y][1] += 1
        scores[tau] = sum(ok / n for ok, n in per_class.values()) / 2
    return scores


def test_tau_selection_picks_the_best_on_validation_not_on_test():
    head = _toy_classifier(W, B).head
    val_x, val_y = [_point(0.45), _point(-0.27)], [1, 0]  # right for tau in [0.6, 1.2]
    test_x, test_y = [_point(-0.55), _point(-0.97)], [1, 0]  # right for tau in [1.6, 1.9]
    ref_val, ref_test = _reference_scores(val_x, val_y, TAU_GRID), _reference_scores(test_x, test_y, TAU_GRID)
    best_val = next(t for t in TAU_GRID if ref_val[t] == max(ref_val.values()))
    best_test = next(t for t in TAU_GRID if ref_test[t] == max(ref_test.values()))
    assert (best_val, best_test) == (0.6, 1.6)  # the toy is built so that they differ

    picked = select_tau(head, torch.tensor(val_x), torch.tensor(val_y), 2)
    assert picked.tau == best_val
    assert picked.scores == pytest.approx(ref_val)
    assert select_tau(head, torch.tensor(test_x), torch.tensor(test_y), 2).tau == best_test  # the control


def test_tau_auto_through_build_posthoc_uses_the_validation_split():
    torch.manual_seed(0)
    model = _toy_classifier(torch.randn(4, 3).mul(torch.tensor([[4.0], [2.0], [1.0], [0.5]])).tolist(), [0.0] * 4)
    validation = Split(_images(40, 1), torch.arange(40) % 4)
    result = build_posthoc(PosthocSpec("tau-norm", None), model, class_counts=[40, 20, 10, 5], device=CPU,
                           validation=validation)
    feats, labels = extract_features(model, validation.images, validation.labels, CPU)
    expected = select_tau(model.head, feats, labels, 4)
    assert result.tau == expected.tau and result.tau_scores == expected.scores
    assert result.label == f"tau-norm (tau {expected.tau!r}, auto on validation)"
    x = normalize(_images(5, 2))
    with torch.no_grad():
        assert torch.equal(result.model(x), Classifier(model.encoder, tau_normalized_head(model.head, expected.tau), 3)(x))


def test_tau_auto_without_a_validation_split_asks_for_tau():
    model = _toy_classifier(W, B)
    with pytest.raises(LtrankError, match=r"no(ne)?.*give tau, e.g. --posthoc tau-norm=1.0") as err:
        build_posthoc(PosthocSpec("tau-norm", None), model, class_counts=[5, 5], device=CPU, validation=None)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------- logit adjustment
def test_logit_adjustment_with_a_uniform_prior_changes_no_prediction_or_probability():
    logits = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    adjusted = adjust_logits(logits, class_prior([30] * 5), tau=1.0)
    assert torch.equal(adjusted.argmax(1), logits.argmax(1))
    assert torch.allclose(adjusted.softmax(1), logits.softmax(1), atol=1e-6)
    assert torch.allclose(adjusted - logits, torch.full_like(logits, math.log(5)), atol=1e-6)  # a constant shift


def test_logit_adjustment_matches_a_hand_computation():
    counts = [60, 30, 10]
    prior = class_prior(counts)
    assert prior.tolist() == pytest.approx([0.6, 0.3, 0.1])
    logits = torch.tensor([[2.0, 1.5, 0.2], [0.1, 0.0, -0.5]])
    tau = 0.7
    hand = [[z - tau * math.log(p) for z, p in zip(row, [0.6, 0.3, 0.1])] for row in logits.tolist()]
    assert torch.allclose(adjust_logits(logits, prior, tau), torch.tensor(hand), atol=1e-6)
    assert adjust_logits(logits, prior, 0.0).equal(logits)
    assert adjust_logits(logits, prior, 1.0).argmax(1).tolist() == [1, 2]  # the prior flips both


def test_logit_adjusted_model_scales_then_subtracts_the_log_prior():
    torch.manual_seed(0)
    model = resnet32(3, head="cosine").eval()
    x = normalize(_images(4, 3, 16))
    prior = class_prior([50, 10, 2])
    wrapped = LogitAdjusted(model, prior, tau=1.0, logit_scale=30.0)
    with torch.no_grad():
        expected = 30.0 * model(x) - prior.log().float()
        assert torch.allclose(wrapped(x), expected, atol=1e-5)
    result = build_posthoc(parse_posthoc("logit-adjust=1"), model, class_counts=[50, 10, 2], device=CPU, logit_scale=30.0)
    assert result.label == "logit-adjust (tau 1.0)" and result.tau == 1.0
    with torch.no_grad():
        assert torch.allclose(result.model(x), expected, atol=1e-5)


def test_a_class_without_training_images_has_no_prior():
    with pytest.raises(LtrankError, match="class 2 has no training images") as err:
        class_prior([5, 3, 0])
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------- NCM
def test_ncm_matches_a_hand_computation_on_toy_features():
    feats = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0], [0.0, -1.0], [-1.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    # class 0: mean of (0.6, 0.8) and (1, 0) = (0.8, 0.4); class 1: mean of (0, 1), (0, -1), (-1/r2, 1/r2)
    r2 = math.sqrt(2)
    hand_means = [[0.8, 0.4], [-1 / r2 / 3, 1 / r2 / 3]]
    means = class_means(feats, labels, 2)
    assert torch.allclose(means, torch.tensor(hand_means), atol=1e-6)
    queries = [[1.0, 1.0], [-2.0, 0.5], [0.0, -3.0]]
    hand = [[(q[0] * m[0] + q[1] * m[1]) / math.hypot(*q) / math.hypot(*m) for m in hand_means] for q in queries]
    assert torch.allclose(ncm_logits(torch.tensor(queries), means), torch.tensor(hand), atol=1e-6)
    assert torch.allclose(NCMHead(means)(torch.tensor(queries)), torch.tensor(hand), atol=1e-6)
    assert ncm_logits(torch.tensor(queries), means).argmax(1).tolist() == [0, 1, 0]


def test_ncm_through_build_posthoc_uses_the_training_features():
    torch.manual_seed(0)
    model = resnet32(3)
    train = Split(_images(12, 4, 16), torch.tensor([0] * 6 + [1] * 4 + [2] * 2))
    result = build_posthoc(parse_posthoc("ncm"), model, class_counts=[6, 4, 2], device=CPU, train=train)
    assert result.label == "NCM" and result.tau is None
    model.eval()
    x = normalize(_images(3, 5, 16))
    with torch.no_grad():
        train_feats = model.encoder(normalize(train.images))
        expected = ncm_logits(model.encoder(x), class_means(train_feats, train.labels, 3))
        assert torch.allclose(result.model(x), expected, atol=1e-5)


def test_ncm_needs_every_class_and_the_training_split():
    with pytest.raises(LtrankError, match="class 1 has none"):
        class_means(torch.randn(3, 2), torch.tensor([0, 0, 2]), 3)
    with pytest.raises(LtrankError, match="ncm needs the training split"):
        build_posthoc(parse_posthoc("ncm"), resnet32(2), class_counts=[2, 2], device=CPU)


def test_extract_features_uses_the_test_transform_in_eval_mode_and_restores_the_mode():
    torch.manual_seed(0)
    model = resnet32(3).train()
    images, labels = _images(5, 6, 16), torch.tensor([0, 1, 2, 0, 1])
    feats, ys = extract_features(model, images, labels, CPU, batch_size=2)
    assert model.training and model.encoder.training
    model.eval()
    with torch.no_grad():
        assert torch.allclose(feats, model.encoder(to_model_layout(normalize(images))), rtol=1e-5, atol=1e-5)
    assert torch.equal(ys, labels)


# ----------------------------------------------------------------------------------- specs
@pytest.mark.parametrize("text, kind, tau, label", [
    ("tau-norm=1.0", "tau-norm", 1.0, "tau-norm (tau 1.0)"),
    ("tau-norm=0", "tau-norm", 0.0, "tau-norm (tau 0.0)"),
    (" tau-norm = 0.25 ", "tau-norm", 0.25, "tau-norm (tau 0.25)"),
    ("tau-norm=auto", "tau-norm", None, "tau-norm (tau auto)"),
    ("tau-norm=AUTO", "tau-norm", None, "tau-norm (tau auto)"),
    ("logit-adjust=1", "logit-adjust", 1.0, "logit-adjust (tau 1.0)"),
    ("logit-adjust=1.5", "logit-adjust", 1.5, "logit-adjust (tau 1.5)"),
    ("ncm", "ncm", None, "NCM"),
    ("NCM", "ncm", None, "NCM"),
])
def test_posthoc_specs_parse(text, kind, tau, label):
    spec = parse_posthoc(text)
    assert (spec.kind, spec.tau, spec.label) == (kind, tau, label)


@pytest.mark.parametrize("text, fragment", [
    ("tau-norm", "tau-norm needs a tau"),
    ("tau-norm=", "tau-norm needs a tau"),
    ("tau-norm=abc", "finite number >= 0 or 'auto'"),
    ("tau-norm=-0.5", "finite number >= 0"),
    ("tau-norm=nan", "finite number >= 0"),
    ("logit-adjust=inf", "finite number >= 0"),
    ("logit-adjust=auto", "finite number >= 0, got 'auto'"),
    ("ncm=1", "ncm takes no value"),
    ("taunorm=1", "did you mean 'tau-norm'"),
    ("cRT", "unknown adjustment"),
    ("", "unknown adjustment"),
])
def test_bad_posthoc_specs_are_one_line_errors_listing_the_forms(text, fragment):
    with pytest.raises(LtrankError) as err:
        parse_posthoc(text)
    message = str(err.value)
    assert fragment in message and "\n" not in message
    assert "tau-norm=TAU, tau-norm=auto, logit-adjust=TAU or ncm" in message


# ----------------------------------------------------------------------------------- stage lr
def test_cosine_stage_lr_matches_hand_values():
    assert cosine_stage_lr(1, 10, 0.2) == pytest.approx(0.2)
    assert cosine_stage_lr(6, 10, 0.2) == pytest.approx(0.1)
    assert cosine_stage_lr(10, 10, 0.2) == pytest.approx(0.2 * (1 + math.cos(0.9 * math.pi)) / 2)
    assert cosine_stage_lr(3, 5, 0.1, final_lr=0.01) == pytest.approx(0.01 + 0.09 * (1 + math.cos(0.4 * math.pi)) / 2)
    lrs = [cosine_stage_lr(e, 10, 0.1) for e in range(1, 11)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    for bad in (0, 11):
        with pytest.raises(ValueError, match="epoch must be in 1..10"):
            cosine_stage_lr(bad, 10, 0.1)
