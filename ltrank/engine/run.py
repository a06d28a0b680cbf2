"""One training run on disk: its folder, checkpoint and record, and the rules that protect them.

Layout: ``<out>/<recipe name>/<config hash>/seed<N>/`` holding ``record.json`` and
``checkpoint.pt``. Rules (runs never overwrite each other):

- nothing there: a fresh run;
- a finished record: an error without ``--resume``; with ``--resume`` the seed is skipped;
- an unfinished run (status running/interrupted, or a checkpoint without record): an error
  without ``--resume``; with ``--resume`` it continues from its checkpoint (or restarts from
  scratch when it never finished an epoch);
- a diverged run: always an error (resuming would diverge again); delete the folder or change
  the recipe.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ltrank.data import DatasetConfig, LongTailedData, load_longtailed
from ltrank.engine import checkpoint as ckpt
from ltrank.engine.events import Callback, RunEnded, RunStarted, ignore
from ltrank.engine.trainer import Diverged, Trainer
from ltrank.errors import LtrankError, RunFailed
from ltrank.recipe import ResolvedRecipe
from ltrank.results import (
    RECORD_FILENAME,
    DataInfo,
    EpochStats,
    Metrics,
    RunRecord,
    Timings,
    collect_environment,
    load_record,
    now_iso,
    write_record,
)


def run_dir_for(out: Path, recipe: ResolvedRecipe, seed: int) -> Path:
    return out / recipe.name / recipe.config_hash / f"seed{seed}"


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda' (or 'cuda:N'), or 'auto' (CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LtrankError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise LtrankError(f"--device {name!r}: use cpu, cuda or auto") from None


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def data_info(cfg: DatasetConfig, data: LongTailedData) -> DataInfo:
    """The run record's description of the training set ``cfg`` produced."""
    digest = hashlib.sha256(json.dumps(
        {"source": data.source.fingerprint, "selected": data.manifest.selected_indices}).encode()).hexdigest()
    return DataInfo(
        source_name=cfg.source, source_kind=data.source.kind, source_path=data.source.path,
        fingerprint=digest[:16], class_names=data.class_names, class_counts=data.class_counts,
        construction_seed=cfg.seed, imbalance_ratio=data.manifest.imbalance_ratio, profile=cfg.profile,
        note=data.source.note or None,
    )


# ------------------------------------------------------------------------------ init_from
def resolve_init(spec: str, out: Path, seed: int) -> Path:
    """The checkpoint named by ``train.init_from`` (``{seed}`` is replaced by the run seed).

    ``recipe:NAME`` means the one finished run of recipe NAME with this seed under ``out``.
    """
    spec = spec.replace("{seed}", str(seed))
    if spec.startswith("recipe:"):
        name = spec.removeprefix("recipe:")
        finished = [p.parent for p in sorted((out / name).glob(f"*/seed{seed}/{RECORD_FILENAME}"))
                    if load_record(p).status == "finished"]
        if not finished:
            raise LtrankError(
                f"train.init_from: no finished run of {name} with seed {seed} under {out}; first run "
                f"'ltrank train --recipe {name} --seed {seed} --out {out}', or pass --set train.init_from=PATH"
            )
        if len(finished) > 1:
            raise LtrankError(
                f"train.init_from: {len(finished)} finished runs of {name} seed {seed} under {out} "
                f"({', '.join(str(p) for p in finished)}); pass one with --set train.init_from=PATH"
            )
        return finished[0] / ckpt.CHECKPOINT_FILENAME
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / ckpt.CHECKPOINT_FILENAME
    if not path.is_file():
        raise LtrankError(f"train.init_from: {path} not found; give a checkpoint.pt, a run folder or recipe:NAME")
    return path


# ------------------------------------------------------------------------------ folder rules
@dataclass
class Existing:
    """What a run folder already holds."""

    record: Optional[RunRecord]
    checkpoint: Optional[dict]


def inspect_run_dir(run_dir: Path, resume: bool) -> Optional[Existing]:
    """Apply the folder rules; None means 'skip this seed' (finished, and --resume given)."""
    record_path, ckpt_path = run_dir / RECORD_FILENAME, run_dir / ckpt.CHECKPOINT_FILENAME
    record = load_record(record_path) if record_path.exists() else None
    if record is not None and record.status == "finished":
        if resume:
            return None
        raise LtrankError(f"{run_dir} already holds a finished run; use another --out, delete it, "
                          "or pass --resume to skip finished seeds")
    if record is not None and record.status == "diverged":
        raise LtrankError(f"{run_dir} holds a diverged run; delete that folder to retry, or change the recipe "
                          "(e.g. a lower train.lr)")
    unfinished = record is not None or ckpt_path.exists()
    if unfinished and not resume:
        raise LtrankError(f"{run_dir} holds an unfinished run; pass --resume to continue it, or delete the folder")
    state = ckpt.load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    return Existing(record, state)


# ------------------------------------------------------------------------------ one run
def train_one(recipe: ResolvedRecipe, *, seed: int, out: Path, device: torch.device,
              data: Optional[LongTailedData] = None, data_dir: Optional[Path] = None, resume: bool = False,
              callback: Callback = ignore, data_seconds: float = 0.0) -> Optional[RunRecord]:
    """Train (or continue) one seed of ``recipe``; returns its finished record, None if skipped.

    ``data`` may be passed in (already loaded, e.g. once for several seeds; ``data_seconds``
    then says how long that took, for the record); otherwise it is loaded from ``data_dir``.

    Raises :class:`~ltrank.errors.RunFailed` when the loss diverges or the run is interrupted;
    its record then says so and the checkpoint of the last good epoch stays.
    """
    run_dir = run_dir_for(out, recipe, seed)
    config_hash = recipe.config_hash  # hashes the whole resolved recipe: once, not per epoch
    existing = inspect_run_dir(run_dir, resume)
    if existing is None:
        return None
    start = time.perf_counter()
    if data is None:
        data = load_longtailed(recipe.recipe.data, data_dir)
        data_seconds = time.perf_counter() - start
    init_model = None
    if existing.checkpoint is None and recipe.recipe.train.init_from:
        init_model = ckpt.model_state_from(resolve_init(recipe.recipe.train.init_from, out, seed))
    trainer = Trainer(recipe.recipe, data, seed=seed, device=device, callback=callback, init_model=init_model)
    if existing.checkpoint is not None:
        _check_same_run(existing.checkpoint, seed, config_hash, run_dir)
        trainer.load_state_dict(existing.checkpoint)
    record = RunRecord(
        status="running", recipe_name=recipe.name, recipe=recipe.as_dict(), config_hash=config_hash,
        seed=seed, environment=collect_environment(device_label(device), _plugins_used(recipe)),
        data=data_info(recipe.recipe.data, data),
        started_at=existing.record.started_at if existing.record else now_iso(),
    )
    base_seconds = existing.record.timings.total_seconds if existing.record else 0.0
    base_data = existing.record.timings.data_seconds if existing.record else 0.0

    def update(status: str) -> RunRecord:
        p = trainer.progress
        nonlocal record
        record = record.model_copy(update={
            "status": status,
            "history": [EpochStats(**h) for h in p.history],
            "final": Metrics(**p.final) if p.final else None,
            "best": Metrics(**p.best) if p.best else None,
            "timings": Timings(
                total_seconds=base_seconds + time.perf_counter() - start, data_seconds=base_data + data_seconds,
                epoch_mean_seconds=(p.train_seconds + p.eval_seconds) / max(p.epoch, 1),
                eval_seconds=p.eval_seconds),
            "finished_at": now_iso() if status != "running" else None,
        })
        write_record(run_dir / RECORD_FILENAME, record)
        return record

    def save(t: Trainer) -> None:
        ckpt.save_checkpoint(run_dir / ckpt.CHECKPOINT_FILENAME, {**t.state_dict(), "config_hash": config_hash})
        update("running")

    update("running")
    callback(RunStarted(seed, trainer.progress.epoch + 1, trainer.total_epochs, trainer.batches_per_epoch,
                        device_label(device)))
    try:
        trainer.fit(on_epoch_end=save)
    except Diverged as exc:
        update("diverged")
        callback(RunEnded(seed, "diverged", None, _top1(trainer.progress.best), _epoch(trainer.progress.best)))
        kept = f"the checkpoint of epoch {trainer.progress.epoch} is kept" if trainer.progress.epoch else "no epoch finished"
        raise RunFailed(f"{exc} ({run_dir}); {kept}; lower train.lr or check the loss") from None
    except KeyboardInterrupt:
        update("interrupted")
        callback(RunEnded(seed, "interrupted", None, _top1(trainer.progress.best), _epoch(trainer.progress.best)))
        raise RunFailed(f"interrupted after epoch {trainer.progress.epoch} ({run_dir}); "
                        "continue it with the same command plus --resume") from None
    final = update("finished")
    callback(RunEnded(seed, "finished", _top1(trainer.progress.final), _top1(trainer.progress.best),
                      _epoch(trainer.progress.best)))
    return final


def _top1(metrics: Optional[dict]) -> Optional[float]:
    return None if metrics is None else metrics["top1"]


def _epoch(metrics: Optional[dict]) -> Optional[int]:
    return None if metrics is None else metrics["epoch"]


def _check_same_run(state: dict, seed: int, config_hash: str, run_dir: Path) -> None:
    """A checkpoint moved into another run's folder must not be continued as that run."""
    if int(state["seed"]) != seed:
        raise LtrankError(f"{run_dir}: its checkpoint belongs to seed {state['seed']}, not {seed}; delete it")
    if state.get("config_hash") != config_hash:
        raise LtrankError(f"{run_dir}: its checkpoint belongs to config {state.get('config_hash')}, not {config_hash} "
                          "(a copied or renamed folder?); delete it or resume it from its own folder")


def _plugins_used(recipe: ResolvedRecipe) -> list[str]:
    """'distribution version' of each plugin the recipe's components come from."""
    from ltrank.registries import BACKBONES, LOSSES, SCHEDULES

    r = recipe.recipe
    names = [(LOSSES, r.loss.name), (BACKBONES, r.model.backbone), (SCHEDULES, r.schedule.name)]
    names += [(LOSSES, s.loss.name) for s in r.train.stages if s.loss]
    origins = {reg.origin(name) for reg, name in names}
    return sorted(o.split(" (entry point")[0] for o in origins if o != "built-in")
