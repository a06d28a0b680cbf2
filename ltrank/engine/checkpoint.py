"""Checkpoints: written atomically after every epoch, read back with ``weights_only=True``.

A checkpoint holds only tensors and plain containers (state dicts, numbers, strings, lists),
so loading it never runs pickled code. It carries everything needed to continue a run so that
the result equals an uninterrupted run on CPU: model, optimiser and loss state, the epoch, the
history, and every random number generator state (torch, numpy, python, and the trainer's own
generators for data order and augmentation).
"""

from __future__ import annotations

import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltrank.atomic import atomic_write
from ltrank.errors import LtrankError

FORMAT_VERSION = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temp file in the same folder, fsync, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save({"format_version": FORMAT_VERSION, **state}, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint (tensors on CPU); problems are one-line :class:`LtrankError` in words."""
    path = Path(path)
    if not path.is_file():
        what = "a folder, not a checkpoint file" if path.is_dir() else "no such checkpoint"
        raise LtrankError(f"{path}: {what}; check the path")
    if not zipfile.is_zipfile(path):
        raise LtrankError(f"{path}: not a checkpoint (torch.save writes zip archives; this file is not one); "
                          "pass the checkpoint.pt of a run folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated archives, foreign pickles, ...: come in many types
        kind = "damaged or truncated" if isinstance(exc, (RuntimeError, EOFError, zipfile.BadZipFile)) else \
            "not a plain-tensor checkpoint (it holds objects ltrank does not load)"
        raise LtrankError(f"{path}: cannot read this checkpoint: {kind}") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise LtrankError(f"{path}: a torch file, but not an ltrank checkpoint of format {FORMAT_VERSION}")
    return state


# ------------------------------------------------------------------------------ RNG states
def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """The global torch/numpy/python RNG states and ``generators``', as tensors and numbers."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "generators": {name: g.get_state() for name, g in generators.items()},
    }


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])
