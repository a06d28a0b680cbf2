"""One run as one process: its command line, environment and log, shared by every executor.

A worker is ``python -m ltrank train --recipe R --seed S --out OUT --resume --device D
[--data-dir DIR] [--set k=v ...]``: the same code path as a hand-typed ``ltrank train``, so a
sweep's runs are ordinary runs. Its stdout and stderr are appended to ``sweep.log`` in its run
folder (one header line per attempt); the last line it printed is its one-line error, if any.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import ltrank
from ltrank.sweep.spec import RunSpec

LOG_FILENAME = "sweep.log"


@dataclass(frozen=True)
class WorkerOptions:
    """What every worker of a sweep gets besides its recipe and seed."""

    device: str = "auto"
    data_dir: Optional[Path] = None
    overrides: tuple[str, ...] = ()
    threads: Optional[int] = None  # OMP/MKL threads per worker; None: the environment's


def train_command(run: RunSpec, options: WorkerOptions, python: str = sys.executable) -> list[str]:
    """The worker's command line (paths absolute, so it does not depend on the working folder)."""
    cmd = [python, "-m", "ltrank", "train", "--recipe", run.recipe_arg, "--seed", str(run.seed),
           "--out", str(run.out.resolve()), "--resume", "--device", options.device]
    if options.data_dir is not None:
        cmd += ["--data-dir", str(Path(options.data_dir).resolve())]
    for override in options.overrides:
        cmd += ["--set", override]
    return cmd


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, environ: Optional[dict[str, str]] = None) -> int:
    """``budget // workers`` (at least 1): the budget is ``$OMP_NUM_THREADS`` when set, else the usable cores."""
    environ = os.environ if environ is None else environ
    try:
        budget = int(environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        budget = 0
    if budget < 1:
        budget = usable_cores()
    return max(1, budget // max(1, workers))


def _source_root() -> Optional[str]:
    """The folder holding the running ``ltrank`` package, when it is a source tree (not site-packages)."""
    root = Path(ltrank.__file__).resolve().parent.parent
    return None if root.name in ("site-packages", "dist-packages") else str(root)


def worker_env(options: WorkerOptions, base: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The worker's environment: thread counts set, and the same ``ltrank`` the sweep runs importable first."""
    env = dict(os.environ if base is None else base)
    if options.threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(options.threads)
    root = _source_root()
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join([root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env


def open_log(run: RunSpec, command: Sequence[str]):  # type: ignore[no-untyped-def]
    """Open the run's ``sweep.log`` for appending, write a header line; returns (file, offset of this attempt)."""
    from ltrank.records import now_iso

    run.run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run.run_dir / LOG_FILENAME, "ab")  # noqa: SIM115 (closed by the executor when the worker ends)
    offset = log.tell()
    log.write(f"== {now_iso()} ltrank sweep: {' '.join(command)}\n".encode())
    log.flush()
    return log, offset


def last_line(path: Path, offset: int = 0) -> Optional[str]:
    """The last non-empty line written to ``path`` after ``offset`` (None if nothing)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            f.readline()  # the header line of this attempt
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None
