"""Exact identity-update AP Loss without the dense |P| x |N| matrix (docs/method.md section 5).

The B*C logits of a batch are one global ranking: the positives P are the entries (b, y_b), every
other entry is a negative. Positive i compares itself with every score s through the step
function H_i(x) = clip(x / (2 delta_i) + 1/2, 0, 1) (eq. 3.5). Seen as a function of the other
score s, H_i(s - s_i) is 0 up to the breakpoint s_i - delta_i, linear in between, and 1 from
s_i + delta_i on. So with the 2|P| breakpoints sorted, every score falls in one of 2|P| + 1
buckets, and inside one bucket every H_i is either 0, 1, or one fixed linear function. Hence

* rank+(i) and N_FP(i) (eqs. 3.7, 3.8) need only the count and the sum of the scores of each
  bucket, accumulated over buckets (prefix sums);
* the gradient of a negative j, sum_i c_i H_i(s_j - s_i) with c_i = w_i kappa_i / (|P| rank(i))
  (eqs. 3.20, 3.24, 3.28), is one linear function per bucket, whose coefficients are prefix sums
  over buckets of the positives' contributions.

Cost: O(N log |P|) to bucket the N = B*C scores (a binary search each on CUDA; on CPU a lookup
table answers almost all of them in O(1), see :func:`_bucketize`), never a sort of the scores,
and O(|P| log |P|) for the rest; memory O(N + |P|). Every sum is accumulated in float64 on
scores centred at the mean positive score, so float32 logits give the float64 result rounded
once at the end. The value and the gradient are computed together in the forward pass;
the backward pass only scales the stored gradient (no derivative of H is ever taken).

Faults: a non-finite logit (a diverged model) gives a NaN loss and an all-NaN gradient, flagged
on the device (no host sync), so any divergence check on the loss sees it. The stored gradient is
kept in at least float32 and scaled before it is cast to the logits' dtype, so float16 logits
under a loss scaler (GradScaler's initial scale 65536 exceeds the float16 range) get finite,
correctly scaled gradients.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch

from ltrank.errors import LtrankError

Formulation = Literal["thesis", "interpolated"]
FORMULATIONS: tuple[str, ...] = get_args(Formulation)

_WORK = torch.float64  # accumulation dtype of every sum below


def ap_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    delta: float | torch.Tensor = 1.0,
    class_weights: torch.Tensor | None = None,
    formulation: Formulation = "thesis",
) -> torch.Tensor:
    """AP Loss of a batch with the identity-update gradient (thesis sections 3.1-3.3).

    Args:
        logits: [B, C] raw scores (float64, float32, bfloat16 or float16); no sigmoid.
        targets: [B] integer class of each image; entry (b, targets[b]) is the positive of row b.
        delta: the step width of H (eq. 3.5): a float, or a [C] tensor giving each class's width
            (CB Delta passes ``delta * w`` or ``delta / w``); positive i uses ``delta[y_i]``.
        class_weights: None, or a [C] tensor w; positive i's primary term is scaled by
            ``w[y_i]`` while the normaliser stays |P| (CB Primary Term, eq. 3.25).
        formulation: ``"thesis"`` (eqs. 3.5-3.11, 3.20, 3.24-3.28; rank+ includes the positive
            itself with H(0) = 1/2) or ``"interpolated"`` (the interpolated AP of the public
            Rank & Sort / aLRP code; docs/method.md section 5).

    Returns:
        A scalar: the loss (float64 for float64 logits, float32 otherwise). Its backward puts
        the identity-update gradient into ``logits.grad`` in the logits' dtype and device (scaled
        by the upstream gradient in float32 first, so a loss scaler cannot overflow float16). An
        empty batch gives 0 and a zero gradient; a nan or inf logit gives NaN and NaN gradients.

    Value checks on ``targets`` and ``delta`` run for CPU tensors only, so that the CUDA path
    never waits on the device.
    """
    _check_inputs(logits, targets, delta, class_weights, formulation)
    return _APLossFunction.apply(logits, targets, delta, class_weights, formulation)


class _APLossFunction(torch.autograd.Function):
    """Forward computes the loss and its gradient at once; backward rescales the gradient."""

    @staticmethod
    def forward(ctx, logits, targets, delta, class_weights, formulation):  # type: ignore[override]
        need_grad = bool(ctx.needs_input_grad[0])
        loss, grad = ap_loss_and_grad(logits, targets, delta, class_weights, formulation, need_grad)
        if grad is not None:
            ctx.save_for_backward(grad)
            ctx.logits_dtype = logits.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        (grad,) = ctx.saved_tensors  # float32 or float64: scale first, then cast (loss scaling)
        return (grad * grad_output.to(grad.dtype)).to(ctx.logits_dtype), None, None, None, None


def ap_loss_and_grad(
    logits: torch.Tensor,
    targets: torch.Tensor,
    delta: float | torch.Tensor = 1.0,
    class_weights: torch.Tensor | None = None,
    formulation: Formulation = "thesis",
    need_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The loss and (with ``need_grad``) its identity-update gradient [B, C], no autograd.

    Both come in the loss's dtype: float64 for float64 logits, float32 otherwise (a float16
    gradient could not be scaled by a loss scaler without overflowing). A nan or inf logit
    makes both NaN.
    """
    out_dtype = torch.promote_types(logits.dtype, torch.float32)
    batch, num_classes = logits.shape
    device = logits.device
    if batch == 0:
        zero_grad = torch.zeros(logits.shape, dtype=out_dtype, device=device) if need_grad else None
        return torch.zeros((), dtype=out_dtype, device=device), zero_grad

    targets = targets.to(device=device, dtype=torch.long)
    pos_index = torch.arange(batch, device=device) * num_classes + targets
    scores = logits.detach().reshape(-1).to(_WORK, copy=True)
    # A diverged model's nan/inf would break the bucketing (out-of-range indices) or leak into
    # some terms only; compute on zeros there and make the results NaN through a device-side flag.
    finite = torch.isfinite(scores)
    diverged = ~finite.all()
    scores.masked_fill_(~finite, 0.0)
    # H only sees differences: centring at the mean positive loses nothing and curbs cancellation
    scores.sub_(scores[pos_index].mean())
    s = scores[pos_index]

    if isinstance(delta, torch.Tensor):
        d = delta.to(device=device, dtype=_WORK)[targets]
    else:
        d = torch.full((batch,), float(delta), dtype=_WORK, device=device)
    if class_weights is None:
        w = torch.ones(batch, dtype=_WORK, device=device)
    else:
        w = class_weights.to(device=device, dtype=_WORK)[targets]

    # Breakpoints, lower ones first so that a stable sort keeps lower_i before upper_i on ties.
    breaks, order = torch.sort(torch.cat([s - d, s + d]), stable=True)
    rank_of = torch.empty_like(order)
    rank_of[order] = torch.arange(2 * batch, device=device)
    first_linear = rank_of[:batch] + 1  # buckets first_linear .. past_linear-1 are linear for i
    past_linear = rank_of[batch:] + 1  # buckets past_linear .. 2|P| are above s_i + delta_i

    bucket = _bucketize(breaks, scores)  # bucket k holds the x with breaks[k-1] < x <= breaks[k]
    pos_bucket = bucket[pos_index]
    n_buckets = 2 * batch + 1
    count_all = torch.bincount(bucket, minlength=n_buckets).to(_WORK)
    sum_all = torch.zeros(n_buckets, dtype=_WORK, device=device).index_add_(0, bucket, scores)
    count_pos = torch.bincount(pos_bucket, minlength=n_buckets).to(_WORK)
    sum_pos = torch.zeros(n_buckets, dtype=_WORK, device=device).index_add_(0, pos_bucket, s)

    rank_pos, _ = _step_sums(count_pos, sum_pos, first_linear, past_linear, s, d)
    n_fp, n_reached = _step_sums(count_all - count_pos, sum_all - sum_pos, first_linear, past_linear, s, d)
    # N_FP(i) is exactly 0 when no negative reaches s_i - delta_i; otherwise clamp rounding dust
    n_fp = torch.where(n_reached > 0.5, n_fp.clamp_min(0.0), torch.zeros_like(n_fp))

    if formulation == "thesis":
        rank = rank_pos + n_fp  # >= 1/2: the self term
        primary = n_fp / rank  # l(i), eq. 3.9
        neg_coef = w / (batch * rank)  # L_ij / H_i(s_j - s_i), eq. 3.24
    else:
        rank_pos = rank_pos + 0.5  # 1 + sum over k != i instead of H(0) = 1/2
        rank = rank_pos + n_fp
        precision = rank_pos / rank
        smoothed = _running_max_ascending(precision, s)
        raised = precision < smoothed
        kappa = torch.where(raised, (1.0 - smoothed) / torch.where(raised, 1.0 - precision, 1.0), 1.0)
        primary = 1.0 - smoothed
        neg_coef = w * kappa / (batch * rank)
    loss = ((w * primary).sum() / batch).masked_fill_(diverged, math.nan).to(out_dtype)
    if not need_grad:
        return loss, None

    # Per-bucket linear function g(x) = intercept[k] + slope[k] * x for the negatives' gradient.
    slope_i = neg_coef / (2.0 * d)
    intercept_i = neg_coef * 0.5 - slope_i * s
    slope_diff = torch.zeros(n_buckets + 1, dtype=_WORK, device=device)
    slope_diff.index_add_(0, first_linear, slope_i).index_add_(0, past_linear, -slope_i)
    intercept_diff = torch.zeros(n_buckets + 1, dtype=_WORK, device=device)
    intercept_diff.index_add_(0, first_linear, intercept_i).index_add_(0, past_linear, neg_coef - intercept_i)
    slope = torch.cumsum(slope_diff, 0)[:n_buckets]
    intercept = torch.cumsum(intercept_diff, 0)[:n_buckets]
    grad = intercept.index_select(0, bucket).addcmul_(slope.index_select(0, bucket), scores)
    grad[pos_index] = -(w * primary) / batch  # eqs. 3.20, 3.28
    return loss, grad.masked_fill_(diverged, math.nan).to(out_dtype).view_as(logits)


def _bucketize(breaks: torch.Tensor, scores: torch.Tensor, cells_per_break: int = 64, max_steps: int = 8) -> torch.Tensor:
    """``#{k : breaks[k] < x}`` for every score x (= ``torch.searchsorted(breaks, scores)``).

    On CUDA that is ``torch.searchsorted``. On CPU a binary search per score is the slowest step,
    so a lookup table answers most scores: a monotone map ``cell`` sends scores to
    ``cells_per_break * len(breaks)`` equal-width cells, and because it is monotone, a score whose
    cell holds no breakpoint is above exactly the breakpoints of the cells before it. The few
    scores that share a cell with breakpoints step over that cell's breakpoints one at a time
    (at most ``max_steps`` per cell; more, as with many tied scores, falls back to a binary
    search). The answer is exact.
    """
    if scores.device.type != "cpu":
        return torch.searchsorted(breaks, scores)
    n_cells = cells_per_break * breaks.numel()
    low = float(breaks[0])
    span = float(breaks[-1]) - low
    scale = (n_cells - 1) / span if span > 0 else 1.0
    offset = 1.0 - low * scale

    def cell(x: torch.Tensor) -> torch.Tensor:
        # x * scale + offset, each step correctly rounded, is monotone in x: the property needed.
        # Cell 0 is below breaks[0]; cell n_cells + 1 is above breaks[-1].
        return torch.mul(x, scale).add_(offset).clamp_(0.0, n_cells + 1.0).to(torch.long)

    per_cell = torch.bincount(cell(breaks), minlength=n_cells + 2)
    before = torch.cumsum(per_cell, 0) - per_cell
    score_cell = cell(scores)
    bucket = before.index_select(0, score_cell)
    shared = (per_cell > 0).index_select(0, score_cell).nonzero().squeeze(1)
    if shared.numel() == 0:
        return bucket
    x = scores.index_select(0, shared)
    steps = int(per_cell.max())
    if steps > max_steps:
        found = torch.searchsorted(breaks, x)
    else:
        # the breakpoint after a cell's last one lies in a later cell, so above x: no overshoot
        padded = torch.cat([breaks, breaks.new_full((1,), float("inf"))])
        found = bucket.index_select(0, shared)
        for _ in range(steps):
            found += x > padded.index_select(0, found)
    return bucket.index_copy_(0, shared, found)


def _step_sums(
    count: torch.Tensor,
    total: torch.Tensor,
    first_linear: torch.Tensor,
    past_linear: torch.Tensor,
    s: torch.Tensor,
    d: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each positive i, sum_x H_i(x - s_i) over the scores x summarised per bucket.

    ``count``/``total`` are the number and the sum of the scores in each bucket. Also returns
    how many of those scores lie above s_i - delta_i (an exact integer in float64).
    """
    zero = count.new_zeros(1)
    count_cum = torch.cat([zero, torch.cumsum(count, 0)])
    total_cum = torch.cat([zero, torch.cumsum(total, 0)])
    n_linear = count_cum[past_linear] - count_cum[first_linear]
    n_above = count_cum[-1] - count_cum[past_linear]
    sum_linear = total_cum[past_linear] - total_cum[first_linear]
    value = n_above + (sum_linear - n_linear * s) / (2.0 * d) + 0.5 * n_linear
    return value, n_above + n_linear


def _running_max_ascending(values: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """max of ``values`` over the positives visited so far, in ascending score order.

    Ties are visited in flattened-index order, which is the positives' row order here.
    """
    order = torch.sort(scores, stable=True).indices
    running = torch.cummax(values[order], 0).values
    out = torch.empty_like(running)
    out[order] = running
    return out


def _check_inputs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    delta: float | torch.Tensor,
    class_weights: torch.Tensor | None,
    formulation: str,
) -> None:
    """One-line LtrankErrors for shapes and options; value checks only for CPU tensors."""
    if formulation not in FORMULATIONS:
        raise LtrankError(f"unknown AP formulation {formulation!r}; use one of {', '.join(FORMULATIONS)}")
    if logits.ndim != 2 or not logits.is_floating_point():
        raise LtrankError(f"AP loss needs float logits of shape [B, C], got {logits.dtype} {tuple(logits.shape)}")
    batch, num_classes = logits.shape
    if targets.shape != (batch,) or targets.is_floating_point() or targets.is_complex():
        raise LtrankError(
            f"AP loss needs integer targets of shape [{batch}], got {targets.dtype} {tuple(targets.shape)}"
        )
    for name, value in (("delta", delta), ("class_weights", class_weights)):
        if isinstance(value, torch.Tensor) and value.shape != (num_classes,):
            raise LtrankError(f"AP loss {name} must be a float or a [{num_classes}] tensor, got {tuple(value.shape)}")
    if not isinstance(delta, torch.Tensor) and not (math.isfinite(delta) and delta > 0):
        raise LtrankError(f"AP loss delta must be finite and > 0, got {delta}")
    if targets.device.type != "cpu" or batch == 0:
        return
    if int(targets.min()) < 0 or int(targets.max()) >= num_classes:
        raise LtrankError(f"AP loss targets must lie in [0, {num_classes - 1}]; got {int(targets.min())}..{int(targets.max())}")
    if isinstance(delta, torch.Tensor) and delta.device.type == "cpu":
        used = delta.double()[targets]
        if not bool(((used > 0) & torch.isfinite(used)).all()):
            raise LtrankError("AP loss delta must be finite and > 0 for every class in the batch")
