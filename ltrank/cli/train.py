"""`ltrank train`: run a recipe for one or more seeds, with progress bars in a terminal and one
line per epoch anywhere else.

Under torchrun (``torchrun --nproc-per-node N -m ltrank train ...``, or ``ltrank train --nproc
N``, which runs torchrun's launcher) every process runs this command: each checks its arguments,
joins the process group and trains its slice of every batch. Rank 0 alone prints; the other
ranks exit with the same code, silently, when rank 0 says why (docs/distributed.md).
"""

from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ltrank.cli.console import make_console
from ltrank.engine.events import (
    BatchEnded,
    EpochEnded,
    EpochStarted,
    EvalEnded,
    EvalStarted,
    Event,
    FeaturePassStarted,
    Notice,
    PassProgress,
    RunStarted,
)
from ltrank.errors import LtrankError, RunFailed
from ltrank.text import count, plural

if TYPE_CHECKING:
    import torch

    from ltrank.engine.launch import Place
    from ltrank.recipe import ResolvedRecipe


#: Decoding processes for streamed sources (in-memory CIFAR uses none): most of the cores, at most 8.
DEFAULT_DATA_WORKERS = max(1, min(8, (os.cpu_count() or 2) - 1))


def _both(*callbacks: Callable[[Event], None]) -> Callable[[Event], None]:
    """One event callback that hands every event to each of ``callbacks`` in turn."""
    def call(event: Event) -> None:
        for callback in callbacks:
            callback(event)
    return call


def parse_seeds(seed: Optional[int], seeds: Optional[str]) -> list[int]:
    """``--seed N`` or ``--seeds 0,1,2`` (not both); seed 0 when neither is given."""
    if seed is not None and seeds is not None:
        raise LtrankError("give either --seed N or --seeds 0,1,2, not both")
    if seeds is None:
        if seed is not None and not 0 <= seed < 2**32:
            raise LtrankError(f"--seed {seed}: a seed is an integer from 0 to 2**32 - 1 (numpy's range)")
        return [0 if seed is None else seed]
    try:
        out = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise LtrankError(f"--seeds {seeds!r}: expected comma-separated integers, e.g. --seeds 0,1,2") from None
    if not out or len(set(out)) != len(out) or min(out) < 0 or max(out) >= 2**32:
        raise LtrankError(f"--seeds {seeds!r}: expected distinct integers >= 0 and < 2**32, e.g. --seeds 0,1,2")
    return out


def duration(seconds: float) -> str:
    """``42 s``, ``3m 05s``, ``2h 10m``: a time span for progress lines."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class ProgressView:
    """Shows trainer events as they come.

    In a terminal: an epoch bar (loss / accuracy / lr) and a bar for the pass in progress: the
    training batches, the test pass, or a loss's feature pass (DRO-LT's centroids). Anywhere else
    (a log file, a pipe, a batch job's output) bars would show nothing for hours, so every epoch
    prints one line: loss, training accuracy, test accuracy when evaluated, lr, time, ETA.
    Notices (e.g. which run a run starts from) are lines either way. Nothing from data is parsed
    as markup.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.lines = not console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=self.lines, transient=False,
        )
        self.epoch_task: Optional[int] = None
        self.batch_task: Optional[int] = None
        self.seed: Optional[int] = None
        self.started = 0.0
        self.first_epoch = 1

    def __enter__(self) -> "ProgressView":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def _line(self, text: str) -> None:
        self.console.print(Text(text), soft_wrap=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Notice):
            self._line(f"note: {event.message}")
        elif isinstance(event, RunStarted):
            self.seed, self.started, self.first_epoch = event.seed, time.perf_counter(), event.start_epoch
            if self.lines:
                resumed = f", resuming at epoch {event.start_epoch}" if event.start_epoch > 1 else ""
                self._line(f"seed {event.seed}: {plural(event.total_epochs, 'epoch')} of "
                           f"{plural(event.batches_per_epoch, 'batch', 'batches')} on {event.device}{resumed}")
            else:
                self._start_bars(event)
        elif self.lines:
            if isinstance(event, EpochEnded):
                self._line(self._epoch_line(event))
        else:
            self._update_bars(event)

    def _epoch_line(self, event: EpochEnded) -> str:
        done = event.epoch - self.first_epoch + 1
        remaining = event.total_epochs - event.epoch
        elapsed = time.perf_counter() - self.started
        eta = f", ETA {duration(elapsed / done * remaining)}" if remaining else ""
        test = "" if event.test_acc is None else f", test {event.test_acc:.2f}%"
        return (f"seed {self.seed} epoch {event.epoch}/{event.total_epochs}: loss {event.train_loss:.4f}, "
                f"train {event.train_acc:.2f}%{test}, lr {event.lr:.3g}, {duration(event.seconds)}{eta}")

    def _start_bars(self, event: RunStarted) -> None:
        p = self.progress
        for task in (self.epoch_task, self.batch_task):
            if task is not None:
                p.remove_task(task)
        self.epoch_task = p.add_task(f"seed {event.seed} epochs", total=event.total_epochs,
                                     completed=event.start_epoch - 1, info="")
        self.batch_task = p.add_task("batches", total=event.batches_per_epoch, info="")

    def _update_bars(self, event: Event) -> None:
        p, bar = self.progress, self.batch_task
        if bar is None or self.epoch_task is None:
            return
        if isinstance(event, FeaturePassStarted):
            p.reset(bar, description="features", total=event.batches,
                    info=f"epoch {event.epoch}: {count(event.images)} training images for the loss")
        elif isinstance(event, EpochStarted):
            p.reset(bar, description="batches", total=event.batches, info=f"epoch {event.epoch} lr {event.lr:.3g}")
        elif isinstance(event, BatchEnded):
            p.update(bar, completed=event.batch, info=f"epoch {event.epoch} loss {event.loss:.4f}")
        elif isinstance(event, EvalStarted):
            p.reset(bar, description="testing", total=event.batches,
                    info=f"epoch {event.epoch}: {count(event.images)} test images")
        elif isinstance(event, PassProgress):
            p.update(bar, completed=event.batch)
        elif isinstance(event, EvalEnded):
            p.update(bar, info=f"epoch {event.epoch}: test {event.top1:.2f}%")
        elif isinstance(event, EpochEnded):
            test = "" if event.test_acc is None else f" test {event.test_acc:.2f}%"
            p.update(self.epoch_task, completed=event.epoch,
                     info=f"loss {event.train_loss:.4f} train {event.train_acc:.2f}%{test} lr {event.lr:.3g}")


def command(
    recipe: Annotated[str, typer.Option("--recipe", "-r", metavar="NAME|FILE", help="Shipped recipe name (see 'ltrank list recipes') or a .toml path.")],
    seed: Annotated[Optional[int], typer.Option("--seed", metavar="N", help="Run seed (default 0).")] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", metavar="0,1,2", help="Several seeds, e.g. 0,1,2 (thesis tables use 3).")] = None,
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Runs folder: OUT/<recipe>/<config hash>/seed<N>/.")] = Path("runs"),
    device: Annotated[str, typer.Option("--device", metavar="cpu|cuda|auto", help="cpu, cuda or auto (CUDA when available).")] = "auto",
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", metavar="DIR", help="Data folder (default: $LTRANK_DATA_DIR, else the cache).")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Override a recipe value: dotted.key=value (TOML value), repeatable.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue unfinished runs from their checkpoints; skip finished seeds.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate, print the resolved recipe (TOML) and its config hash, and stop.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: print the resolved recipe as JSON.")] = False,
    data_workers: Annotated[int, typer.Option("--data-workers", min=0, metavar="N", help="Processes decoding images of a source streamed from disk (ImageNet-LT ...); results do not depend on it.")] = DEFAULT_DATA_WORKERS,
    tensorboard: Annotated[Optional[Path], typer.Option("--tensorboard", metavar="DIR", help="Also write TensorBoard scalars per epoch to DIR/<recipe>/<config hash>/seed<N> (needs ltrank[tensorboard]).")] = None,
    nproc: Annotated[Optional[int], typer.Option("--nproc", min=1, metavar="N", help="Train with N data-parallel processes on this machine (one per GPU on CUDA), launched by torchrun; train.batch_size stays the global batch. Several machines: run torchrun yourself (README, Scaling out).")] = None,
) -> None:
    """Train a recipe (docs/method.md section 3 protocol) and write one run record per seed."""
    from ltrank.engine.launch import torchrun_place

    place = torchrun_place()
    try:
        resolved, seed_list, torch_device = _checked(recipe, seed, seeds, out, device, overrides, nproc, place)
        if dry_run:
            if place is None or place.rank == 0:
                _print_dry_run(resolved, as_json)
            return
    except LtrankError as exc:
        if place is not None and place.rank != 0:
            raise typer.Exit(exc.exit_code) from None  # every rank found the same problem; rank 0 says it
        raise
    if nproc is not None and nproc > 1:
        from ltrank.engine.launch import launch

        code, reason = launch(nproc, _worker_args(recipe, seed, seeds, out, device, data_dir, overrides, resume,
                                                  data_workers, tensorboard))
        if reason:
            typer.echo(f"run failed: {reason}", err=True)
        raise typer.Exit(code)
    if place is None:
        _train_seeds(resolved, seed_list, out, torch_device, data_dir, resume, data_workers, tensorboard)
    else:
        _train_under_torchrun(resolved, seed_list, out, torch_device, data_dir, resume, data_workers, tensorboard)


def _checked(recipe: str, seed: Optional[int], seeds: Optional[str], out: Path, device: str,
             overrides: Optional[list[str]], nproc: Optional[int],
             place: Optional[Place]) -> tuple[ResolvedRecipe, list[int], torch.device]:
    """Everything a real run would refuse before training (also refused by --dry-run): the resolved
    recipe, the seeds and this process's device. Under torchrun (``place``) every rank finds the same."""
    from ltrank.data.sharding import local_batch_size
    from ltrank.engine.device import resolve_device
    from ltrank.engine.launch import Place, check_nproc, rank_device
    from ltrank.engine.run import run_dir_for
    from ltrank.recipe import load_recipe
    from ltrank.run_folder import check_out_dir

    resolved = load_recipe(recipe, overrides or [])
    seed_list = parse_seeds(seed, seeds)
    if place is not None and nproc is not None:
        raise LtrankError("--nproc starts the processes with torchrun; under torchrun leave --nproc out")
    if place is not None:
        torch_device = rank_device(device, place)
        local_batch_size(resolved.recipe.train.batch_size, place.world_size)
    elif nproc is not None and nproc > 1:
        torch_device = rank_device(device, Place(0, nproc, 0))
        check_nproc(nproc, torch_device, resolved.recipe.train.batch_size)
    else:
        torch_device = resolve_device(device)
    check_out_dir(out)
    for s in seed_list:
        run_dir_for(out, resolved, s)
    return resolved, seed_list, torch_device


def _print_dry_run(resolved: ResolvedRecipe, as_json: bool) -> None:
    from ltrank.cli.recipe_toml import to_toml

    if as_json:
        typer.echo(json.dumps({"recipe": resolved.name, "config_hash": resolved.config_hash,
                               "resolved": resolved.as_dict()}, indent=2))
    else:
        typer.echo(f"# recipe {resolved.name} ({resolved.source})\n# config hash {resolved.config_hash}\n")
        typer.echo(to_toml(resolved.as_dict()))


def _worker_args(recipe: str, seed: Optional[int], seeds: Optional[str], out: Path, device: str,
                 data_dir: Optional[Path], overrides: Optional[list[str]], resume: bool,
                 data_workers: int, tensorboard: Optional[Path]) -> list[str]:
    """The ``ltrank`` arguments every process started by ``--nproc`` runs (the same command, without it)."""
    args = ["train", "--recipe", recipe, "--out", str(out), "--device", device, "--data-workers", str(data_workers)]
    if seed is not None:
        args += ["--seed", str(seed)]
    if seeds is not None:
        args += ["--seeds", seeds]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    for override in overrides or []:
        args += ["--set", override]
    if resume:
        args.append("--resume")
    if tensorboard is not None:
        args += ["--tensorboard", str(tensorboard)]
    return args


def _train_under_torchrun(resolved: ResolvedRecipe, seed_list: list[int], out: Path, torch_device: torch.device,
                          data_dir: Optional[Path], resume: bool, data_workers: int,
                          tensorboard: Optional[Path]) -> None:
    """Join torchrun's process group and train; on ranks other than 0, errors that rank 0 shows are not repeated."""
    from ltrank.distributed import rank, shown_by_rank0
    from ltrank.engine.launch import process_group

    with process_group(torch_device):
        me = rank()
        try:
            _train_seeds(resolved, seed_list, out, torch_device, data_dir, resume, data_workers, tensorboard)
        except (LtrankError, RunFailed) as exc:
            if me != 0 and shown_by_rank0(exc):
                raise typer.Exit(exc.exit_code) from None
            raise


def _train_seeds(resolved: ResolvedRecipe, seed_list: list[int], out: Path, torch_device: torch.device,
                 data_dir: Optional[Path], resume: bool, data_workers: int, tensorboard: Optional[Path]) -> None:
    """Train every seed in this process (one of several under torchrun: rank 0 alone prints and
    writes TensorBoard scalars)."""
    from ltrank.distributed import on_every_rank, rank
    from ltrank.engine.device import prepare_backend
    from ltrank.engine.events import ignore
    from ltrank.engine.feeds import load_training_data
    from ltrank.engine.run import run_dir_for, train_one

    prepare_backend(torch_device)
    lead = rank() == 0
    board = None
    if tensorboard is not None and lead:
        from ltrank.engine.tensorboard import TensorBoardScalars, require_tensorboard

        require_tensorboard()  # a missing extra is one line before any work

        def board(resolved_recipe, seed_value):
            return TensorBoardScalars(run_dir_for(tensorboard, resolved_recipe, seed_value))
    console = make_console()
    data, data_seconds = None, 0.0
    for s in seed_list:
        if data is None:
            start = time.perf_counter()
            data = on_every_rank(lambda: load_training_data(resolved.recipe.data, data_dir))
            data_seconds = time.perf_counter() - start
        with ProgressView(console) if lead else nullcontext(ignore) as view:
            callback = view if board is None or not lead else _both(view, board(resolved, s))
            record = train_one(resolved, seed=s, out=out, device=torch_device, data=data, resume=resume,
                               callback=callback, data_seconds=data_seconds, workers=data_workers)
        if not lead:
            continue
        run_dir = run_dir_for(out, resolved, s)
        if record is None:
            typer.echo(f"seed {s}: already finished, skipped ({run_dir})")
            continue
        final, best = record.final, record.best
        typer.echo(f"seed {s}: top-1 {final.top1:.2f}% after epoch {final.epoch} "
                   f"(best {best.top1:.2f}% at epoch {best.epoch}) -> {run_dir}")
