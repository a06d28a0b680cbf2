"""Run records: the JSON file every training run leaves behind, and how to write and read one.

A record holds what is needed to trust and compare a run (DESIGN.md, "Contracts"): the resolved
recipe and its config hash, the seed, the environment, the data it saw (fingerprint and class
counts), the per-epoch history, last-epoch and best-epoch metrics with per-class accuracy (so the
Head/Body/Tail groups of docs/method.md section 2 can be recomputed under any scheme), and timings.

Accuracies are percentages (0-100), like the thesis tables. Records are written atomically
(temp file in the same directory, fsync, ``os.replace``), so a crash never leaves half a file.
Where records live and how they are found is :mod:`ltrank.run_folder`'s business.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ltrank.atomic import atomic_write_text
from ltrank.errors import LtrankError, format_validation_error
from ltrank.groups import group_accuracies

FORMAT_VERSION = 1

#: How a run ended (or that it has not): every ending is recorded (``ltrank.engine.run``).
Status = Literal["running", "finished", "diverged", "failed", "interrupted"]
ENDINGS: tuple[str, ...] = ("finished", "diverged", "failed", "interrupted")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Environment(_Strict):
    """Software and hardware a run used."""

    ltrank: str = Field(..., description="ltrank version")
    torch: str = Field(..., description="torch version")
    python: str = Field(..., description="Python version")
    device: str = Field(..., description="device the run trained on, e.g. 'cpu' or 'cuda:0 (NVIDIA H100)'")
    processes: int = Field(1, ge=1, description="data-parallel processes (torchrun) of the last session of the run; "
                           "device names rank 0's")
    git_sha: Optional[str] = Field(
        None, description="commit of ltrank's code: its git checkout, or the clone it was built from (pip install .)")
    git_sha_note: Optional[str] = Field(None, description="why git_sha is absent, when it is")
    plugins: list[str] = Field(default_factory=list, description="plugin distributions used, as 'name version'")


class DataInfo(_Strict):
    """The long-tailed training set a run saw (docs/method.md section 1)."""

    source_name: str = Field(..., description="dataset name, e.g. 'cifar10' or 'cifar100'")
    source_kind: str = Field(..., description="how it was read: 'torchvision', 'npz', 'folder', ...")
    source_path: Optional[str] = Field(None, description="file or folder the data came from, if any")
    fingerprint: str = Field(..., description="hash of the selected training indices/labels and the test set")
    class_names: list[str] = Field(..., description="class names in label order")
    class_counts: list[int] = Field(..., description="training images per class (n_c), in label order")
    construction_seed: int = Field(..., description="seed of the long-tail selection (0 by default)")
    imbalance_ratio: float = Field(..., gt=0, description="n_max / n_min of the construction (measured for 'asis')")
    profile: str = Field(..., description="'exp', 'step' or 'asis' (the source as it is)")
    note: Optional[str] = Field(None, description="free text, e.g. provenance caveats of the source")

    @field_validator("class_counts")
    @classmethod
    def _non_negative(cls, counts: list[int]) -> list[int]:
        if any(c < 0 for c in counts):
            raise ValueError("class counts must be >= 0")
        return counts

    def label(self) -> str:
        """A short dataset label for tables, e.g. 'cifar10 IR100'."""
        return f"{self.source_name} IR{self.imbalance_ratio:g}" + ("" if self.profile == "exp" else f" {self.profile}")


class EpochStats(_Strict):
    """One line of the training history."""

    epoch: int = Field(..., ge=1, description="epoch number, 1-indexed")
    lr: float = Field(..., ge=0, description="learning rate used in this epoch")
    train_loss: float = Field(..., description="mean training loss over the epoch's batches")
    train_acc: float = Field(..., ge=0, le=100, description="training top-1 accuracy (%) over the epoch")
    test_acc: Optional[float] = Field(None, ge=0, le=100, description="test top-1 (%) after the epoch; None if not evaluated")
    seconds: float = Field(..., ge=0, description="wall-clock seconds of the epoch (training and evaluation)")


class Metrics(_Strict):
    """Test metrics of one epoch; ``per_class`` is the source of truth, ``groups`` derive from it."""

    epoch: int = Field(..., ge=0, description="epoch these metrics were measured after (0: a run that trains "
                       "nothing, e.g. a post-hoc adjustment of the model it starts from)")
    top1: float = Field(..., ge=0, le=100, description="top-1 accuracy (%) on the test set")
    per_class: list[float] = Field(..., description="accuracy (%) of each class, in label order")
    groups: dict[str, dict[str, Optional[float]]] = Field(
        default_factory=dict,
        description="scheme ('thirds', 'shots') -> group name -> accuracy (%); None for an empty group",
    )

    @field_validator("per_class")
    @classmethod
    def _percentages(cls, values: list[float]) -> list[float]:
        if any(not (0.0 <= v <= 100.0) for v in values):
            raise ValueError("per-class accuracies are percentages in [0, 100]")
        return values

    def group(self, scheme: str, class_counts: list[int]) -> dict[str, Optional[float]]:
        """Group accuracies under ``scheme``: the stored ones, else recomputed from per-class."""
        stored = self.groups.get(scheme)
        return stored if stored is not None else group_accuracies(self.per_class, class_counts, scheme)


class Timings(_Strict):
    """Where the run's time went, in seconds (filled in as the run goes)."""

    total_seconds: float = Field(0.0, ge=0, description="wall-clock seconds from start to end of the run")
    epoch_mean_seconds: float = Field(0.0, ge=0, description="mean seconds per epoch")
    data_seconds: float = Field(0.0, ge=0, description="seconds spent building the dataset")
    eval_seconds: float = Field(0.0, ge=0, description="seconds spent evaluating on the test set")


class InitSource(_Strict):
    """The trained run a run started from (``train.init_from``), as it was when it was used."""

    path: str = Field(..., description="the checkpoint file read")
    recipe_name: Optional[str] = Field(None, description="recipe of that run (None: a bare checkpoint)")
    config_hash: Optional[str] = Field(None, description="its config hash")
    seed: Optional[int] = Field(None, description="its seed")
    finished_at: Optional[str] = Field(None, description="when it finished (ISO 8601, UTC)")
    epochs: Optional[int] = Field(None, description="epochs it trained")
    method_key: Optional[str] = Field(None, description="its method key (ltrank.compare.methods), e.g. 'cbdelta'")
    method_label: Optional[str] = Field(None, description="its table label, e.g. 'AP CB Delta (beta 0.99)'")
    logit_scale: Optional[float] = Field(
        None, description="factor its loss applied to the model's logits before the softmax (LDAM: s; else 1); "
        "post-hoc logit adjustment needs it")


class PosthocInfo(_Strict):
    """A post-hoc adjustment ``ltrank eval --posthoc`` applied to a trained run (docs/recipes.md,
    "Decoupled training"); the record's recipe is then the source run's."""

    method: Literal["tau-norm", "logit-adjust", "ncm"] = Field(..., description="the adjustment")
    tau: Optional[float] = Field(None, description="tau used (None for ncm)")
    tau_scores: Optional[dict[str, float]] = Field(
        None, description="tau-norm=auto: validation balanced accuracy (fraction) of every tau tried, keyed by tau")


class SkippedImages(_Strict):
    """Images of a streamed source that failed to decode: listed once each, skipped, counted."""

    files: list[dict[str, str]] = Field(default_factory=list, description="each file once: {path, reason}")
    skipped_samples: int = Field(0, ge=0, description="training/evaluation samples skipped because of them")


class RunRecord(_Strict):
    """Everything one training run leaves behind (saved as ``record.json`` in its run directory)."""

    format_version: int = Field(FORMAT_VERSION, description="version of this record format")
    status: Status = Field(
        ..., description="running, finished, diverged (non-finite loss or logits), failed (an error; see reason "
        "and the run folder's error.log) or interrupted (Ctrl-C / SIGTERM; resumable)",
    )
    reason: Optional[str] = Field(None, description="one line saying why a run did not finish")
    recipe_name: str = Field(..., description="recipe name, e.g. 'cifar100-ir100-cbdelta'")
    recipe: dict = Field(..., description="the resolved recipe (all defaults filled in)")
    config_hash: str = Field(..., description="hash of the resolved recipe without seed and paths")
    seed: int = Field(..., description="run seed (model init, shuffling, augmentation)")
    environment: Environment = Field(..., description="software and device")
    data: DataInfo = Field(..., description="the training data")
    init_from: Optional[InitSource] = Field(None, description="the trained run this run started from, if any")
    posthoc: Optional[PosthocInfo] = Field(
        None, description="set on the record of a post-hoc adjustment of the run named by init_from")
    warnings: list[str] = Field(default_factory=list, description="things the run noticed, e.g. unexpected data counts")
    skipped_images: Optional[SkippedImages] = Field(None, description="images that failed to decode (streamed sources)")
    history: list[EpochStats] = Field(default_factory=list, description="one entry per finished epoch")
    final: Optional[Metrics] = Field(None, description="metrics after the last epoch (what the thesis reports)")
    best: Optional[Metrics] = Field(None, description="metrics of the epoch with the best test top-1")
    timings: Timings = Field(default_factory=Timings, description="time spent")
    started_at: str = Field(..., description="ISO 8601 start time (UTC)")
    finished_at: Optional[str] = Field(None, description="ISO 8601 end time (UTC); None while running")

    @field_validator("format_version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version != FORMAT_VERSION:
            raise ValueError(f"record format {version} is not supported by this ltrank (reads format {FORMAT_VERSION})")
        return version


def now_iso() -> str:
    """The current UTC time as an ISO 8601 string, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: Written into the built package by ltrank/_build_hook.py: the commit of the clone it was built from.
BUILD_INFO = "_build_info.json"


def git_commit(root: Path) -> tuple[Optional[str], Optional[str]]:
    """(HEAD commit of the git checkout at ``root``, None), or (None, why not)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except OSError:
        return None, f"{root} is a git checkout but git is not installed"
    except subprocess.SubprocessError:
        return None, f"git rev-parse timed out in {root}"
    sha = out.stdout.strip()
    return (sha, None) if out.returncode == 0 and sha else (None, f"git rev-parse failed in {root}")


def _git_sha(package: Optional[Path] = None) -> tuple[Optional[str], Optional[str]]:
    """The commit ltrank's code comes from and, when there is none, why.

    Run from a clone (or an editable install) the package sits in a git checkout: its HEAD.
    Installed with ``pip install .`` from a clone, the build hook (ltrank/_build_hook.py) baked the clone's commit into
    :data:`BUILD_INFO` beside this module. Anything else (an sdist, a wheel built elsewhere)
    carries no commit.
    """
    package = package or Path(__file__).resolve().parent
    if (package.parent / ".git").exists():
        return git_commit(package.parent)
    baked = package / BUILD_INFO
    if not baked.is_file():
        return None, "ltrank was not installed from a git clone, so its commit is unknown"
    try:
        info = json.loads(baked.read_text(encoding="utf-8"))
        return info.get("git_sha") or None, info.get("git_sha_note") or None
    except (OSError, ValueError, AttributeError):
        return None, f"{baked} is unreadable"


def collect_environment(device: str, plugins: Iterable[str] = (), processes: int = 1) -> Environment:
    """The :class:`Environment` of this process; ``plugins`` are 'dist version' strings, ``processes``
    the number of data-parallel processes training together."""
    import torch

    import ltrank

    sha, sha_note = _git_sha()
    return Environment(
        ltrank=ltrank.__version__,
        torch=torch.__version__,
        python=platform.python_version(),
        device=device,
        processes=processes,
        git_sha=sha,
        git_sha_note=sha_note,
        plugins=sorted(plugins),
    )


def _same_run(a: RunRecord, b: RunRecord) -> bool:
    return (a.config_hash, a.seed, a.started_at) == (b.config_hash, b.seed, b.started_at)


def write_record(path: str | os.PathLike[str], record: RunRecord) -> Path:
    """Write ``record`` as JSON atomically; refuse to replace a different run's record.

    The same run may rewrite its own record as it progresses (same config hash, seed and
    ``started_at``: a resumed run keeps its ``started_at``).
    """
    path = Path(path)
    if path.exists():
        try:
            previous = load_record(path)
        except LtrankError:
            previous = None
        if previous is not None and not _same_run(previous, record):
            raise LtrankError(
                f"{path} already holds the record of another run "
                f"({previous.recipe_name}, seed {previous.seed}, started {previous.started_at}); "
                "choose another --out directory"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, record.model_dump_json(indent=2) + "\n")


def load_record(path: str | os.PathLike[str]) -> RunRecord:
    """Read and validate a run record; any problem is one-line :class:`LtrankError` naming the file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LtrankError(f"{path}: no such run record; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LtrankError(f"{path}: cannot read run record ({exc}); check the file") from None
    except json.JSONDecodeError as exc:
        raise LtrankError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "the file is damaged or not a run record"
        ) from None
    try:
        return RunRecord.model_validate(raw)
    except ValidationError as exc:
        raise LtrankError(
            f"{path}: not a valid ltrank run record: {format_validation_error(exc, '').strip()}; "
            "was it written by another ltrank version?"
        ) from None
