"""AP Loss, CB Delta and CB Primary Term (docs/method.md section 5) against a float64 loop reference.

The reference below loops over every (positive, score) pair with Python floats, following the
equations as written: no sorting, no prefix sums, nothing shared with the fast kernel.
"""

from __future__ import annotations

import math

import pytest
import torch

from ltrank.errors import LtrankError
from ltrank.losses import APLoss, CBDeltaAPLoss, CBPrimaryAPLoss, class_balanced_weights
from ltrank.losses.functional import ap_loss
from ltrank.losses.functional.ap import _bucketize
from ltrank.catalog import LOSSES, SCHEDULES

FORMULATIONS = ("thesis", "interpolated")


# ----------------------------------------------------------------------------- reference
def step(x: float, delta: float) -> float:
    """H(x) = clip(x / (2 delta) + 1/2, 0, 1), eq. 3.5."""
    return min(1.0, max(0.0, x / (2.0 * delta) + 0.5))


def reference_ap(logits, targets, delta=1.0, class_weights=None, formulation="thesis"):
    """(loss, [B][C] gradient) of docs/method.md section 5 by direct loops over all pairs."""
    rows = logits.tolist()
    ys = [int(t) for t in targets.tolist()]
    num_classes = logits.shape[1]
    scores = [v for row in rows for v in row]
    positives = [b * num_classes + y for b, y in enumerate(ys)]
    negatives = [k for k in range(len(scores)) if k not in set(positives)]
    n_pos = len(positives)
    grad = [0.0] * len(scores)
    if n_pos == 0:
        return 0.0, []
    per_class = lambda table, y, default: default if table is None else float(table[y])  # noqa: E731

    info = []  # (i, w_i, {j: H_ij}, N_FP, rank, rank+)
    for b, i in enumerate(positives):
        d = float(delta[ys[b]]) if isinstance(delta, torch.Tensor) else float(delta)
        w = per_class(class_weights, ys[b], 1.0)
        h_neg = {j: step(scores[j] - scores[i], d) for j in negatives}
        n_fp = sum(h_neg.values())
        if formulation == "thesis":
            rank_pos = sum(step(scores[k] - scores[i], d) for k in positives)  # self: H(0) = 1/2
        else:
            rank_pos = 1.0 + sum(step(scores[k] - scores[i], d) for k in positives if k != i)
        info.append((i, w, h_neg, n_fp, rank_pos + n_fp, rank_pos))

    loss = 0.0
    if formulation == "thesis":
        for i, w, h_neg, n_fp, rank, _ in info:
            if n_fp == 0.0:
                continue  # l(i) = 0 and no L_ij: the 0/0 is skipped
            primary = n_fp / rank  # eq. 3.9
            loss += w * primary / n_pos
            grad[i] = -w * primary / n_pos
            for j, h in h_neg.items():
                grad[j] += w * primary * h / n_fp / n_pos  # L_ij = w l(i) H_ij / N_FP(i)
    else:
        best = 0.0  # positives by ascending score, ties by flattened index, as the public loop
        for i, w, h_neg, n_fp, rank, rank_pos in sorted(info, key=lambda t: (scores[t[0]], t[0])):
            precision = rank_pos / rank
            if best <= precision:
                best, kappa = precision, 1.0
            else:
                kappa = (1.0 - best) / (1.0 - precision)
            loss += w * (1.0 - best) / n_pos
            grad[i] = -w * (1.0 - best) / n_pos
            for j, h in h_neg.items():
                grad[j] += w * kappa * h / rank / n_pos
    return loss, [grad[b * num_classes:(b + 1) * num_classes] for b in range(len(rows))]


def fast(logits, targets, **kwargs):
    z = logits.detach().clone().requires_grad_(True)
    loss = ap_loss(z, targets, **kwargs)
    loss.backward()
    return loss.detach(), z.grad


def assert_matches_reference(logits, targets, delta=1.0, class_weights=None, formulation="thesis"):
    loss, grad = fast(logits, targets, delta=delta, class_weights=class_weights, formulation=formulation)
    want_loss, want_grad = reference_ap(logits, targets, delta, class_weights, formulation)
    assert loss.dtype == torch.float64 and grad.dtype == torch.float64
    assert abs(loss.item() - want_loss) < 1e-9
    assert torch.allclose(grad, torch.tensor(want_grad, dtype=torch.float64).view_as(grad), rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- batches
def random_batch(batch, classes, seed, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, generator=g, dtype=torch.float64) * scale
    targets = torch.randint(0, classes, (batch,), generator=g)
    return logits, targets


def per_class(classes, seed, low=0.3, high=2.5):
    g = torch.Generator().manual_seed(1000 + seed)
    return low + (high - low) * torch.rand(classes, generator=g, dtype=torch.float64)


CASES = {
    "B16_C10": lambda: random_batch(16, 10, 0),
    "B24_C7": lambda: random_batch(24, 7, 1, scale=0.7),
    "B5_C40": lambda: random_batch(5, 40, 2),
    "B1_C9": lambda: random_batch(1, 9, 3),
    "B1_C1": lambda: random_batch(1, 1, 4),
    "B6_C1": lambda: random_batch(6, 1, 5),
    # ties: integer logits, so many scores coincide and sit exactly on breakpoints s_i +- delta
    "ties": lambda: (random_batch(20, 6, 6)[0].round(), random_batch(20, 6, 6)[1]),
    "all_equal": lambda: (torch.zeros(7, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 4, 4, 1])),
    # far apart: almost every H is exactly 0 or 1, plus a few huge outliers
    "far_apart": lambda: (random_batch(12, 8, 7, scale=1e3)[0] + torch.where(
        torch.arange(96).view(12, 8) % 17 == 0, 1e6, 0.0).to(torch.float64), random_batch(12, 8, 7)[1]),
    "one_class_batch": lambda: (random_batch(10, 6, 8)[0], torch.full((10,), 3)),
    "class_absent": lambda: (random_batch(12, 9, 9)[0], torch.tensor([0, 1, 1, 2, 0, 5, 5, 5, 2, 1, 0, 8])),
}


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_loop_reference(case, formulation):
    logits, targets = CASES[case]()
    assert_matches_reference(logits, targets, formulation=formulation)


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("case", ["B16_C10", "ties", "far_apart", "class_absent", "B1_C9"])
def test_per_class_delta_and_weights_match_reference(case, formulation):
    logits, targets = CASES[case]()
    classes = logits.shape[1]
    delta, weights = per_class(classes, 1), per_class(classes, 2, 0.1, 4.0)
    assert_matches_reference(logits, targets, delta=delta, formulation=formulation)
    assert_matches_reference(logits, targets, class_weights=weights, formulation=formulation)
    assert_matches_reference(logits, targets, delta=delta, class_weights=weights, formulation=formulation)
    assert_matches_reference(logits, targets, delta=0.05, class_weights=weights, formulation=formulation)


def test_absent_class_parameters_are_not_used():
    """delta / weights of a class with no positive in the batch never enter the loss."""
    logits, targets = CASES["class_absent"]()  # classes 3, 4, 6, 7 absent
    delta, weights = per_class(9, 3), per_class(9, 4)
    loss, grad = fast(logits, targets, delta=delta, class_weights=weights)
    delta[[3, 4, 6, 7]] = 0.0  # invalid values, but only for absent classes
    weights[[3, 4, 6, 7]] = 123.0
    loss2, grad2 = fast(logits, targets, delta=delta, class_weights=weights)
    assert torch.equal(loss, loss2) and torch.equal(grad, grad2)


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_gradients_sum_to_zero(formulation):
    for seed in range(4):
        logits, targets = random_batch(32, 12, 20 + seed)
        _, grad = fast(logits, targets, delta=per_class(12, seed), class_weights=per_class(12, seed + 9),
                       formulation=formulation)
        assert abs(grad.sum().item()) < 1e-12
        assert grad.abs().sum().item() > 1e-3  # a real gradient, not all zeros


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_positive_with_no_negative_above_gets_zero_gradient(formulation):
    logits, targets = random_batch(8, 5, 30)
    logits[2, targets[2]] = logits.max() + 1.0 + 1e-3  # every negative at or below s_i - delta
    loss, grad = fast(logits, targets, formulation=formulation)
    assert grad[2, targets[2]].item() == 0.0
    assert grad.abs().sum() > 0  # the other positives still learn
    assert_matches_reference(logits, targets, formulation=formulation)


def test_highest_positive_sets_nothing_for_negatives_below_every_breakpoint():
    logits = torch.tensor([[5.0, -10.0, 0.0], [0.5, 4.0, -20.0]], dtype=torch.float64)
    targets = torch.tensor([0, 1])
    _, grad = fast(logits, targets)
    assert grad[0, 1].item() == 0.0 and grad[1, 2].item() == 0.0  # H = 0 for every positive
    assert_matches_reference(logits, targets)


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_zero_positives_give_zero_loss_and_gradient(formulation):
    logits = torch.randn(0, 10, requires_grad=True)
    loss = ap_loss(logits, torch.zeros(0, dtype=torch.long), formulation=formulation)
    loss.backward()
    assert loss.item() == 0.0 and logits.grad.shape == (0, 10) and not logits.grad.isnan().any()


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("shape", [(64, 100), (256, 300)])
def test_float32_agrees_with_float64(shape, formulation):
    logits64, targets = random_batch(*shape, seed=40, scale=3.0)
    logits64 = logits64 + 25.0  # an offset, to catch cancellation in prefix sums
    logits32 = logits64.float()
    delta = per_class(shape[1], 5).float()
    weights = per_class(shape[1], 6).float()
    loss32, grad32 = fast(logits32, targets, delta=delta, class_weights=weights, formulation=formulation)
    loss64, grad64 = fast(logits32.double(), targets, delta=delta.double(), class_weights=weights.double(),
                          formulation=formulation)
    assert loss32.dtype == torch.float32 and grad32.dtype == torch.float32
    assert abs(loss32.item() - loss64.item()) < 1e-5
    assert (grad32.double() - grad64).abs().max().item() < 1e-5
    # and the float64 rounding of the inputs themselves changes little
    loss_exact, _ = fast(logits64, targets, delta=delta.double(), class_weights=weights.double(),
                         formulation=formulation)
    assert abs(loss32.item() - loss_exact.item()) < 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_logits(dtype):
    logits64, targets = random_batch(32, 20, 50)
    low = logits64.to(dtype).requires_grad_(True)
    loss = ap_loss(low, targets, delta=0.5)
    loss.backward()
    assert loss.dtype == torch.float32 and low.grad.dtype == dtype
    assert torch.isfinite(low.grad.float()).all()
    want_loss, want_grad = reference_ap(low.detach().double(), targets, 0.5)
    assert abs(loss.item() - want_loss) < 1e-6  # computed internally at full precision
    want = torch.tensor(want_grad, dtype=torch.float64)
    assert torch.allclose(low.grad.double(), want, rtol=1e-2, atol=1e-4)


def test_backward_scales_by_upstream_gradient_and_skips_work_without_grad():
    logits, targets = random_batch(10, 6, 60)
    base_loss, base_grad = fast(logits, targets)
    z = logits.clone().requires_grad_(True)
    (3.0 * ap_loss(z, targets) + z.sum() * 0.0).backward()
    assert torch.allclose(z.grad, 3.0 * base_grad, rtol=0, atol=1e-15)
    with torch.no_grad():
        assert torch.equal(ap_loss(logits, targets), base_loss)


def test_hand_computed_example_with_interpolation():
    """Three positives 1 < 2 < 3 below one negative at 10; delta small, so H is a 0/1 step.

    Thesis: rank+ = 1/2 + positives above: l = 1/3.5, 1/2.5, 1/1.5. Interpolated: precision
    3/4, 2/3, 1/2 in ascending order, so the running max stays 3/4 and kappa = 1, 3/4, 1/2.
    """
    logits = torch.tensor([[1.0, 10.0], [2.0, -50.0], [3.0, -50.0]], dtype=torch.float64)
    targets = torch.tensor([0, 0, 0])
    loss, grad = fast(logits, targets, delta=0.01)
    primary = torch.tensor([1 / 3.5, 1 / 2.5, 1 / 1.5], dtype=torch.float64)
    assert abs(loss.item() - primary.sum().item() / 3) < 1e-12
    want = torch.tensor([[-primary[0] / 3, primary.sum() / 3], [-primary[1] / 3, 0.0], [-primary[2] / 3, 0.0]])
    assert torch.allclose(grad, want.double(), rtol=0, atol=1e-12)

    loss, grad = fast(logits, targets, delta=0.01, formulation="interpolated")
    assert abs(loss.item() - 0.25) < 1e-12
    negative = (1 / 4 * 1.0 + 1 / 3 * 3 / 4 + 1 / 2 * 1 / 2) / 3  # kappa_i / rank(i), over |P|
    want = torch.tensor([[-1 / 12, negative], [-1 / 12, 0.0], [-1 / 12, 0.0]], dtype=torch.float64)
    assert torch.allclose(grad, want, rtol=0, atol=1e-12)
    for formulation in FORMULATIONS:
        assert_matches_reference(logits, targets, delta=0.01, formulation=formulation)


def test_bucketize_is_exact():
    """The CPU lookup table equals a binary search: few breakpoints per cell, and many ties."""
    g = torch.Generator().manual_seed(70)
    spread = torch.randn(300, generator=g, dtype=torch.float64)
    tied = torch.cat([spread, torch.zeros(40, dtype=torch.float64), torch.full((5,), 1e9, dtype=torch.float64)])
    extremes = torch.tensor([-1e300, 1e300, 0.0, -0.0, 1e9], dtype=torch.float64)
    for breaks in (spread, tied, torch.tensor([0.5, 0.5], dtype=torch.float64)):  # last: zero span
        breaks = torch.sort(breaks).values
        scores = torch.cat([torch.randn(20000, generator=g, dtype=torch.float64) * 3, breaks,
                            breaks + 1e-15, breaks.nextafter(torch.tensor(-math.inf, dtype=torch.float64)), extremes])
        assert torch.equal(_bucketize(breaks, scores), torch.searchsorted(breaks, scores))
        assert torch.equal(_bucketize(breaks, scores, max_steps=0), torch.searchsorted(breaks, scores))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"formulation": "aLRP"}, "unknown AP formulation"),
        ({"delta": 0.0}, "delta must be finite and > 0"),
        ({"delta": math.inf}, "delta must be finite and > 0"),
        ({"delta": math.nan}, "delta must be finite and > 0"),
        ({"delta": torch.ones(3)}, "delta must be a float or a [5] tensor"),
        ({"delta": torch.tensor([1.0, 1.0, -1.0, 1.0, 1.0])}, "finite and > 0"),
        ({"class_weights": torch.ones(5, 1)}, "class_weights must be a float or a [5] tensor"),
    ],
)
def test_user_errors(kwargs, message):
    logits = torch.randn(4, 5)
    with pytest.raises(LtrankError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ap_loss(logits, torch.tensor([0, 1, 2, 3]), **kwargs)


def test_bad_shapes_and_targets():
    with pytest.raises(LtrankError, match="logits of shape"):
        ap_loss(torch.randn(4), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(LtrankError, match="integer targets"):
        ap_loss(torch.randn(4, 5), torch.tensor([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(LtrankError, match="targets must lie in"):
        ap_loss(torch.randn(4, 5), torch.tensor([0, 1, 2, 5]))


# ----------------------------------------------------------------------------- modules
COUNTS = [500, 300, 120, 60, 25, 10, 5]
VARIANTS = [
    ("ap", {}),
    ("ap", {"formulation": "interpolated"}),
    ("ap_cb_delta", {}),
    ("ap_cb_delta", {"mode": "divide"}),
    ("ap_cb_delta", {"formulation": "interpolated", "beta": 0.9999}),
    ("ap_cb_primary", {}),
    ("ap_cb_primary", {"formulation": "interpolated"}),
]


@pytest.mark.parametrize("name, params", VARIANTS)
def test_registry_smoke(name, params):
    loss_fn = LOSSES.build(name, class_counts=COUNTS, **params)
    logits, targets = random_batch(16, len(COUNTS), 80)
    logits = logits.float().requires_grad_(True)
    loss = loss_fn(logits, targets)
    loss.backward()
    assert loss.ndim == 0 and math.isfinite(loss.item()) and loss.item() > 0
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    spec = LOSSES.get(name)
    assert spec.paper and all(f.description for f in spec.params.model_fields.values())


def test_registry_defaults_and_validation():
    cb = LOSSES.build("ap_cb_delta", class_counts=COUNTS)
    assert (cb.delta, cb.beta, cb.mode, cb.formulation) == (1.0, 0.99, "multiply", "thesis")
    assert LOSSES.get("ap_cb_delta").has("uses_class_weights")
    assert LOSSES.get("ap_cb_primary").has("uses_class_weights")
    assert not LOSSES.get("ap").has("uses_class_weights")
    for name, bad in [("ap", {"delta": 0.0}), ("ap_cb_delta", {"beta": 1.0}), ("ap_cb_primary", {"beta": -0.1}),
                      ("ap_cb_delta", {"mode": "add"}), ("ap", {"formulation": "x"}), ("ap", {"beta": 0.9}),
                      ("ap", {"delta": math.inf}), ("ap_cb_delta", {"delta": math.nan}),
                      ("ap_cb_primary", {"delta": math.inf})]:
        with pytest.raises(LtrankError):
            LOSSES.build(name, class_counts=COUNTS, **bad)


def test_cb_variants_with_unit_weights_equal_plain_ap():
    logits, targets = random_batch(24, len(COUNTS), 81)
    logits = logits.float()
    for formulation in FORMULATIONS:
        plain = APLoss(delta=0.75, formulation=formulation)  # 0.75: exact in float32 too
        want_loss, want_grad = _module_loss(plain, logits, targets)
        for loss_fn in (CBDeltaAPLoss(COUNTS, delta=0.75, formulation=formulation),
                        CBDeltaAPLoss(COUNTS, delta=0.75, mode="divide", formulation=formulation),
                        CBPrimaryAPLoss(COUNTS, delta=0.75, formulation=formulation)):
            loss_fn.set_class_weights(torch.ones(len(COUNTS)))
            got_loss, got_grad = _module_loss(loss_fn, logits, targets)
            assert torch.equal(got_loss, want_loss) and torch.equal(got_grad, want_grad)


def test_cb_delta_uses_weights_in_force():
    logits, targets = random_batch(20, len(COUNTS), 82)
    cb = CBDeltaAPLoss(COUNTS, delta=0.8, beta=0.99)
    target = class_balanced_weights(COUNTS, 0.99)
    assert torch.equal(cb.class_weights, target)  # full CB weights until a schedule speaks
    assert cb.class_weights[-1] > 1.0 > cb.class_weights[0]  # rarest class gets the largest weight
    assert torch.allclose(cb.class_deltas(), 0.8 * target)
    for weights in (target, SCHEDULES.build("progressive").weights(3, 10, cb.target_weights)):
        cb.set_class_weights(weights)
        cb.mode = "multiply"
        assert torch.allclose(cb.class_deltas(), 0.8 * weights)
        loss, grad = _module_loss(cb, logits, targets)
        want_loss, want_grad = reference_ap(logits, targets, cb.class_deltas().double())
        assert abs(loss.item() - want_loss) < 1e-9
        assert torch.allclose(grad, torch.tensor(want_grad, dtype=torch.float64), atol=1e-9, rtol=0)
        cb.mode = "divide"
        assert torch.allclose(cb.class_deltas(), 0.8 / weights)
        loss, _ = _module_loss(cb, logits, targets)
        assert abs(loss.item() - reference_ap(logits, targets, cb.class_deltas().double())[0]) < 1e-9


def test_cb_primary_uses_weights_in_force():
    logits, targets = random_batch(20, len(COUNTS), 83)
    cb = CBPrimaryAPLoss(COUNTS, delta=1.5)
    weights = SCHEDULES.build("progressive").weights(7, 10, cb.target_weights)
    cb.set_class_weights(weights)
    loss, grad = _module_loss(cb, logits, targets)
    want_loss, want_grad = reference_ap(logits, targets, 1.5, weights.double())
    assert abs(loss.item() - want_loss) < 1e-9
    assert torch.allclose(grad, torch.tensor(want_grad, dtype=torch.float64), atol=1e-9, rtol=0)


def _module_loss(loss_fn, logits, targets):
    z = logits.detach().clone().requires_grad_(True)
    loss = loss_fn(z, targets)
    loss.backward()
    return loss.detach(), z.grad


# ----------------------------------------------------------------------------- faults (issue 9, item 5)
@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("where", ["positive", "negative", "all"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=repr)
@pytest.mark.parametrize("make", ["ap", "cb_delta", "cb_primary"])
def test_a_non_finite_logit_gives_nan_loss_and_nan_gradients(make, bad, where, formulation):
    """Not an IndexError in the bucketing, not a finite loss beside NaN gradients."""
    logits, targets = random_batch(12, 7, 70)
    logits = logits.float()
    if where == "all":
        logits.fill_(bad)
    else:
        col = int(targets[3]) if where == "positive" else (int(targets[3]) + 1) % 7
        logits[3, col] = bad
    counts = [50, 30, 20, 10, 8, 5, 2]
    loss_fn = {"ap": lambda: APLoss(delta=0.5, formulation=formulation),
               "cb_delta": lambda: CBDeltaAPLoss(counts, formulation=formulation),
               "cb_primary": lambda: CBPrimaryAPLoss(counts, formulation=formulation)}[make]()
    z = logits.clone().requires_grad_(True)
    loss = loss_fn(z, targets)
    loss.backward()
    assert loss.dtype == torch.float32 and math.isnan(loss.item())
    assert z.grad.dtype == torch.float32 and torch.isnan(z.grad).all()
    with torch.no_grad():  # the value-only path agrees
        assert math.isnan(loss_fn(logits, targets).item())


def test_finite_logits_around_a_bad_batch_are_unaffected():
    """The NaN flag is per call: the next finite batch is exact again."""
    logits, targets = random_batch(9, 5, 71)
    bad = logits.clone()
    bad[0, 0] = math.nan
    assert math.isnan(ap_loss(bad, targets).item())
    assert_matches_reference(logits, targets)


def _scaled_ap_gradient_matches_float64(formulation: str, use_weights: bool):
    """fp32 parameters, fp16 logits (as autocast makes them), loss scaled by GradScaler's 65536."""
    g = torch.Generator().manual_seed(72)
    x = torch.randn(16, 24, generator=g)
    weight = torch.nn.Parameter(torch.randn(24, 10, generator=g) * 0.3)
    targets = torch.randint(0, 10, (16,), generator=g)
    class_weights = per_class(10, 72).float() if use_weights else None
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    assert scaler.get_scale() == 65536.0
    logits16 = (x @ weight).half()  # autocast's dtype for a matmul; the cast back is autograd's
    loss = ap_loss(logits16, targets, delta=0.5, class_weights=class_weights, formulation=formulation)
    scaler.scale(loss).backward()
    assert torch.isfinite(weight.grad).all()  # the scaled fp16 logit gradients did not overflow
    scaler.unscale_(optimizer)
    want_loss, want_logit_grad = reference_ap(logits16.detach().double(), targets, 0.5,
                                              None if class_weights is None else class_weights.double(), formulation)
    # the one rounding allowed: the scaled float64 logit gradient stored as float16
    scaled16 = (torch.tensor(want_logit_grad, dtype=torch.float64) * 65536.0).half()
    want = x.double().t() @ (scaled16.double() / 65536.0)
    assert abs(loss.item() - want_loss) < 1e-6
    assert torch.allclose(weight.grad.double(), want, rtol=1e-5, atol=1e-7)
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 65536.0  # no inf found: the step was taken, the scale kept


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("use_weights", [False, True])
def test_fp16_logits_under_a_real_grad_scaler_get_finite_correct_gradients(formulation, use_weights):
    _scaled_ap_gradient_matches_float64(formulation, use_weights)


def test_fp16_logits_scaled_by_hand_keep_the_scale_out_of_fp16():
    logits64, targets = random_batch(8, 10, 73, scale=1.0)
    z = logits64.half().requires_grad_(True)
    (ap_loss(z, targets) * 65536.0).backward()
    assert z.grad.dtype == torch.float16 and torch.isfinite(z.grad).all()
    _, want = reference_ap(z.detach().double(), targets)
    want = torch.tensor(want, dtype=torch.float64) * 65536.0
    assert torch.allclose(z.grad.double(), want, rtol=2e-3, atol=1e-2)
