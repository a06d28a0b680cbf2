"""Atomic file writes: a crash or Ctrl-C never leaves half a result, checkpoint or manifest."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ltrank.errors import LtrankError

TEMP_SUFFIX = ".tmp"


def atomic_write(path: Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, flush it to disk, then move it onto ``path`` in one step.

    The temp file lives in the target folder (so ``os.replace`` is atomic) and gets the normal
    permissions a new file would get (mkstemp makes it 0600).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise LtrankError(f"cannot write {path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """:func:`atomic_write` for a UTF-8 text file."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def remove_orphaned_temp_files(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the temp files a killed :func:`atomic_write` of ``folder/<name>`` left behind.

    Only call this while no other process can be writing in ``folder`` (e.g. holding the run
    folder's lock): a live writer's temp file looks the same.
    """
    removed = []
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*{TEMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
