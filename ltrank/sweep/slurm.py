"""The SLURM executor, through submitit (``pip install 'ltrank[slurm]'``); no scheduler of our own.

Each batch of ready runs is submitted as one SLURM job array, one job per run. A job is the
run's worker process (:func:`ltrank.sweep.worker.train_command`, the same ``ltrank train
--resume`` a local sweep starts) wrapped in :class:`RunJob`, which submitit checkpoints: when
SLURM announces a preemption or the time limit (``USR2``, ``signal_delay_s`` before the end),
the job asks the worker to stop (SIGINT: it records ``interrupted`` with a consistent
checkpoint) and hands submitit the same run again, which SLURM requeues; the requeued job
resumes from the checkpoint. The worker ignores ``USR2`` itself (SLURM signals every process
of the job), so only the job decides how it stops.

``cluster="local"`` runs the same jobs on this machine through submitit's local executor (how
the tests exercise this path; there is no SLURM here).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ltrank.errors import LtrankError
from ltrank.sweep.dispatch import Exited
from ltrank.sweep.spec import RunSpec
from ltrank.sweep.worker import LOG_FILENAME, WorkerOptions, last_line, open_log, worker_env

#: How often a job may be requeued after hitting its time limit (preemptions do not count).
MAX_TIMEOUT_REQUEUES = 20


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of every job of the sweep (one run per job)."""

    folder: Path
    partition: Optional[str] = None
    time_min: int = 180
    gpus_per_task: int = 1
    cpus_per_task: int = 4
    mem_gb: Optional[float] = None
    array_parallelism: int = 64
    account: Optional[str] = None
    qos: Optional[str] = None
    signal_delay_s: int = 120
    cluster: str = "slurm"


def _ignore_usr2() -> None:  # runs in the worker between fork and exec; SIG_IGN survives exec
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class RunJob:
    """One run as a submitit job: starts the worker, waits, returns ``(exit code, last output line)``.

    ``checkpoint`` (called by submitit on USR2) stops the worker cleanly and returns the same
    run as a new submission, which resumes from the run's checkpoint when requeued.
    """

    def __init__(self, run: RunSpec, argv: list[str], options: WorkerOptions, stop_timeout_s: float = 60.0):
        self.run = run
        self.argv = argv
        self.options = options
        self.stop_timeout_s = stop_timeout_s
        self._process: Optional[subprocess.Popen] = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_process"] = None  # a live process does not travel with the pickle
        return state

    def __call__(self) -> tuple[int, Optional[str]]:
        log, offset = open_log(self.run, self.argv)
        with log:
            self._process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             env=worker_env(self.options), preexec_fn=_ignore_usr2)
            code = _wait(self._process)
        return code, last_line(self.run.run_dir / LOG_FILENAME, offset)

    def checkpoint(self) -> Any:
        """Stop the worker (SIGINT, then kill after ``stop_timeout_s``) and resubmit the same run."""
        from submitit.helpers import DelayedSubmission

        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            if _wait(process, self.stop_timeout_s) is None:
                process.kill()
        return DelayedSubmission(RunJob(self.run, self.argv, self.options, self.stop_timeout_s))


def _wait(process: subprocess.Popen, timeout_s: Optional[float] = None, step_s: float = 0.2) -> Optional[int]:
    """Poll until ``process`` exits (its code) or ``timeout_s`` passes (None).

    Not ``Popen.wait``: submitit calls :meth:`RunJob.checkpoint` from a signal handler that
    interrupts ``__call__`` while it waits, and a blocking ``wait`` there would hold the lock
    that the handler's own wait needs.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while (code := process.poll()) is None:
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(step_s)
    return code


class SlurmExecutor:
    """Submits runs as SLURM job arrays through submitit and polls their jobs."""

    def __init__(self, options: SlurmOptions, command: Callable[[RunSpec], list[str]], worker_options: WorkerOptions):
        try:
            import submitit
        except ImportError:
            raise LtrankError("--executor slurm needs submitit: pip install 'ltrank[slurm]'") from None
        if options.cluster == "slurm" and shutil.which("sbatch") is None:
            raise LtrankError("--executor slurm: sbatch not found; run the sweep where SLURM is installed "
                              "(e.g. a login node), or use --executor local")
        self.command = command
        self.worker_options = worker_options  # the job builds the worker's environment on its node
        self.stop_timeout_s = max(10.0, options.signal_delay_s - 30.0)
        self.executor = submitit.AutoExecutor(folder=options.folder, cluster=options.cluster,
                                              slurm_max_num_timeout=MAX_TIMEOUT_REQUEUES,
                                              local_max_num_timeout=MAX_TIMEOUT_REQUEUES)
        params: dict[str, Any] = dict(
            name="ltrank-sweep", timeout_min=options.time_min, tasks_per_node=1, nodes=1,
            cpus_per_task=options.cpus_per_task, gpus_per_node=options.gpus_per_task, mem_gb=options.mem_gb,
            slurm_partition=options.partition, slurm_array_parallelism=options.array_parallelism,
            slurm_account=options.account, slurm_qos=options.qos, slurm_signal_delay_s=options.signal_delay_s,
        )
        self.executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
        self.jobs: list[tuple[Any, RunSpec]] = []
        self._not_submitted: list[Exited] = []

    def free_slots(self) -> int:
        return 1 << 30  # SLURM queues them; --slurm-array-parallelism bounds how many run at once

    def launch(self, runs: Sequence[RunSpec]) -> None:
        submitted = []
        try:
            with self.executor.batch():
                for run in runs:
                    job = RunJob(run, self.command(run), self.worker_options, self.stop_timeout_s)
                    submitted.append((self.executor.submit(job), run))
        except Exception as exc:  # noqa: BLE001 -- sbatch refused the array: these runs failed, the sweep goes on
            reason = f"submission failed ({_first_line(exc)}); check the --slurm-* options"
            self._not_submitted += [Exited(run, None, reason) for run in runs]
            return
        self.jobs += submitted

    def poll(self) -> list[Exited]:
        exited, self._not_submitted = self._not_submitted, []
        for job, run in list(self.jobs):
            if not job.done():
                continue
            try:
                code, line = job.result()
            except Exception as exc:  # noqa: BLE001 -- submitit reports a failed or cancelled job this way
                code, line = None, _first_line(exc)
            exited.append(Exited(run, code, line))
            self.jobs.remove((job, run))
        return exited

    def running(self) -> list[tuple[str, RunSpec]]:
        return [(f"job {job.job_id}", run) for job, run in self.jobs]

    def interrupt(self) -> None:
        """Cancel the jobs: SLURM sends SIGTERM to their processes, which ``ltrank train`` records as interrupted."""
        for job, _ in self.jobs:
            job.cancel(check=False)

    def kill(self) -> None:
        self.interrupt()


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
