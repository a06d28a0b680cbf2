"""Run folders: where a run's files live, who may write them, and how they are found again.

Layout: ``<out>/<recipe name>/<config hash>/seed<N>/`` holding

- ``record.json``: the run record (:mod:`ltrank.records`), rewritten after every epoch;
- ``checkpoint.pt``: the state after the last finished epoch (:mod:`ltrank.engine.checkpoint`);
- ``error.log``: the traceback of a run that failed (the terminal and the record get one line);
- ``.lock``: held by the one process writing the folder (``host pid time`` inside).

Rules for starting a run in a folder (runs never overwrite each other):

- nothing there: a fresh run;
- a finished record: an error without ``--resume``; with ``--resume`` the seed is skipped;
- a diverged run: always an error (resuming would diverge again): delete the folder or change
  the recipe;
- an unfinished run (failed, interrupted, a record left at "running" by a killed process, or a
  checkpoint without a record): an error without ``--resume``; with ``--resume`` it continues
  from its checkpoint (or restarts when no epoch finished). Its data must be the data it saw.

Every name that becomes a path component is checked (:func:`path_component`), so no recipe
name can make a run write outside ``--out``.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ltrank.atomic import remove_orphaned_temp_files
from ltrank.errors import LtrankError
from ltrank.records import InitSource, RunRecord, load_record

RECORD_FILENAME = "record.json"
CHECKPOINT_FILENAME = "checkpoint.pt"
ERROR_LOG_FILENAME = "error.log"
LOCK_FILENAME = ".lock"

_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def path_component(name: str, what: str) -> str:
    """``name`` if it is safe as ONE folder name (no separators, not ``.``/``..``, not hidden)."""
    if not _COMPONENT.match(name) or name in (".", ".."):
        raise LtrankError(
            f"{what} {name!r} cannot name a run folder; use letters, digits, '.', '_', '+' or '-', starting with a "
            "letter or digit (rename the recipe file)"
        )
    return name


def run_dir(out: Path, recipe_name: str, config_hash: str, seed: int) -> Path:
    """``out/<recipe>/<config hash>/seed<N>`` with every component checked."""
    return Path(out) / path_component(recipe_name, "recipe name") / path_component(config_hash, "config hash") / f"seed{int(seed)}"


def check_out_dir(out: Path) -> None:
    """``--out`` must be a folder ltrank can create and write in: checked before any work."""
    out = Path(out)
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "--out" if probe == out else f"--out {out}: {probe}"
        raise LtrankError(f"{where} is a file, not a folder; give a folder for the runs (e.g. --out runs)")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise LtrankError(f"--out {out}: cannot write in {probe} (permission denied); choose another --out")


# ------------------------------------------------------------------------------ the lock
def _holder(lock_path: Path) -> str:
    try:
        text = lock_path.read_text(encoding="utf-8").split()
    except OSError:
        return "another process"
    return f"pid {text[1]} on {text[0]}" if len(text) >= 2 else "another process"


@contextmanager
def exclusive_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` for the duration; another holder is a one-line :class:`LtrankError`.

    An ``flock`` on the open file: the kernel drops it when its process dies, so the lock of a
    killed run is never stale. The file is removed on release; a waiter that opened the old
    file notices the switch (different inode) and tries again.
    """
    import fcntl

    path = Path(folder) / LOCK_FILENAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LtrankError(
                f"{folder} is being written by {_holder(path)}; wait for it to finish, or use another --out"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file between our open and flock: take the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
        yield
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------ one folder
@dataclass
class Existing:
    """What a run folder already holds: the record as read, and whether there is a checkpoint
    (``checkpoint`` holds it loaded when :meth:`RunFolder.inspect` was asked to load it)."""

    record: Optional[RunRecord]
    has_checkpoint: bool
    checkpoint: Optional[dict[str, Any]] = None


@dataclass(frozen=True)
class RunFolder:
    """One run's folder."""

    path: Path

    @property
    def record_path(self) -> Path:
        return self.path / RECORD_FILENAME

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILENAME

    @property
    def error_log_path(self) -> Path:
        return self.path / ERROR_LOG_FILENAME

    def lock(self):
        """Create the folder and hold its lock (see :func:`exclusive_lock`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        return exclusive_lock(self.path)

    def clean_orphans(self) -> list[Path]:
        """Remove temp files of writes killed half-way (call while holding the lock)."""
        return remove_orphaned_temp_files(self.path, (RECORD_FILENAME, CHECKPOINT_FILENAME))

    def inspect(self, resume: bool, load: bool = True) -> Optional[Existing]:
        """Apply the folder rules; None means 'skip this seed' (finished, and --resume given).

        With ``load`` the checkpoint is read too (its problems are one-line errors)."""
        from ltrank.engine.checkpoint import load_checkpoint

        record = load_record(self.record_path) if self.record_path.exists() else None
        if record is not None and record.status == "finished":
            if resume:
                return None
            raise LtrankError(f"{self.path} already holds a finished run; use another --out, delete it, "
                              "or pass --resume to skip finished seeds")
        if record is not None and record.status == "diverged":
            raise LtrankError(f"{self.path} holds a diverged run; delete that folder to retry, or change the recipe "
                              "(e.g. a lower train.lr)")
        unfinished = record is not None or self.checkpoint_path.exists()
        if unfinished and not resume:
            how = f" (it {record.status})" if record is not None and record.status != "running" else ""
            raise LtrankError(f"{self.path} holds an unfinished run; pass --resume to continue it{how}, or delete the folder")
        has = self.checkpoint_path.exists()
        return Existing(record, has, load_checkpoint(self.checkpoint_path) if has and load else None)


# ------------------------------------------------------------------------------ finding records
def find_records(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Record files among ``paths``: files are taken as given, directories searched recursively
    for ``record.json``. Order: as given, each directory's records sorted; duplicates dropped."""
    found: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        if p.is_dir():
            candidates = sorted(p.rglob(RECORD_FILENAME))
        elif p.is_file():
            candidates = [p]
        else:
            raise LtrankError(f"{p}: no such file or directory; pass run records or folders that contain them")
        for c in candidates:
            key = c.resolve()
            if key not in seen:
                seen.add(key)
                found.append(c)
    return found


def locate_checkpoint(path: Path) -> Path:
    """The checkpoint file of a checkpoint path or of a run folder."""
    path = Path(path)
    ckpt_path = path / CHECKPOINT_FILENAME if path.is_dir() else path
    if not ckpt_path.is_file():
        raise LtrankError(f"{ckpt_path}: no such checkpoint; pass a checkpoint.pt or the run folder holding it")
    return ckpt_path


def record_beside(ckpt_path: Path) -> RunRecord:
    """The run record written beside a checkpoint (eval rebuilds model and data from it)."""
    record_path = Path(ckpt_path).parent / RECORD_FILENAME
    if not record_path.is_file():
        raise LtrankError(
            f"{ckpt_path}: no {RECORD_FILENAME} beside it; eval rebuilds the model and data from the run "
            "record that 'ltrank train' writes in the same folder"
        )
    return load_record(record_path)


# ------------------------------------------------------------------------------ init_from
@dataclass
class InitChoice:
    """The checkpoint ``train.init_from`` resolved to, what it is, and what the user should know."""

    checkpoint: Path
    source: InitSource
    notes: list[str] = field(default_factory=list)


def _source_of(checkpoint: Path, record: Optional[RunRecord]) -> InitSource:
    if record is None:
        return InitSource(path=str(checkpoint))
    from ltrank.rebalance.provenance import source_of

    return source_of(checkpoint, record)


def resolve_init_from(spec: str, out: Path, seed: int, overrides: Iterable[str] = (),
                      recipe_dir: Optional[Path] = None) -> InitChoice:
    """The checkpoint ``train.init_from`` names (``{seed}`` is replaced by the run seed).

    ``recipe:NAME`` means a finished run of recipe NAME with this seed under ``out``. Recipe NAME
    is ``recipe_dir/NAME.toml`` when that file exists (the folder of the recipe that names it),
    else the shipped recipe NAME. The choice rule: the run whose config hash is that of NAME
    resolved with this run's own ``--set`` overrides (or without them, when they do not apply
    to NAME) wins, and any other finished runs are named; else a single finished run is used
    and its differences from NAME are named; several runs and none matching is an error
    listing them. A path is a checkpoint file or a run folder.
    """
    spec = spec.replace("{seed}", str(seed))
    if not spec.startswith("recipe:"):
        path = Path(spec).expanduser()
        if path.is_dir():
            path = path / CHECKPOINT_FILENAME
        if not path.is_file():
            raise LtrankError(f"train.init_from: {path} not found; give a checkpoint.pt, a run folder or recipe:NAME")
        record_path = path.parent / RECORD_FILENAME
        record = load_record(record_path) if record_path.is_file() else None
        return InitChoice(path, _source_of(path, record))

    name = spec.removeprefix("recipe:")
    folder = Path(out) / path_component(name, "train.init_from recipe")
    runs = []
    for record_path in sorted(folder.glob(f"*/seed{seed}/{RECORD_FILENAME}")):
        record = load_record(record_path)
        if record.status == "finished" and (record_path.parent / CHECKPOINT_FILENAME).is_file():
            runs.append((record_path.parent / CHECKPOINT_FILENAME, record))
    if not runs:
        raise LtrankError(
            f"train.init_from: no finished run of {name} with seed {seed} under {out}; first run "
            f"'ltrank train --recipe {name} --seed {seed} --out {out}', or pass --set train.init_from=PATH"
        )
    target = _recipe_ref(name, recipe_dir)
    resolved = _expected(target, overrides)  # resolved once: its hash, and what other runs differ in
    expected = None if resolved is None else resolved.config_hash
    matching = [(p, r) for p, r in runs if r.config_hash == expected]
    others = [(p, r) for p, r in runs if r.config_hash != expected]
    if matching:
        path, record = matching[0]
        notes = [f"also found other finished runs of {name} seed {seed}, not used: "
                 + ", ".join(str(p.parent) for p, _ in others)] if others else []
        return InitChoice(path, _source_of(path, record), notes)
    if len(runs) == 1:
        path, record = runs[0]
        diff = _differences(record.recipe, resolved)
        note = (f"the run of {name} used ({path.parent}) was trained with settings that differ from the recipe "
                f"{name}: {diff}" if diff else "")
        return InitChoice(path, _source_of(path, record), [note] if note else [])
    listing = "; ".join(f"{p.parent} ({_differences(r.recipe, resolved) or 'same settings'})" for p, r in runs)
    raise LtrankError(
        f"train.init_from: {len(runs)} finished runs of {name} seed {seed} under {out} and none has the recipe's "
        f"own settings: {listing}; pass one with --set train.init_from=PATH"
    )


def _recipe_ref(name: str, recipe_dir: Optional[Path]) -> str:
    """A recipe file beside the naming recipe, else the shipped name."""
    if recipe_dir is not None and (Path(recipe_dir) / f"{name}.toml").is_file():
        return str(Path(recipe_dir) / f"{name}.toml")
    return name


def _expected(name: str, overrides: Iterable[str]):
    from ltrank.recipe import load_recipe

    try:
        return load_recipe(name, list(overrides))
    except LtrankError:
        try:
            return load_recipe(name)
        except LtrankError:
            return None


def _differences(recipe: dict, resolved: Any, limit: int = 4) -> str:
    """``train.epochs 3 (recipe: 200), ...``: where a run's resolved recipe differs from the
    recipe it names (``resolved``; nothing to say when that recipe could not be resolved)."""
    if resolved is None:
        return ""
    ours, theirs = _flatten(recipe), _flatten(resolved.as_dict())
    keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k) and k != "description")
    parts = [f"{k} {ours.get(k)!r} (recipe: {theirs.get(k)!r})" for k in keys[:limit]]
    return ", ".join(parts) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}
