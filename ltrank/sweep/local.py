"""The local executor: up to N workers at once, each a separate process on this machine.

On CPU each worker gets ``cores // N`` threads (:func:`ltrank.sweep.worker.threads_per_worker`);
on one GPU the workers share it (run packing). Workers start in their own session, so a
Ctrl-C at the terminal reaches only the sweep, which forwards exactly one SIGINT to each worker
(the interruption every version of ``ltrank train`` records as ``interrupted``, with a
consistent checkpoint); a second Ctrl-C kills them (the last epoch's checkpoint stays).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Optional

from ltrank.sweep.dispatch import Exited
from ltrank.sweep.spec import RunSpec
from ltrank.sweep.worker import LOG_FILENAME, last_line, open_log


@dataclass
class _Worker:
    run: RunSpec
    process: subprocess.Popen
    log: IO[bytes]
    offset: int


class LocalExecutor:
    """Runs each run's command (``command(run)``) as a subprocess, ``workers`` at a time.

    ``command`` builds the argv (normally :func:`ltrank.sweep.worker.train_command`); ``env``
    is the workers' environment.
    """

    def __init__(self, workers: int, command: Callable[[RunSpec], list[str]], env: Optional[dict[str, str]] = None):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.slots: list[Optional[_Worker]] = [None] * workers
        self.command = command
        self.env = env
        self._not_started: list[Exited] = []

    def free_slots(self) -> int:
        return sum(w is None for w in self.slots)

    def launch(self, runs: Sequence[RunSpec]) -> None:
        for run in runs:
            slot = self.slots.index(None)
            argv = self.command(run)
            log, offset = open_log(run, argv)
            try:
                process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           env=self.env, start_new_session=True)
            except OSError as exc:  # reported as this run's failure at the next poll
                log.close()
                self._not_started.append(Exited(run, None, f"cannot start the worker ({argv[0]}): {exc}"))
                continue
            self.slots[slot] = _Worker(run, process, log, offset)

    def poll(self) -> list[Exited]:
        exited, self._not_started = self._not_started, []
        for i, w in enumerate(self.slots):
            if w is None or w.process.poll() is None:
                continue
            w.log.close()
            exited.append(Exited(w.run, w.process.returncode, last_line(w.run.run_dir / LOG_FILENAME, w.offset)))
            self.slots[i] = None
        return exited

    def running(self) -> list[tuple[str, RunSpec]]:
        return [(f"w{i + 1}", w.run) for i, w in enumerate(self.slots) if w is not None]

    def interrupt(self) -> None:
        self._signal(signal.SIGINT)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        for w in self.slots:
            if w is not None and w.process.poll() is None:
                try:
                    w.process.send_signal(sig)
                except ProcessLookupError:
                    pass
