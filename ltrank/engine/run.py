"""One training run from its start to its end: the run lifecycle.

:func:`train_one` owns everything around the training loop: the run folder and its lock
(:mod:`ltrank.run_folder`), the record, the checkpoints, the signals, and every way a run ends.
Each ending goes through one place and is recorded:

- ``finished``: the last epoch was evaluated; the record holds the results;
- ``diverged``: the loss or the logits became NaN/inf (:class:`~ltrank.engine.trainer.Diverged`);
- ``interrupted``: Ctrl-C or SIGTERM (what SLURM and ``kill`` send). The signal only sets a flag;
  the trainer stops at the next batch boundary and the epoch in progress is abandoned, so the
  checkpoint of the last finished epoch stays the resume point and ``--resume`` continues
  bit-identically on CPU. A second Ctrl-C stops at once (never in the middle of a write);
- ``failed``: any other exception. The record gets a one-line reason, the traceback goes to the
  run folder's ``error.log``, and the checkpoint of the last good epoch is kept.

Everything that can be checked before training (recipe, data, model, run folder, lock) is
checked before the record is created, so bad input leaves nothing behind. A checkpoint and its
record are written together after every epoch with signals held off, so they always agree on the
last finished epoch; a run killed with SIGKILL between the two writes is reconciled from the
checkpoint when it is resumed, and temp files of a killed write are removed then.

With several processes (torchrun; docs/distributed.md) every rank calls :func:`train_one`.
Rank 0 alone holds the folder's lock, reads and writes the record, the checkpoints and
``error.log``, and reports events; what it decides before training (skip a finished seed,
refuse a folder, the checkpoint to continue from) is shared with the other ranks
(:func:`ltrank.distributed.on_rank0`), and a failure of any rank while preparing fails every
rank (:func:`ltrank.distributed.on_every_rank`). Stops and divergence are decided together by
the trainer, so every rank ends the same way; each returns the same record.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Optional

import torch

from ltrank.data import DatasetConfig, LongTailedData
from ltrank.data.longtail import measured_ratio
from ltrank.distributed import (
    all_gather_objects,
    broadcast_object,
    on_every_rank,
    on_rank0,
    raised_together,
    rank,
    world_size,
)
from ltrank.engine import checkpoint as ckpt
from ltrank.engine.capped import capped_warnings
from ltrank.engine.device import device_label
from ltrank.engine.events import Callback, Notice, RunEnded, RunStarted, ignore
from ltrank.engine.feeds import TrainingData, load_training_data
from ltrank.engine.state import Diverged, Interrupted
from ltrank.engine.trainer import Trainer
from ltrank.errors import LtrankError, RunFailed
from ltrank.recipe import ResolvedRecipe
from ltrank.records import (
    DataInfo,
    EpochStats,
    Metrics,
    RunRecord,
    SkippedImages,
    Timings,
    collect_environment,
    now_iso,
    write_record,
)
from ltrank.run_folder import Existing, InitChoice, RunFolder, check_out_dir, resolve_init_from, run_dir
from ltrank.text import plural


def run_dir_for(out: Path, recipe: ResolvedRecipe, seed: int) -> Path:
    """The folder of ``recipe``'s run with ``seed`` under ``out``."""
    return run_dir(out, recipe.name, recipe.config_hash, seed)


def data_info(cfg: DatasetConfig, data: TrainingData) -> DataInfo:
    """The run record's description of the training set ``cfg`` produced (in memory or streamed)."""
    if isinstance(data, LongTailedData):
        digest = hashlib.sha256(json.dumps(
            {"source": data.source.fingerprint, "selected": data.manifest.selected_indices}).encode()).hexdigest()
        kind, path, ratio, note = data.source.kind, data.source.path, data.manifest.imbalance_ratio, data.source.note
    else:  # a streamed source: its lists are the split, their hash the fingerprint
        digest, kind, path = data.fingerprint, data.kind, str(data.root)
        ratio, note = measured_ratio(data.class_counts), "; ".join(data.warnings)
    return DataInfo(
        source_name=cfg.source, source_kind=kind, source_path=path, fingerprint=digest[:16],
        class_names=data.class_names, class_counts=data.class_counts, construction_seed=cfg.seed,
        imbalance_ratio=ratio, profile=cfg.profile, note=note or None,
    )


# ------------------------------------------------------------------------------ signals
class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the trainer polls between batches.

    Installed only in the main thread (Python delivers signals there). While :meth:`holding`
    is active (a checkpoint + record write) even a second signal only sets the flag. A second
    stop signal within :data:`ECHO_SECONDS` is the same request: under torchrun a Ctrl-C reaches
    each process from the terminal and once more from the launcher, which forwards it, and under
    SLURM a preempted job's SIGTERM can arrive beside the SIGINT its sweep worker forwards.
    """

    ECHO_SECONDS = 1.0

    def __init__(self) -> None:
        self.signal_name: Optional[str] = None
        self._critical = 0
        self._saved: dict[int, object] = {}
        self._first: tuple[int, float] = (0, 0.0)  # signal number and time of the first request

    def __call__(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: object) -> None:
        first = self.signal_name is None
        now = time.monotonic()
        if first:
            self._first = (signum, now)
        elif now - self._first[1] < self.ECHO_SECONDS:
            return  # a copy of the first request (launcher, scheduler)
        self.signal_name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if not first and not self._critical:
            raise KeyboardInterrupt  # asked twice: stop now (the last checkpoint stays valid)

    @contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._saved[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for signum, handler in self._saved.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            self._saved.clear()

    @contextmanager
    def holding(self) -> Iterator[None]:
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1


# ------------------------------------------------------------------------------ one run
def train_one(recipe: ResolvedRecipe, *, seed: int, out: Path, device: torch.device,
              data: Optional[TrainingData] = None, data_dir: Optional[Path] = None, resume: bool = False,
              callback: Callback = ignore, data_seconds: float = 0.0, workers: int = 0) -> Optional[RunRecord]:
    """Train (or continue) one seed of ``recipe``; returns its finished record, None if skipped.

    ``data`` may be passed in (already loaded, e.g. once for several seeds; ``data_seconds``
    then says how long that took, for the record); otherwise it is loaded from ``data_dir``
    (:func:`~ltrank.engine.feeds.load_training_data`: in memory, or streamed from disk by
    ``workers`` decoding processes).

    Raises :class:`~ltrank.errors.LtrankError` (nothing written) for problems found before
    training starts, and :class:`~ltrank.errors.RunFailed` when a started run diverges, fails or
    is interrupted; its record then says so and the checkpoint of the last good epoch stays.
    In a torch.distributed process group every rank calls it (see the module docstring);
    ``callback`` is called on rank 0 only.
    """
    folder = RunFolder(run_dir_for(out, recipe, seed))
    if rank() != 0:
        callback = ignore  # rank 0 alone reports

    def first_look() -> Optional[Existing]:
        check_out_dir(out)
        return folder.inspect(resume, load=False)

    existing = on_rank0(first_look)
    if existing is None:
        return None
    start = time.perf_counter()
    if data is None:
        data = on_every_rank(lambda: load_training_data(recipe.recipe.data, data_dir))
        data_seconds = time.perf_counter() - start
    info = data_info(recipe.recipe.data, data)
    warnings = [] if isinstance(data, LongTailedData) else list(data.warnings)
    _check_ranks_same_data(info)
    on_rank0(lambda: _check_same_data(existing, info, folder.path))

    def initial_model() -> tuple[Optional[InitChoice], Optional[dict[str, torch.Tensor]]]:
        if existing.has_checkpoint or not recipe.recipe.train.init_from:
            return None, None
        init = resolve_init_from(recipe.recipe.train.init_from, out, seed, recipe.overrides,
                                 recipe_dir=Path(recipe.source).parent)
        return init, ckpt.load_checkpoint(init.checkpoint)["model"]

    init, init_model = on_rank0(initial_model)
    stop = StopRequest()
    trainer = on_every_rank(lambda: Trainer(recipe.recipe, data, seed=seed, device=device, callback=callback,
                                            init_model=init_model, init_source=init.source if init else None,
                                            should_stop=stop, workers=workers))

    with ExitStack() as held:
        def take_folder() -> Optional[Existing]:
            held.enter_context(folder.lock())
            for orphan in folder.clean_orphans():
                callback(Notice(f"removed {orphan.name}, left by a write that was killed half-way"))
            locked = folder.inspect(resume)  # what another process may have done since the first look
            if locked is None:
                return None
            if locked.has_checkpoint != existing.has_checkpoint:
                raise LtrankError(f"{folder.path} changed while this run was starting; run the command again")
            if locked.checkpoint is not None:
                _check_same_run(locked.checkpoint, seed, recipe.config_hash, folder.path)
            return locked

        locked = on_rank0(take_folder)  # rank 0 holds the lock until the run ends
        if locked is None:
            return None
        if locked.checkpoint is not None:
            on_every_rank(lambda: trainer.load_state_dict(locked.checkpoint))
            before = int(locked.checkpoint.get("world_size", 1))
            if before != world_size():
                callback(Notice(f"continuing a run checkpointed by {plural(before, 'process', 'processes')} with "
                                f"{world_size()}: the global batches are the same (docs/distributed.md)"))
        if init is not None:
            src = init.source
            epochs = "epochs unknown" if src.epochs is None else plural(src.epochs, "epoch")
            what = f"{src.recipe_name} seed {src.seed} [{src.config_hash}], {epochs}, finished {src.finished_at}" \
                if src.recipe_name else "a checkpoint without a run record"
            callback(Notice(f"starting from {what}: {init.checkpoint}"))
            for note in init.notes:
                callback(Notice(note))
        for warning in warnings:
            callback(Notice(f"warning: {warning}"))
        return _run(recipe, seed, device, trainer, folder, locked, info, warnings, init, stop, callback,
                    start, data_seconds)


def _run(recipe: ResolvedRecipe, seed: int, device: torch.device, trainer: Trainer, folder: RunFolder,
         existing: Existing, info: DataInfo, warnings: list[str], init, stop: StopRequest, callback: Callback,
         start: float, data_seconds: float) -> RunRecord:
    """Train under the lock; every ending is recorded here and nowhere else (by rank 0)."""
    writes = rank() == 0  # rank 0 alone writes the record, the checkpoints and error.log
    previous = existing.record
    record = RunRecord(
        status="running", recipe_name=recipe.name, recipe=recipe.as_dict(), config_hash=recipe.config_hash,
        seed=seed, environment=collect_environment(device_label(device), _plugins_used(recipe), world_size()),
        data=info, init_from=init.source if init is not None else (previous.init_from if previous else None),
        warnings=warnings + capped_warnings(recipe.recipe),
        started_at=previous.started_at if previous else now_iso(),
    ) if writes else None
    base_seconds = previous.timings.total_seconds if previous else 0.0
    base_data = previous.timings.data_seconds if previous else 0.0

    def update(status: str, reason: Optional[str] = None) -> Optional[RunRecord]:
        nonlocal record
        if record is None:
            return None
        p = trainer.state
        record = record.model_copy(update={
            "status": status,
            "reason": reason,
            "history": [EpochStats(**h) for h in p.history],
            "final": Metrics(**p.final) if p.final else None,
            "best": Metrics(**p.best) if p.best else None,
            "timings": Timings(
                total_seconds=base_seconds + time.perf_counter() - start, data_seconds=base_data + data_seconds,
                epoch_mean_seconds=(p.train_seconds + p.eval_seconds) / max(p.epoch, 1),
                eval_seconds=p.eval_seconds),
            "finished_at": now_iso() if status != "running" else None,
            "skipped_images": _skipped(trainer, previous),
        })
        with stop.holding():
            write_record(folder.record_path, record)
        return record

    def save(t: Trainer) -> None:
        if not writes:
            return
        with stop.holding():  # checkpoint and record are written together, never half
            ckpt.save_checkpoint(folder.checkpoint_path, {**t.state_dict(), "config_hash": recipe.config_hash})
            update("running")

    def ended(status: str, reason: str, together: bool = True) -> RunFailed:
        update(status, reason)
        best = trainer.state.best
        callback(RunEnded(seed, status, None, best and best["top1"], best and best["epoch"], reason))
        epoch = trainer.state.epoch
        kept = f"the checkpoint of epoch {epoch} is kept" if epoch else "no epoch finished"
        failed = RunFailed(f"{reason} ({folder.path}); {kept}")
        return raised_together(failed) if together and world_size() > 1 else failed

    update("running")
    callback(RunStarted(seed, trainer.state.epoch + 1, trainer.total_epochs, trainer.batches_per_epoch,
                        device_label(device)))
    try:
        with stop.installed():
            trainer.fit(on_epoch_end=save)
    except Diverged as exc:  # with several processes, decided by all ranks together
        raise ended("diverged", f"{exc}; lower train.lr or check the loss") from None
    except (Interrupted, KeyboardInterrupt):
        how = stop.signal_name or ("a stop request of another process" if world_size() > 1 else "Ctrl-C")
        raise ended("interrupted", f"interrupted after epoch {trainer.state.epoch} ({how}); "
                                   "continue it with the same command plus --resume") from None
    except Exception as exc:  # anything else: recorded as failed, traceback to error.log
        if writes:
            _log_traceback(folder.error_log_path, exc)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        cause = message if isinstance(exc, LtrankError) else f"{type(exc).__name__}: {message}".rstrip(": ")
        where = "" if world_size() == 1 else f"rank {rank()} "  # the other ranks may have failed on their own
        log = f"traceback in {folder.error_log_path.name}; " if writes else ""
        raise ended("failed", f"{where}failed in epoch {trainer.state.epoch + 1}: {cause}; {log}fix the cause, "
                              "then continue with --resume", together=False) from None
    final = update("finished")
    state = trainer.state
    callback(RunEnded(seed, "finished", state.final and state.final["top1"], state.best and state.best["top1"],
                      state.best and state.best["epoch"], None))
    return broadcast_object(final)  # the same record on every rank


def _skipped(trainer: Trainer, previous: Optional[RunRecord]) -> Optional[SkippedImages]:
    """Images that failed to decode, over this run and the runs it resumed."""
    now = trainer.feed.failures()
    before = previous.skipped_images if previous else None
    if now is None and before is None:
        return None
    files = {f["path"]: f["reason"] for f in (before.files if before else [])}
    files.update({f["path"]: f["reason"] for f in (now["files"] if now else [])})
    skipped = (before.skipped_samples if before else 0) + (now["skipped_samples"] if now else 0)
    return SkippedImages(files=[{"path": p, "reason": r} for p, r in files.items()], skipped_samples=skipped)


def _log_traceback(path: Path, exc: BaseException) -> None:
    """Append the traceback of ``exc`` to the run's error log (a log, so appended, not replaced)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"--- {now_iso()}\n{text}\n")


def _check_same_data(existing: Existing, info: DataInfo, run_dir: Path) -> None:
    """A resumed run must see the data it trained on."""
    if existing.record is not None and existing.record.data.fingerprint != info.fingerprint:
        raise LtrankError(
            f"{run_dir}: the data found now (fingerprint {info.fingerprint}) is not the data this run trained on "
            f"({existing.record.data.fingerprint}); point --data-dir at the original data, or start a new run elsewhere"
        )


def _check_ranks_same_data(info: DataInfo) -> None:
    """Every rank must train on the same data (each node reads its own copy): compared by fingerprint."""
    prints = all_gather_objects(info.fingerprint)
    if len(set(prints)) > 1:
        seen = ", ".join(f"rank {r}: {fp}" for r, fp in enumerate(prints))
        raise raised_together(LtrankError(
            f"the processes found different training data ({seen}); give every node the same data (--data-dir)"))


def _check_same_run(state: dict, seed: int, config_hash: str, run_dir: Path) -> None:
    """A checkpoint moved into another run's folder must not be continued as that run."""
    if int(state["seed"]) != seed:
        raise LtrankError(f"{run_dir}: its checkpoint belongs to seed {state['seed']}, not {seed}; delete it")
    if state.get("config_hash") != config_hash:
        raise LtrankError(f"{run_dir}: its checkpoint belongs to config {state.get('config_hash')}, not {config_hash} "
                          "(a copied or renamed folder?); delete it or resume it from its own folder")


def _plugins_used(recipe: ResolvedRecipe) -> list[str]:
    """'distribution version' of each plugin the recipe's components come from."""
    from ltrank.catalog import BACKBONES, LOSSES, SCHEDULES

    r = recipe.recipe
    names = [(LOSSES, r.loss.name), (BACKBONES, r.model.backbone), (SCHEDULES, r.schedule.name)]
    names += [(LOSSES, s.loss.name) for s in r.train.stages if s.loss]
    records = {reg.plugin_record(name) for reg, name in names}
    return sorted(f"{rec.distribution} {rec.version}" for rec in records if rec is not None)
