"""Reading run folders: what a run's folder holds before the sweep starts it, and what it ended as.

The record's ``status`` is the truth (``running``, ``finished``, ``diverged``, ``failed``,
``interrupted``); a worker's exit code and the last line it printed only fill in a reason when
the record cannot (no record, or a worker killed before it could write one).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Optional

from ltrank.errors import LtrankError
from ltrank.records import RunRecord, load_record
from ltrank.run_folder import CHECKPOINT_FILENAME, RECORD_FILENAME
from ltrank.sweep.spec import RunSpec

#: Record statuses that end a run without finishing it and are not retried without --retry-failed.
FAILED_STATUSES = ("diverged", "failed")

Action = Literal["run", "skip", "resume", "report", "retry"]
Result = Literal["finished", "skipped", "resumed", "retried", "failed", "interrupted", "blocked", "not started"]
#: Results that count as a finished table cell (the sweep exits 0 only if every run has one).
OK_RESULTS = ("finished", "skipped", "resumed", "retried")


@dataclass(frozen=True)
class Before:
    """What a run folder holds before the sweep, and what the sweep will do with it.

    ``action``: ``run`` (nothing there), ``skip`` (finished), ``resume`` (interrupted, killed
    or, with --retry-failed, failed: continue from the checkpoint), ``report`` (diverged,
    failed or unreadable: reported, not retried), ``retry`` (--retry-failed on a diverged or
    unreadable run: the folder is moved aside and the run starts again).
    """

    action: Action
    status: Optional[str]
    epochs_done: int
    reason: Optional[str] = None


def failure_reason(record: RunRecord) -> Optional[str]:
    """The record's one-line reason for a failed/diverged/interrupted run, when it has one.

    Read defensively: older records have no such field.
    """
    for field in ("failure", "status_reason", "reason"):
        value = getattr(record, field, None)
        if isinstance(value, str) and value.strip():
            return value.strip().splitlines()[0]
    return None


def read_record(run_dir: Path) -> tuple[Optional[RunRecord], Optional[str]]:
    """``(record, None)``, ``(None, None)`` when there is none, or ``(None, error)`` when unreadable."""
    path = run_dir / RECORD_FILENAME
    if not path.exists():
        return None, None
    try:
        return load_record(path), None
    except LtrankError as exc:
        return None, str(exc)


def inspect(run: RunSpec, retry_failed: bool = False) -> Before:
    """Classify ``run``'s folder (see :class:`Before`); reads only, never changes anything."""
    record, error = read_record(run.run_dir)
    if error is not None:
        return Before("retry" if retry_failed else "report", None, 0, error)
    if record is None:
        has_checkpoint = (run.run_dir / CHECKPOINT_FILENAME).exists()
        return Before("resume" if has_checkpoint else "run", None, 0)
    done = len(record.history)
    if record.status == "finished":
        return Before("skip", record.status, done)
    if record.status in FAILED_STATUSES:
        reason = failure_reason(record) or f"{record.status} after epoch {done}"
        if not retry_failed:
            return Before("report", record.status, done, reason)
        # a diverged run would diverge again from its checkpoint: start it over; a failed one
        # (a crash, a full disk) continues from its last good checkpoint, as 'train --resume' does
        return Before("retry" if record.status == "diverged" else "resume", record.status, done, reason)
    return Before("resume", record.status, done)  # running (a killed worker) or interrupted


def move_aside(run: RunSpec, status: Optional[str]) -> Path:
    """Move a run folder that will be started again to ``seedN.<status>-<UTC time>`` beside it.

    Evidence is never deleted; the new name does not match ``seed<N>``, so ``init_from`` and
    the sweep no longer see it as the run.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = run.run_dir.with_name(f"{run.run_dir.name}.{status or 'unreadable'}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = target.with_name(f"{run.run_dir.name}.{status or 'unreadable'}-{stamp}-{n}")
    shutil.move(str(run.run_dir), str(target))
    return target


@dataclass(frozen=True)
class Outcome:
    """How a run of the sweep ended: one line of the final table."""

    run: RunSpec
    result: Result
    status: Optional[str] = None
    epochs_done: int = 0
    top1: Optional[float] = None
    reason: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.result in OK_RESULTS


def settle(run: RunSpec, before: Before, exit_code: Optional[int], last_line: Optional[str]) -> Outcome:
    """The outcome of a run whose worker has exited with ``exit_code`` (None: never started).

    ``last_line`` is the last line the worker printed (its one-line error, if it failed before
    or without writing a record).
    """
    record, error = read_record(run.run_dir)
    if record is None:
        reason = error or _worker_reason(exit_code, last_line) or "no run record was written"
        return Outcome(run, "failed", None, 0, None, reason)
    done = len(record.history)
    top1 = record.final.top1 if record.final else None
    if exit_code == 2 and record.status != "finished":  # refused before training (bad input, a lock, ...)
        return Outcome(run, "failed", record.status, done, None,
                       _worker_reason(exit_code, last_line) or "the worker refused the run (exit code 2)")
    if record.status == "finished":
        result: Result = {"run": "finished", "resume": "resumed", "retry": "retried"}.get(before.action, "finished")
        return Outcome(run, result, record.status, done, top1)
    if record.status == "interrupted":
        return Outcome(run, "interrupted", record.status, done, None,
                       failure_reason(record) or f"interrupted after epoch {done}; rerun the sweep to resume it")
    reason = failure_reason(record)
    if record.status == "running":  # the worker died without updating its record
        reason = _worker_reason(exit_code, last_line) or "the worker stopped without updating the record"
    return Outcome(run, "failed", record.status, done, None,
                   reason or _worker_reason(exit_code, last_line) or f"{record.status} after epoch {done}")


def _worker_reason(exit_code: Optional[int], last_line: Optional[str]) -> Optional[str]:
    line = (last_line or "").strip()
    for prefix in ("error: ", "run failed: "):
        if line.startswith(prefix):
            line = line[len(prefix):]
    if exit_code is not None and exit_code < 0:
        signal_text = f"worker killed by signal {-exit_code}"
        return f"{signal_text}: {line}" if line else signal_text
    if line:
        return line
    return None if exit_code in (None, 0) else f"worker exited with code {exit_code}"


def settled_before(run: RunSpec, before: Before) -> Optional[Outcome]:
    """The outcome of a run the sweep will not start (finished, or a failure to report)."""
    if before.action == "skip":
        record, _ = read_record(run.run_dir)
        top1 = record.final.top1 if record is not None and record.final else None
        return Outcome(run, "skipped", before.status, before.epochs_done, top1)
    if before.action == "report":
        return Outcome(run, "failed", before.status, before.epochs_done, None,
                       f"{before.reason} (not retried; pass --retry-failed)")
    return None
