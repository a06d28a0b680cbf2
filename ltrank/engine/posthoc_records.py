"""Run records of post-hoc adjustments (``ltrank eval --posthoc``): what they hold, where they go.

A post-hoc adjustment of a finished run is recorded as a run of its own, so that ``ltrank
compare`` shows it as a row ("CE + tau-norm (tau 1.0)"). The record keeps the source run's
resolved recipe (model and data are that run's); ``init_from`` names the source run (checkpoint,
recipe, config hash, seed, method), ``posthoc`` the adjustment, and its metrics are those of the
adjusted model after the source's last epoch. Its config hash is that of the source's recipe plus
the adjustment (its tau, or "auto"), so one adjustment of several seeds of one experiment forms
one row, never merged with the source's row or another adjustment's.

Where: in the source's run folder, ``<run folder>/posthoc/<adjustment>/record.json``, with
``<adjustment>`` one of ``tau-norm-1.0``, ``tau-norm-auto``, ``logit-adjust-1.0``, ``ncm``.
``ltrank compare runs/`` finds them (it searches folders recursively); the run-folder rules of
``ltrank train`` look only at the run folder's own ``record.json``. Running the same adjustment
again replaces its record (it is recomputed from the same checkpoint).
"""

from __future__ import annotations

from pathlib import Path

from ltrank.errors import LtrankError
from ltrank.rebalance.posthoc import PosthocResult
from ltrank.rebalance.provenance import source_of
from ltrank.rebalance.spec import PosthocSpec, format_tau
from ltrank.recipe import config_hash
from ltrank.records import (
    DataInfo,
    Metrics,
    PosthocInfo,
    RunRecord,
    Timings,
    collect_environment,
    load_record,
    now_iso,
    write_record,
)
from ltrank.run_folder import RECORD_FILENAME, path_component

POSTHOC_DIRNAME = "posthoc"


def posthoc_dirname(spec: PosthocSpec) -> str:
    """``tau-norm-1.0``, ``tau-norm-auto``, ``logit-adjust-0.5``, ``ncm``."""
    if spec.kind == "ncm":
        return "ncm"
    return f"{spec.kind}-{'auto' if spec.tau is None else format_tau(spec.tau)}"


def posthoc_record_path(run_dir: Path, spec: PosthocSpec) -> Path:
    """Where the record of ``spec`` applied to the run in ``run_dir`` goes."""
    return Path(run_dir) / POSTHOC_DIRNAME / path_component(posthoc_dirname(spec), "adjustment") / RECORD_FILENAME


def posthoc_config_hash(source_recipe: dict, spec: PosthocSpec) -> str:
    """The config hash of ``spec`` applied to runs of ``source_recipe`` (tau None: "auto")."""
    return config_hash({**source_recipe, "posthoc": {"method": spec.kind, "tau": spec.tau}})


def check_posthoc_record(path: Path, source: RunRecord, spec: PosthocSpec) -> None:
    """Refuse, before any work, a record path held by something else than this adjustment's record."""
    if not path.exists():
        return
    previous = load_record(path)
    if previous.posthoc is None or (previous.config_hash, previous.seed) != \
            (posthoc_config_hash(source.recipe, spec), source.seed):
        raise LtrankError(f"{path} holds the record of another run; move it away, then run the command again")


def posthoc_record(source: RunRecord, checkpoint: Path, spec: PosthocSpec, result: PosthocResult,
                   metrics: Metrics, data: DataInfo, device: str, seconds: float) -> RunRecord:
    """The finished record of ``spec`` applied to run ``source`` (its ``checkpoint``).

    ``metrics`` are the adjusted model's; ``data`` is the data it was evaluated on; ``device`` a
    device label; ``seconds`` the time the adjustment and its evaluation took.
    """
    now = now_iso()
    scores = {format_tau(t): v for t, v in result.tau_scores.items()} if result.tau_scores else None
    return RunRecord(
        status="finished", recipe_name=source.recipe_name, recipe=source.recipe,
        config_hash=posthoc_config_hash(source.recipe, spec), seed=source.seed,
        environment=collect_environment(device, source.environment.plugins), data=data,
        init_from=source_of(checkpoint, source),
        posthoc=PosthocInfo(method=spec.kind, tau=result.tau, tau_scores=scores),
        final=metrics, best=metrics, timings=Timings(total_seconds=seconds, eval_seconds=seconds),
        started_at=now, finished_at=now,
    )


def write_posthoc_record(path: Path, record: RunRecord) -> Path:
    """Write ``record`` atomically at ``path``, replacing an earlier record of the same adjustment."""
    if path.exists():
        previous = load_record(path)
        if previous.posthoc is not None and (previous.config_hash, previous.seed) == (record.config_hash, record.seed):
            record = record.model_copy(update={"started_at": previous.started_at})  # the same run, recomputed
    return write_record(path, record)
