"""Running under torchrun: this process's rank and device, its process group, and ``--nproc``.

torch.distributed is the engine and torchrun (``torch.distributed.run``) the launcher; ltrank
adds neither a launcher nor a rendezvous of its own (docs/distributed.md):

- ``torchrun --nproc-per-node N -m ltrank train ...`` starts N processes with ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their environment; ``ltrank
  train`` sees them (:func:`torchrun_place`) and joins the process group they describe
  (:func:`process_group`: NCCL on CUDA, gloo on the CPU). Multi-node runs use torchrun's own
  ``--nnodes``/``--rdzv-*`` flags.
- ``ltrank train --nproc N ...`` is the same on one machine: :func:`launch` runs torchrun's
  launcher in this process with ``--standalone`` and the same ``ltrank train`` arguments.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist

from ltrank.engine.device import DEVICE_CHOICES
from ltrank.errors import LtrankError

#: How long a collective may wait for the other ranks before the run fails (NCCL's default is 10 min).
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Place:
    """Where torchrun put this process: its global rank, the number of processes, its rank on this node."""

    rank: int
    world_size: int
    local_rank: int


def torchrun_place() -> Optional[Place]:
    """This process's place when torchrun started it (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set), else None."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    if not all(n in os.environ for n in names):
        return None
    try:
        rank, world, local = (int(os.environ[n]) for n in names)
    except ValueError:
        raise LtrankError("RANK, WORLD_SIZE and LOCAL_RANK must be integers; start ltrank with torchrun, "
                          "which sets them") from None
    return Place(rank, world, local)


def rank_device(name: str, place: Place) -> torch.device:
    """The device of a torchrun process for ``--device name``: ``cuda:LOCAL_RANK`` for ``cuda`` (and
    for ``auto`` when CUDA is available), else the CPU. One-line :class:`LtrankError` for ``cuda:N``
    (a process does not choose its GPU; torchrun's local rank does) and for missing GPUs."""
    name = name.strip().lower()
    if name not in ("cpu", "cuda", "auto"):
        if name.startswith("cuda:"):
            raise LtrankError(f"--device {name}: under torchrun every process uses cuda:LOCAL_RANK; "
                              "pass --device cuda (or auto)")
        raise LtrankError(f"--device {name!r}: not a device ltrank trains on; use {DEVICE_CHOICES}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise LtrankError(f"--device {name}: no CUDA device is available here; use --device cpu or auto")
    return torch.device("cuda", place.local_rank)


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Join the process group torchrun describes for the duration (NCCL on CUDA, gloo on the CPU).

    A GPU this node does not have (more processes than GPUs) is a one-line :class:`LtrankError`.
    """
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise LtrankError(f"local rank {device.index} has no GPU of its own (this machine has {count}); "
                              f"start at most {count} processes per node")
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=COLLECTIVE_TIMEOUT, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def check_nproc(nproc: int, device: torch.device, batch_size: int) -> None:
    """Refuse, before launching, an ``--nproc`` the machine or the recipe's batch cannot take."""
    from ltrank.data.sharding import local_batch_size

    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise LtrankError(f"--nproc {nproc}: this machine has {torch.cuda.device_count()} CUDA device(s), one per "
                          f"process; use --nproc {torch.cuda.device_count()} or less")
    local_batch_size(batch_size, nproc)


def launch(nproc: int, args: Sequence[str]) -> tuple[int, Optional[str]]:
    """Run ``ltrank ARGS`` in ``nproc`` processes on this machine with torchrun's launcher, here.

    Returns the exit code and, when no process said why it failed (it was killed), a one-line
    reason. The processes print their own lines (rank 0 alone for what all ranks share); the
    launcher's logging is kept to errors of its own. A stop signal sent to this process reaches
    every rank (torchrun forwards it), and they stop together.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    options = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "ltrank", *args])
    elastic = logging.getLogger("torch.distributed.elastic")
    level = elastic.level
    elastic.setLevel(logging.CRITICAL)
    try:
        run(options)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode in (1, 2):
            return failure.exitcode, None
        code = failure.exitcode
        how = f"was killed by {failure.signal_name()}" if code < 0 else f"exited with code {code}"
        return 1, f"the process of rank {rank} {how}; see its output above"
    except SignalException:
        return 1, None  # the ranks were told to stop and said so themselves
    finally:
        elastic.setLevel(level)
    return 0, None
