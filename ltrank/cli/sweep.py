"""`ltrank sweep`: recipes x seeds as independent runs, locally (N processes) or on SLURM (submitit)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ltrank.cli.train import parse_seeds
from ltrank.errors import LtrankError
from ltrank.sweep.plan import plan_runs
from ltrank.sweep.spec import RunSpec
from ltrank.sweep.status import Outcome


class ExecutorKind(str, Enum):
    local = "local"
    slurm = "slurm"


class Cluster(str, Enum):
    slurm = "slurm"
    local = "local"


SLURM = "SLURM (--executor slurm)"

# Options shared by `ltrank sweep` and `ltrank reproduce` (each command declares them; Typer needs that).
OutOpt = Annotated[Path, typer.Option(
    "--out", metavar="DIR", help="Runs folder: OUT/<recipe>/<config hash>/seed<N>/.")]
WorkersOpt = Annotated[int, typer.Option(
    "--workers", min=1, metavar="N", help="Local executor: runs at once, each its own process (CPU: cores // N threads each; one GPU: shared).")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", metavar="cpu|cuda|auto", help="Device of every run: cpu, cuda or auto (CUDA when available).")]
DataDirOpt = Annotated[Optional[Path], typer.Option(
    "--data-dir", metavar="DIR", help="Data folder (default: $LTRANK_DATA_DIR, else the cache).")]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE", help="Override a value in every recipe: dotted.key=value (TOML value), repeatable.")]
ExecutorOpt = Annotated[ExecutorKind, typer.Option(
    "--executor", help="local: processes on this machine; slurm: SLURM job arrays through submitit (pip install 'ltrank\\[slurm]').")]
DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", help="List the runs and what would be skipped, resumed or reported; run nothing.")]
RetryOpt = Annotated[bool, typer.Option(
    "--retry-failed", help="Also retry failed runs (resumed) and diverged ones (folder moved aside to seedN.diverged-<time>, started again).")]
PartitionOpt = Annotated[Optional[str], typer.Option(
    "--slurm-partition", metavar="NAME", help="SLURM partition.", rich_help_panel=SLURM)]
TimeOpt = Annotated[Optional[int], typer.Option(
    "--slurm-time", min=1, metavar="MINUTES", help="Time limit per job (default 180); a job that reaches it is requeued and resumes.", rich_help_panel=SLURM)]
GpusOpt = Annotated[Optional[int], typer.Option(
    "--slurm-gpus-per-task", min=0, metavar="N", help="GPUs per run (default 1, 0 with --device cpu).", rich_help_panel=SLURM)]
CpusOpt = Annotated[Optional[int], typer.Option(
    "--slurm-cpus-per-task", min=1, metavar="N", help="CPU cores per run (default 4; also its thread count).", rich_help_panel=SLURM)]
MemOpt = Annotated[Optional[float], typer.Option(
    "--slurm-mem-gb", min=0.1, metavar="GB", help="Memory per run.", rich_help_panel=SLURM)]
ParallelOpt = Annotated[Optional[int], typer.Option(
    "--slurm-array-parallelism", min=1, metavar="N", help="Jobs of one array running at once (default 64).", rich_help_panel=SLURM)]
AccountOpt = Annotated[Optional[str], typer.Option(
    "--slurm-account", metavar="NAME", help="SLURM account.", rich_help_panel=SLURM)]
QosOpt = Annotated[Optional[str], typer.Option(
    "--slurm-qos", metavar="NAME", help="SLURM quality of service.", rich_help_panel=SLURM)]
FolderOpt = Annotated[Optional[Path], typer.Option(
    "--slurm-folder", metavar="DIR", help="submitit's job files and logs (default OUT/.submitit).", rich_help_panel=SLURM)]
ClusterOpt = Annotated[Cluster, typer.Option(
    "--slurm-cluster", hidden=True, help="submitit cluster: slurm, or local (this machine; for tests).")]


@dataclass(frozen=True)
class SlurmArgs:
    """The ``--slurm-*`` options as given (None: not given)."""

    partition: Optional[str] = None
    time_min: Optional[int] = None
    gpus_per_task: Optional[int] = None
    cpus_per_task: Optional[int] = None
    mem_gb: Optional[float] = None
    array_parallelism: Optional[int] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    folder: Optional[Path] = None
    cluster: Cluster = Cluster.slurm

    def given(self) -> list[str]:
        names = ("partition", "time_min", "gpus_per_task", "cpus_per_task", "mem_gb", "array_parallelism",
                 "account", "qos", "folder")
        return ["--slurm-" + n.replace("_min", "").replace("_", "-") for n in names if getattr(self, n) is not None]


@dataclass(frozen=True)
class SweepSettings:
    """Everything about how a sweep's runs execute (not which runs)."""

    out: Path
    workers: int = 1
    device: str = "auto"
    data_dir: Optional[Path] = None
    overrides: tuple[str, ...] = ()
    executor: ExecutorKind = ExecutorKind.local
    retry_failed: bool = False
    slurm: SlurmArgs = SlurmArgs()

    def check(self) -> None:
        """Options that do not fit the executor are one-line errors, not silently ignored."""
        if self.executor is ExecutorKind.slurm and self.workers != 1:
            raise LtrankError("--workers is for --executor local; SLURM runs the jobs (see --slurm-array-parallelism)")
        if self.executor is ExecutorKind.local and self.slurm.given():
            raise LtrankError(f"{', '.join(self.slurm.given())}: only with --executor slurm")


def _executor(settings: SweepSettings):  # type: ignore[no-untyped-def]
    """The executor for ``settings``, with the workers' command line and environment."""
    from ltrank.sweep.worker import WorkerOptions, threads_per_worker, train_command, worker_env

    if settings.executor is ExecutorKind.local:
        from ltrank.engine.device import resolve_device
        from ltrank.sweep.local import LocalExecutor

        resolve_device(settings.device)  # '--device cuda' without CUDA: one line now, not N failed runs
        options = WorkerOptions(settings.device, settings.data_dir, settings.overrides,
                                threads_per_worker(settings.workers))
        return LocalExecutor(settings.workers, lambda run: train_command(run, options), worker_env(options)), 0.05
    from ltrank.sweep.slurm import SlurmExecutor, SlurmOptions

    s = settings.slurm
    cpus = s.cpus_per_task or 4
    slurm = SlurmOptions(
        folder=s.folder or settings.out / ".submitit", partition=s.partition, time_min=s.time_min or 180,
        gpus_per_task=s.gpus_per_task if s.gpus_per_task is not None else (0 if settings.device == "cpu" else 1),
        cpus_per_task=cpus, mem_gb=s.mem_gb, array_parallelism=s.array_parallelism or 64, account=s.account,
        qos=s.qos, cluster=s.cluster.value,
    )
    options = WorkerOptions(settings.device, settings.data_dir, settings.overrides, cpus)
    return SlurmExecutor(slurm, lambda run: train_command(run, options), options), 2.0


def show_plan(runs: list[RunSpec], settings: SweepSettings, console: Console) -> None:
    """``--dry-run``: every run and what the sweep would do with it."""
    from ltrank.sweep.status import inspect
    from ltrank.sweep.view import plan_summary, plan_table

    befores = [inspect(run, settings.retry_failed) for run in runs]
    console.print(plan_table(runs, befores))
    console.print(plan_summary(befores), highlight=False)


def execute(runs: list[RunSpec], settings: SweepSettings, console: Console) -> list[Outcome]:
    """Run the sweep with a live view; prints the final table; SIGINT/SIGTERM stop it cleanly."""
    from ltrank.sweep.dispatch import StopFlag, run_sweep, stop_on_signals
    from ltrank.sweep.view import SweepView, outcome_summary, outcome_table

    executor, poll_seconds = _executor(settings)
    with stop_on_signals(StopFlag()) as stop, SweepView(console) as view:
        outcomes = run_sweep(runs, executor, retry_failed=settings.retry_failed, stop=stop, on_event=view,
                             poll_seconds=poll_seconds)
    console.print(outcome_table(outcomes))
    console.print(outcome_summary(outcomes), highlight=False)
    return outcomes


def checked_settings(out: Path, workers: int, device: str, data_dir: Optional[Path], overrides: Optional[list[str]],
                     executor: ExecutorKind, retry_failed: bool, slurm: SlurmArgs) -> SweepSettings:
    """The sweep settings of ``sweep`` and ``reproduce`` (the same options), checked before any run."""
    settings = SweepSettings(out=out, workers=workers, device=device, data_dir=data_dir,
                             overrides=tuple(overrides or ()), executor=executor, retry_failed=retry_failed,
                             slurm=slurm)
    settings.check()
    return settings


def command(
    recipes: Annotated[list[str], typer.Argument(metavar="RECIPE...", help="Shipped recipe names, .toml paths, or fnmatch patterns over the shipped recipes ('cifar100-ir100-*').")],
    seeds: Annotated[str, typer.Option("--seeds", metavar="0,1,2", help="Seeds of every recipe.")] = "0",
    out: OutOpt = Path("runs"),
    workers: WorkersOpt = 1,
    device: DeviceOpt = "auto",
    data_dir: DataDirOpt = None,
    overrides: SetOpt = None,
    executor: ExecutorOpt = ExecutorKind.local,
    dry_run: DryRunOpt = False,
    retry_failed: RetryOpt = False,
    slurm_partition: PartitionOpt = None,
    slurm_time: TimeOpt = None,
    slurm_gpus_per_task: GpusOpt = None,
    slurm_cpus_per_task: CpusOpt = None,
    slurm_mem_gb: MemOpt = None,
    slurm_array_parallelism: ParallelOpt = None,
    slurm_account: AccountOpt = None,
    slurm_qos: QosOpt = None,
    slurm_folder: FolderOpt = None,
    slurm_cluster: ClusterOpt = Cluster.slurm,
) -> None:
    """Run recipes x seeds: finished runs skipped, interrupted ones resumed, failures reported; rerun to continue."""
    settings = checked_settings(out, workers, device, data_dir, overrides, executor, retry_failed,
                                SlurmArgs(slurm_partition, slurm_time, slurm_gpus_per_task, slurm_cpus_per_task,
                                          slurm_mem_gb, slurm_array_parallelism, slurm_account, slurm_qos,
                                          slurm_folder, slurm_cluster))
    runs = plan_runs(recipes, parse_seeds(None, seeds), out, settings.overrides)
    console = _console()
    if dry_run:
        show_plan(runs, settings, console)
        return
    outcomes = execute(runs, settings, console)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(code=1)


def _console() -> Console:
    from ltrank.sweep.view import console_for_output

    return console_for_output()
