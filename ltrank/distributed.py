"""Process-group helpers and the global-batch convention for losses under torch.distributed.

Conventions (docs/distributed.md):

* torch.distributed is the engine (launched by torchrun); nothing here creates a process group
  (``ltrank train`` joins the one torchrun describes: :mod:`ltrank.engine.launch`). When it is
  not initialised, or has one process, every helper is the identity: single-process code paths
  are unchanged.
* Every rank holds an equal slice of the global batch (``batch_size / world_size`` rows, rank 0
  first). A loss that couples the rows of a batch (a ranking, a normaliser, a softmax over the
  batch) calls :func:`global_batch` and computes its single-process formula on the global batch.
  Its value is then the single-process value on every rank, and its gradient reaches only this
  rank's rows, multiplied by ``world_size``: after DistributedDataParallel AVERAGES the gradients
  of the ranks (sum / world_size), every parameter holds exactly the single-process gradient.
* No collective runs inside backward for :func:`global_batch`: the rows of the other ranks are
  detached copies, and each rank differentiates the same global loss.
* Decisions that must be the same on every rank (skip a run, refuse a folder, a bad input on
  one rank) go through :func:`on_rank0` or :func:`on_every_rank`: every rank then returns the
  same value or raises the same error, and the error is marked (:func:`shown_by_rank0`) so that
  only rank 0 shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

import torch
import torch.distributed as dist

from ltrank.errors import LtrankError, RunFailed

T = TypeVar("T")


def is_distributed() -> bool:
    """True when torch.distributed is available and its default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes in the default group; 1 when not distributed."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank in the default group; 0 when not distributed."""
    return dist.get_rank() if is_distributed() else 0


def _comm_device() -> torch.device:
    """Where collectives need their tensors: the current GPU for NCCL, the CPU otherwise (gloo)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over the ranks, returned as a new tensor on ``tensor``'s device (no autograd).

    Not distributed: ``tensor`` itself.
    """
    return _all_reduce(tensor, dist.ReduceOp.SUM)


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over the ranks (as :func:`all_reduce_sum`)."""
    return _all_reduce(tensor, dist.ReduceOp.MAX)


def _all_reduce(tensor: torch.Tensor, op: dist.ReduceOp) -> torch.Tensor:
    if world_size() == 1:
        return tensor
    work = tensor.detach().to(_comm_device(), copy=True)
    dist.all_reduce(work, op=op)
    return work.to(tensor.device)


def gather_equal(tensors: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
    """All-gather detached tensors whose shapes are the same on every rank.

    Returns, for each input tensor, the list of every rank's copy in rank order (on the input's
    device). The shapes are compared first with one small all-gather, so that ranks holding
    different shapes all raise the same :class:`LtrankError` instead of hanging or mixing data.
    Not distributed: ``[[t] for t in tensors]``.
    """
    if world_size() == 1:
        return [[t] for t in tensors]
    device = _comm_device()
    _check_same_shapes(tensors, device)
    out = []
    for t in tensors:
        local = t.detach().to(device).contiguous()
        parts = [torch.empty_like(local) for _ in range(world_size())]
        dist.all_gather(parts, local)
        out.append([p.to(t.device) for p in parts])
    return out


_MAX_DIMS = 8


def _check_same_shapes(tensors: Sequence[torch.Tensor], device: torch.device) -> None:
    """One all-gather of every rank's shapes; raises the same LtrankError on every rank if they differ."""
    if any(t.ndim > _MAX_DIMS for t in tensors):
        raise ValueError(f"gather_equal takes tensors of at most {_MAX_DIMS} dimensions")
    meta = torch.tensor([[t.ndim, *t.shape, *[0] * (_MAX_DIMS - t.ndim)] for t in tensors], dtype=torch.long,
                        device=device)
    metas = [torch.empty_like(meta) for _ in range(world_size())]
    dist.all_gather(metas, meta)
    if all(torch.equal(m, meta) for m in metas):
        return
    shapes = "; ".join(
        f"rank {r}: " + ", ".join(str(tuple(row[1:1 + row[0]])) for row in m.tolist()) for r, m in enumerate(metas)
    )
    raise LtrankError(
        f"distributed batch: the ranks hold slices of different shapes ({shapes}); give every rank "
        "batch_size / world_size rows (a batch size divisible by the number of processes)"
    )


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``factor``."""

    @staticmethod
    def forward(ctx, x, factor):  # type: ignore[override]
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        return grad_output * ctx.factor, None


def scale_grad(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` unchanged, but the gradient flowing back through it is multiplied by ``factor``."""
    return _ScaleGrad.apply(x, factor)


def global_batch(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The global batch: each tensor's rows from every rank, concatenated in rank order.

    Each argument is this rank's slice, [B_local, ...] (e.g. logits [B, C] float, targets [B]
    int64, features [B, D]); every rank must pass the same shapes (else :class:`LtrankError`
    on every rank). The other ranks' rows are detached copies; this rank's rows are the input
    itself, with its gradient multiplied by ``world_size`` (the DDP-averaging convention of this
    module). A loss computed on the result therefore has the single-process value, and the
    gradient of this rank's rows is ``world_size`` times the single-process gradient of those
    rows. A collective: every rank must call it, in the same order. Not distributed (or one
    process): the inputs, unchanged.
    """
    size = world_size()
    if size == 1:
        return tensors
    me = rank()
    out = []
    for local, parts in zip(tensors, gather_equal(tensors)):
        if local.requires_grad:
            parts[me] = scale_grad(local, float(size))
        else:
            parts[me] = local
        out.append(torch.cat(parts))
    return tuple(out)


def gather_shards(local: torch.Tensor) -> torch.Tensor:
    """Every rank's rows concatenated in rank order; ranks may hold different numbers of rows.

    For sharded evaluation: rank r predicts a contiguous shard of the test set
    (:func:`ltrank.data.sharding.eval_shard`) and this returns the full prediction vector in
    test-set order, on ``local``'s device, on every rank. Detached (no autograd). The trailing
    dimensions and the dtype must agree across ranks. Not distributed: ``local``.
    """
    size = world_size()
    if size == 1:
        return local
    device = _comm_device()
    rows = torch.tensor([local.shape[0]], dtype=torch.long, device=device)
    counts = [torch.empty_like(rows) for _ in range(size)]
    dist.all_gather(counts, rows)
    counts_int = [int(c) for c in counts]
    longest = max(counts_int)
    padded = local.detach().new_zeros((longest, *local.shape[1:]), device=device)
    padded[: local.shape[0]] = local.detach().to(device)
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, counts_int)]).to(local.device)


# ----------------------------------------------------------------------------- shared decisions
def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` (any picklable object, tensors included) on every rank; ``obj`` when alone."""
    if world_size() == 1:
        return obj
    box = [obj if rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` when alone."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is True on at least one (a collective); ``flag`` when alone."""
    if world_size() == 1:
        return flag
    return bool(all_reduce_max(torch.tensor([int(flag)], dtype=torch.int32)).item())


_SHOWN_BY_RANK0 = "_ltrank_shown_by_rank0"


def shown_by_rank0(exc: BaseException) -> bool:
    """True for an error every rank raised together (:func:`on_rank0`, :func:`on_every_rank`):
    rank 0 shows it, the other ranks only exit with its code."""
    return bool(getattr(exc, _SHOWN_BY_RANK0, False))


def raised_together(exc: BaseException) -> BaseException:
    """``exc`` marked as raised by every rank together (see :func:`shown_by_rank0`)."""
    setattr(exc, _SHOWN_BY_RANK0, True)
    return exc


@dataclass(frozen=True)
class _Failure:
    """An exception as it travels between ranks: its rank, kind and one-line message."""

    rank: int
    kind: str  # "user" (LtrankError), "run" (RunFailed) or "other"
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> "_Failure":
        kind = "user" if isinstance(exc, LtrankError) else "run" if isinstance(exc, RunFailed) else "other"
        if kind != "other":
            return cls(rank(), kind, str(exc))
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return cls(rank(), kind, f"{type(exc).__name__}: {first}".rstrip(": "))

    def rebuilt(self) -> BaseException:
        if self.kind == "user":
            return raised_together(LtrankError(self.message))
        if self.kind == "run":
            return raised_together(RunFailed(self.message))
        return raised_together(RunFailed(f"rank {self.rank} failed: {self.message}"))


def _attempt(fn: Callable[[], T]) -> tuple[Optional[T], Optional[Exception]]:
    try:
        return fn(), None
    except Exception as exc:  # every kind travels to the other ranks, so that none waits forever
        return None, exc


def on_rank0(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 alone; every rank returns its result, or raises its error.

    For what one process decides for all (the run folder's rules, its lock, reading a
    checkpoint): the result is broadcast (it must pickle). Rank 0 re-raises the original
    exception, the others an :class:`LtrankError` or :class:`RunFailed` with the same message;
    all are marked :func:`shown_by_rank0`. ``fn`` must run no collective. Alone: ``fn()``.
    """
    if world_size() == 1:
        return fn()
    value, error = _attempt(fn) if rank() == 0 else (None, None)
    failure, value = broadcast_object((None if error is None else _Failure.of(error), value))
    if failure is None:
        return value
    raise (raised_together(error) if error is not None else failure.rebuilt())


def on_every_rank(fn: Callable[[], T]) -> T:
    """Run ``fn`` on every rank; an error on any rank is raised on every rank.

    For work each rank does for itself that can fail (loading its data, building its model):
    without this, the ranks that succeed would wait forever for the one that failed. The first
    failing rank's error (in rank order) is raised everywhere: as itself on that rank, as an
    :class:`LtrankError` or :class:`RunFailed` with its message elsewhere, all marked
    :func:`shown_by_rank0`. ``fn`` must run no collective. Alone: ``fn()``.
    """
    if world_size() == 1:
        return fn()
    value, error = _attempt(fn)
    failures = all_gather_objects(None if error is None else _Failure.of(error))
    first = next((f for f in failures if f is not None), None)
    if first is None:
        return value  # type: ignore[return-value]
    raise (raised_together(error) if error is not None and first.rank == rank() else first.rebuilt())
