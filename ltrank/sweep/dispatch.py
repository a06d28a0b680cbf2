"""The sweep loop: hand ready runs to an executor, collect how each ended, stop cleanly on a signal.

Not a scheduler: the executor decides where a run executes (local processes, or SLURM through
submitit). This loop only keeps the plan's order, holds back a run until the run it starts
from (``train.init_from = "recipe:NAME"``, same seed) has finished, settles every run's
outcome from its record, and on SIGINT/SIGTERM stops starting runs, asks the running ones to
stop (they record ``interrupted`` with a consistent checkpoint) and waits for them.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Optional, Protocol, Union

from ltrank.sweep.spec import RunSpec
from ltrank.sweep.status import Before, Outcome, inspect, move_aside, settle, settled_before


@dataclass(frozen=True)
class Exited:
    """A worker that has ended: its run, exit code (negative: killed by that signal) and last output line."""

    run: RunSpec
    exit_code: Optional[int]
    last_line: Optional[str]


class Executor(Protocol):
    """Where runs execute. ``launch`` gets at most ``free_slots()`` runs at a time."""

    def free_slots(self) -> int: ...

    def launch(self, runs: Sequence[RunSpec]) -> None: ...

    def poll(self) -> list[Exited]: ...

    def running(self) -> list[tuple[str, RunSpec]]:
        """``(worker label, run)`` of every run still executing."""
        ...

    def interrupt(self) -> None:
        """Ask every running run to stop (it records ``interrupted`` and exits)."""
        ...

    def kill(self) -> None:
        """Stop every running run at once (a second signal); the last epoch's checkpoint stays."""
        ...


@dataclass
class StopFlag:
    """Set by SIGINT/SIGTERM: the first asks runs to stop, a second one kills them."""

    count: int = 0

    @property
    def requested(self) -> bool:
        return self.count >= 1

    @property
    def forced(self) -> bool:
        return self.count >= 2

    def request(self, *_: object) -> None:
        self.count += 1


@contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[StopFlag]:
    """While inside, SIGINT and SIGTERM set ``flag`` instead of killing this process."""
    previous = {sig: signal.signal(sig, flag.request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True)
class Launched:
    """A run was handed to a worker."""

    run: RunSpec
    worker: str
    before: Before


@dataclass(frozen=True)
class Settled:
    """A run's outcome is known."""

    outcome: Outcome


@dataclass
class Progress:
    """The sweep as it stands, for a live view."""

    total: int
    outcomes: dict[RunSpec, Outcome] = field(default_factory=dict)
    running: list[tuple[str, RunSpec]] = field(default_factory=list)
    stopping: bool = False
    started: float = field(default_factory=time.monotonic)


SweepEvent = Union[Launched, Settled, Progress]


def _ignore(_: SweepEvent) -> None:
    pass


def _dependency_state(run: RunSpec, runs: Sequence[RunSpec], outcomes: dict[RunSpec, Outcome]) -> str:
    """'ok' (nothing to wait for), 'wait', or 'failed' (the run it starts from did not finish)."""
    if run.needs is None:
        return "ok"
    deps = [r for r in runs if r.name == run.needs and r.seed == run.seed]
    if any(d in outcomes and not outcomes[d].ok for d in deps):
        return "failed"
    return "ok" if all(d in outcomes for d in deps) else "wait"


def run_sweep(runs: Sequence[RunSpec], executor: Executor, *, retry_failed: bool = False,
              stop: Optional[StopFlag] = None, on_event: Callable[[SweepEvent], None] = _ignore,
              poll_seconds: float = 0.2) -> list[Outcome]:
    """Run ``runs`` on ``executor``; returns one :class:`Outcome` per run, in plan order.

    Finished runs are skipped, unfinished ones resumed, diverged/failed ones reported (with
    ``retry_failed``: a diverged one moved aside and started again, a failed one resumed). One
    run's failure never stops the others; a run whose ``init_from`` run did not finish is
    ``blocked``. When ``stop`` is requested no new run starts, the running ones are asked to
    stop, and the runs never started are ``not started``.
    """
    stop = stop or StopFlag()
    progress = Progress(total=len(runs))
    befores = {run: inspect(run, retry_failed) for run in runs}
    outcomes = progress.outcomes
    for run in runs:
        done = settled_before(run, befores[run])
        if done is not None:
            outcomes[run] = done
            on_event(Settled(done))
    pending = [r for r in runs if r not in outcomes]
    interrupted = killed = False
    while pending or executor.running():
        if stop.requested and not interrupted:
            interrupted = progress.stopping = True
            executor.interrupt()
        if stop.forced and not killed:
            killed = True
            executor.kill()
        if not stop.requested:
            pending = _launch_ready(runs, pending, befores, executor, outcomes, on_event)
        exited = executor.poll()
        for ex in exited:
            outcome = settle(ex.run, befores[ex.run], ex.exit_code, ex.last_line)
            if stop.requested and ex.exit_code is not None and ex.exit_code < 0 and not outcome.ok:
                # killed on the sweep's own second signal: its last epoch's checkpoint stays, a rerun resumes it
                outcome = replace(outcome, result="interrupted",
                                  reason=f"{outcome.reason}; rerun the sweep to resume it")
            outcomes[ex.run] = outcome
            on_event(Settled(outcome))
        progress.running = executor.running()
        on_event(progress)
        if stop.requested and not executor.running():
            break
        if not exited:
            time.sleep(poll_seconds)
    for run in pending:
        outcomes[run] = Outcome(run, "not started", reason="the sweep was stopped before this run started")
        on_event(Settled(outcomes[run]))
    return [outcomes[r] for r in runs]


def _launch_ready(runs: Sequence[RunSpec], pending: list[RunSpec], befores: dict[RunSpec, Before],
                  executor: Executor, outcomes: dict[RunSpec, Outcome],
                  on_event: Callable[[SweepEvent], None]) -> list[RunSpec]:
    """Settle blocked runs, launch the ready ones (plan order, up to the free slots); the rest stay pending."""
    still: list[RunSpec] = []
    ready: list[RunSpec] = []
    for run in pending:
        state = _dependency_state(run, runs, outcomes)
        if state == "failed":
            outcomes[run] = Outcome(run, "blocked",
                                    reason=f"starts from {run.needs} seed {run.seed}, which did not finish")
            on_event(Settled(outcomes[run]))
        elif state == "ok" and len(ready) < executor.free_slots():
            ready.append(run)
        else:
            still.append(run)
    launch = []
    for run in ready:
        if befores[run].action == "retry" and run.run_dir.exists():
            try:
                move_aside(run, befores[run].status)
            except OSError as exc:
                outcomes[run] = Outcome(run, "failed", reason=f"cannot move {run.run_dir} aside to retry it: {exc}")
                on_event(Settled(outcomes[run]))
                continue
        launch.append(run)
    if launch:
        executor.launch(launch)
        workers = {r: w for w, r in executor.running()}
        for run in launch:
            on_event(Launched(run, workers.get(run, "?"), befores[run]))
    return still
