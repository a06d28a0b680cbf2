"""Rendering a sweep for the CLI: the dry-run plan, a live view, and the final table.

On a terminal the live view shows runs done/total and, per worker, its run, epoch and ETA,
read from the run's ``record.json`` (the trainer rewrites its history after every epoch), with
one line above it per run that ends. When stdout is not a terminal there is no live view, only
one line per run start and end.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Optional

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ltrank.sweep.dispatch import Launched, Progress, Settled, SweepEvent
from ltrank.sweep.spec import RunSpec
from ltrank.sweep.status import Before, Outcome, read_record

RESULT_STYLE = {"failed": "red", "blocked": "red", "interrupted": "yellow", "not started": "yellow"}


def console_for_output() -> Console:
    """A console that does not wrap rows at 80 columns when piped."""
    console = Console(soft_wrap=False)
    return console if console.is_terminal else Console(soft_wrap=False, width=200)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def describe(before: Before) -> str:
    """What the sweep will do with a run folder, in words."""
    if before.action == "run":
        return "new"
    if before.action == "skip":
        return "skip: finished"
    if before.action == "resume":
        what = f"{before.status} run" if before.status else "checkpoint"
        return f"resume: {what} after epoch {before.epochs_done}"
    if before.action == "retry":
        return f"retry: {before.status or 'unreadable'} run moved aside, start again ({before.reason})"
    return f"report: {before.reason} (not retried; pass --retry-failed)"


def _note(run: RunSpec) -> str:
    if run.added_for:
        return f"needed by {run.added_for}"
    return f"starts from {run.needs}" if run.needs else ""


def plan_table(runs: Sequence[RunSpec], befores: Sequence[Before]) -> Table:
    """The dry-run listing: every run and what the sweep would do with it."""
    table = Table(title=f"sweep plan: {len(runs)} runs", title_justify="left")
    for col in ("#", "recipe", "seed", "config", "action", "note"):
        table.add_column(col, justify="right" if col in ("#", "seed") else "left")
    for i, (run, before) in enumerate(zip(runs, befores, strict=True), 1):
        table.add_row(str(i), escape(run.name), str(run.seed), run.config_hash, escape(describe(before)),
                      escape(_note(run)))
    return table


def plan_summary(befores: Sequence[Before]) -> str:
    actions = [b.action for b in befores]
    return (f"{len(actions)} runs: {actions.count('run')} new, {actions.count('resume')} to resume, "
            f"{actions.count('retry')} to retry, {actions.count('skip')} finished (skipped), "
            f"{actions.count('report')} failed earlier (reported)")


def outcome_table(outcomes: Sequence[Outcome]) -> Table:
    """The final table: every run, how it ended, and the one-line reason of those that did not finish."""
    table = Table(title=f"sweep: {len(outcomes)} runs", title_justify="left")
    for col in ("recipe", "seed", "result", "epochs", "top-1", "reason / folder"):
        table.add_column(col, justify="right" if col in ("seed", "epochs", "top-1") else "left")
    for o in outcomes:
        style = RESULT_STYLE.get(o.result)
        top1 = "" if o.top1 is None else f"{o.top1:.2f}"
        table.add_row(escape(o.run.name), str(o.run.seed), Text(o.result, style=style or ""),
                      f"{o.epochs_done}/{o.run.total_epochs}", top1, escape(o.reason or str(o.run.run_dir)))
    return table


def outcome_summary(outcomes: Sequence[Outcome]) -> str:
    results = [o.result for o in outcomes]
    ok = sum(o.ok for o in outcomes)
    parts = [f"{results.count(r)} {r}" for r in ("finished", "resumed", "retried", "skipped", "failed", "blocked",
                                                   "interrupted", "not started") if results.count(r)]
    verdict = ("all finished" if ok == len(outcomes)
               else f"{len(outcomes) - ok} did not finish; rerun the same command to continue")
    return f"{len(outcomes)} runs: {', '.join(parts)} ({verdict})"


class SweepView:
    """Receives the sweep's events; a rich live view on a terminal, one line per run start/end otherwise."""

    def __init__(self, console: Console, refresh_seconds: float = 1.0):
        self.console = console
        self.live: Optional[Live] = Live(console=console, refresh_per_second=4, transient=True) \
            if console.is_terminal else None
        self.refresh_seconds = refresh_seconds
        self._last_render = 0.0

    def __enter__(self) -> "SweepView":
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __call__(self, event: SweepEvent) -> None:
        if isinstance(event, Progress):
            if self.live is not None and time.monotonic() - self._last_render >= self.refresh_seconds:
                self._last_render = time.monotonic()
                self.live.update(self.render(event))
            return
        if isinstance(event, Launched) and self.live is None:  # on a terminal the live view shows it
            self.console.print(f"start {event.worker} {escape(event.run.label)}: {escape(describe(event.before))}",
                               highlight=False)
        elif isinstance(event, Settled):
            o = event.outcome
            detail = f" top-1 {o.top1:.2f}%" if o.top1 is not None else ""
            detail += f" ({o.reason})" if o.reason else ""
            self.console.print(f"{o.result} {escape(o.run.label)}: epoch {o.epochs_done}/{o.run.total_epochs}"
                               f"{escape(detail)}", highlight=False)

    def _epoch_and_eta(self, run: RunSpec) -> tuple[int, Optional[float]]:
        record, _ = read_record(run.run_dir)
        if record is None or not record.history:
            return 0, None
        done = len(record.history)
        mean = sum(h.seconds for h in record.history) / done
        return done, mean * max(run.total_epochs - done, 0)

    def render(self, progress: Progress) -> Group:
        """The live view of ``progress``: a header line and a row per worker."""
        outcomes = progress.outcomes.values()
        failed = sum(not o.ok for o in outcomes)
        header = (f"sweep: {len(progress.outcomes)}/{progress.total} done"
                  + (f", {failed} not finished" if failed else "")
                  + f", {len(progress.running)} running, {_duration(time.monotonic() - progress.started)} elapsed"
                  + (" - stopping: waiting for the workers to checkpoint" if progress.stopping else ""))
        table = Table(box=None, pad_edge=False)
        for col in ("worker", "run", "epoch", "ETA"):
            table.add_column(col, justify="right" if col in ("epoch", "ETA") else "left")
        for worker, run in progress.running:
            done, eta = self._epoch_and_eta(run)
            table.add_row(worker, escape(run.label), f"{done}/{run.total_epochs}",
                          "-" if eta is None else _duration(eta))
        return Group(Text(header), table)
