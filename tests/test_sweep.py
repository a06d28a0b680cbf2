"""`ltrank sweep`: planning, run-folder bookkeeping, the dispatch loop, the executors, and end to end.

Most tests run no training: records are fabricated (tests/record_factory.py) and the dispatch
loop is driven by an in-process executor. The end-to-end tests at the bottom train the tiny
recipe (tests/_tiny_recipe.py) in real worker processes: two workers with a crashing run,
SIGTERM to a sweep and the rerun, and the submitit (local) executor with a preempted job.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import pytest
from _tiny_recipe import tiny_recipe
from record_factory import make_record
from typer.testing import CliRunner

from ltrank.cli.app import app
from ltrank.errors import LtrankError
from ltrank.recipe import load_recipe, recipes_dir
from ltrank.records import Status, load_record, write_record
from ltrank.run_folder import RECORD_FILENAME
from ltrank.sweep.dispatch import Exited, StopFlag, run_sweep
from ltrank.sweep.local import LocalExecutor
from ltrank.sweep.plan import expand_recipe_args, plan_runs
from ltrank.sweep.spec import RunSpec
from ltrank.sweep.status import failure_reason, inspect, move_aside, settle
from ltrank.sweep.worker import LOG_FILENAME, WorkerOptions, threads_per_worker, train_command, worker_env

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
TINY_COUNTS = [20, 12, 7, 5]
HAS_FAILED_STATUS = "failed" in get_args(Status)
needs_failed_status = pytest.mark.skipif(
    not HAS_FAILED_STATUS, reason="needs the 'failed' run status of the run-lifecycle work (issue 9)")


def spec(tmp_path: Path, name: str = "a", seed: int = 0, needs: str | None = None, config_hash: str = "h0") -> RunSpec:
    return RunSpec(recipe_arg=name, name=name, config_hash=config_hash, seed=seed, out=tmp_path, total_epochs=2,
                   needs=needs)


def write_run(run: RunSpec, status: str) -> None:
    """A fabricated record of ``status`` in ``run``'s folder (2 epochs of history)."""
    record = make_record([0.5, 0.5, 0.25, 0.0], seed=run.seed, recipe_name=run.name, config_hash=run.config_hash,
                         status=status, counts=TINY_COUNTS)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    write_record(run.run_dir / RECORD_FILENAME, record)


# ---------------------------------------------------------------------------------------- plan
def test_patterns_names_and_paths_expand_in_order_without_duplicates(tmp_path: Path):
    path = tiny_recipe(tmp_path)
    got = expand_recipe_args(["cifar10-ir100-ce", "cifar10-ir100-c*", str(path), str(path)])
    assert got == ["cifar10-ir100-ce", "cifar10-ir100-cbdelta", "cifar10-ir100-cbdelta-crt",
                   "cifar10-ir100-cbdelta-divide", "cifar10-ir100-cbdelta-progressive", "cifar10-ir100-cbfocal",
                   "cifar10-ir100-cbprimary", "cifar10-ir100-cbprimary-progressive", "cifar10-ir100-ce-crt",
                   "cifar10-ir100-ce-lws", str(path)]
    assert len(expand_recipe_args(["cifar100-ir100-*"])) == 12 + 5  # the thesis grid and the decoupling recipes
    with pytest.raises(LtrankError, match="'cifar1000-\\*' matches no shipped recipe"):
        expand_recipe_args(["cifar1000-*"])


def test_plan_is_recipes_times_seeds_in_order_with_overrides_in_every_run(tmp_path: Path):
    runs = plan_runs(["cifar10-ir100-ap", "cifar10-ir100-cbdelta"], [2, 0, 1], tmp_path,
                     ["train.max_batches_per_epoch=1"])
    assert [(r.name, r.seed) for r in runs] == [
        ("cifar10-ir100-ap", 2), ("cifar10-ir100-ap", 0), ("cifar10-ir100-ap", 1),
        ("cifar10-ir100-cbdelta", 2), ("cifar10-ir100-cbdelta", 0), ("cifar10-ir100-cbdelta", 1)]
    with_override = load_recipe("cifar10-ir100-ap", ["train.max_batches_per_epoch=1"]).config_hash
    assert runs[0].config_hash == with_override != load_recipe("cifar10-ir100-ap").config_hash
    assert runs[0].run_dir == tmp_path / "cifar10-ir100-ap" / with_override / "seed2"
    assert runs[0].recipe_arg == "cifar10-ir100-ap" and runs[0].total_epochs == 200


def test_the_same_recipe_by_name_and_by_path_is_one_set_of_runs(tmp_path: Path):
    shipped = recipes_dir() / "cifar10-ir100-ap.toml"
    runs = plan_runs(["cifar10-ir100-ap", str(shipped), "cifar10-ir100-a?"], [0, 1], tmp_path)
    assert [(r.name, r.seed) for r in runs] == [("cifar10-ir100-ap", 0), ("cifar10-ir100-ap", 1)]


def test_drolt_runs_come_after_the_ce_runs_of_the_same_seed(tmp_path: Path):
    runs = plan_runs(["cifar100-ir100-drolt", "cifar100-ir100-ap", "cifar100-ir100-ce"], [0, 1], tmp_path)
    assert [(r.name.removeprefix("cifar100-ir100-"), r.seed) for r in runs] == [
        ("ce", 0), ("ce", 1), ("drolt", 0), ("drolt", 1), ("ap", 0), ("ap", 1)]
    assert runs[2].needs == "cifar100-ir100-ce" and runs[0].added_for is None


def test_the_ce_run_drolt_needs_is_added_unless_a_finished_one_exists(tmp_path: Path):
    runs = plan_runs(["cifar10-ir50-drolt"], [0, 1], tmp_path)
    assert [(r.name, r.seed, r.added_for) for r in runs] == [
        ("cifar10-ir50-ce", 0, "cifar10-ir50-drolt"), ("cifar10-ir50-ce", 1, "cifar10-ir50-drolt"),
        ("cifar10-ir50-drolt", 0, None), ("cifar10-ir50-drolt", 1, None)]
    # a finished CE run of seed 1 under other settings (another config hash) is what init_from will use
    write_run(spec(tmp_path, "cifar10-ir50-ce", seed=1, config_hash="otherhash"), "finished")
    runs = plan_runs(["cifar10-ir50-drolt"], [0, 1], tmp_path)
    assert [(r.name, r.seed) for r in runs] == [("cifar10-ir50-ce", 0), ("cifar10-ir50-drolt", 0),
                                                ("cifar10-ir50-drolt", 1)]


def test_a_recipe_named_by_init_from_is_looked_up_beside_the_recipe_first(tmp_path: Path):
    train = "[train]\nepochs = 1\nbatch_size = 8\nwarmup_epochs = 1\nmilestones = []\ninit_from = \"recipe:{}\"\n"
    base = tiny_recipe(tmp_path, name="cifar10-ir50-ce", epochs=1)  # shadows the shipped recipe of that name
    tuned = tiny_recipe(tmp_path, name="tiny-tuned", train=train.format("cifar10-ir50-ce"))
    runs = plan_runs([str(tuned)], [0], tmp_path / "runs")
    assert [(r.name, r.recipe_arg, r.added_for) for r in runs] == [
        ("cifar10-ir50-ce", str(base.resolve()), "tiny-tuned"), ("tiny-tuned", str(tuned.resolve()), None)]


def test_recipes_that_start_from_each_other_are_an_error(tmp_path: Path):
    train = "[train]\nepochs = 1\nbatch_size = 8\nwarmup_epochs = 1\nmilestones = []\ninit_from = \"recipe:{}\"\n"
    a = tiny_recipe(tmp_path, name="tiny-a", train=train.format("tiny-b"))
    b = tiny_recipe(tmp_path, name="tiny-b", train=train.format("tiny-a"))
    with pytest.raises(LtrankError, match="cycle \\(tiny-a -> tiny-b -> tiny-a\\)"):
        plan_runs([str(a), str(b)], [0], tmp_path)


# -------------------------------------------------------------------------------------- status
@pytest.mark.parametrize("status, action, retry_action", [
    (None, "run", "run"), ("finished", "skip", "skip"), ("interrupted", "resume", "resume"),
    ("running", "resume", "resume"), ("diverged", "report", "retry")])
def test_a_run_folder_is_classified_by_its_record(tmp_path: Path, status, action, retry_action):
    run = spec(tmp_path)
    if status is not None:
        write_run(run, status)
    assert inspect(run).action == action
    assert inspect(run, retry_failed=True).action == retry_action


@needs_failed_status
def test_a_failed_run_is_reported_and_with_retry_failed_resumed_from_its_checkpoint(tmp_path: Path):
    run = spec(tmp_path)
    write_run(run, "failed")
    assert inspect(run).action == "report" and inspect(run, retry_failed=True).action == "resume"


def test_a_checkpoint_without_record_is_resumed_and_a_damaged_record_is_reported(tmp_path: Path):
    run = spec(tmp_path)
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "checkpoint.pt").write_bytes(b"x")
    assert inspect(run).action == "resume"
    (run.run_dir / RECORD_FILENAME).write_text("{not json")
    before = inspect(run)
    assert before.action == "report" and "not valid JSON" in before.reason
    assert inspect(run, retry_failed=True).action == "retry"


def test_the_failure_reason_is_read_from_whichever_field_the_record_has():
    assert failure_reason(SimpleNamespace(failure="CUDA out of memory\ntraceback...")) == "CUDA out of memory"
    assert failure_reason(SimpleNamespace(status_reason="loss became nan at epoch 3")) == "loss became nan at epoch 3"
    assert failure_reason(SimpleNamespace()) is None


def test_moving_a_run_aside_keeps_everything_under_a_name_that_is_no_longer_the_run(tmp_path: Path):
    run = spec(tmp_path)
    write_run(run, "diverged")
    moved = move_aside(run, "diverged")
    assert moved.parent == run.run_dir.parent and moved.name.startswith("seed0.diverged-")
    assert load_record(moved / RECORD_FILENAME).status == "diverged"
    assert not run.run_dir.exists() and inspect(run).action == "run"
    write_run(run, "diverged")
    assert move_aside(run, "diverged") != moved  # a second retry in the same second gets its own name


def test_settling_reads_the_record_and_falls_back_to_the_workers_last_line(tmp_path: Path):
    run = spec(tmp_path)
    fresh, resumed = inspect(run), SimpleNamespace(action="resume")
    o = settle(run, fresh, 2, "error: recipe file /x/missing.npz not found")
    assert (o.result, o.reason) == ("failed", "recipe file /x/missing.npz not found")
    assert settle(run, fresh, -9, None).reason == "worker killed by signal 9"
    write_run(run, "running")  # a worker killed mid-run leaves its record at 'running'
    o = settle(run, fresh, -9, "epoch 1")
    assert (o.result, o.status, o.reason) == ("failed", "running", "worker killed by signal 9: epoch 1")
    o = settle(run, resumed, 2, "error: seed0 is locked by another ltrank process (pid 12)")
    assert (o.result, o.reason) == ("failed", "seed0 is locked by another ltrank process (pid 12)")
    write_run(run, "interrupted")
    assert settle(run, resumed, 1, "run failed: interrupted after epoch 2").result == "interrupted"
    write_run(run, "diverged")
    o = settle(run, resumed, 1, "run failed: loss became nan in epoch 3")
    assert (o.result, o.reason) == ("failed", "loss became nan in epoch 3")
    write_run(run, "finished")
    assert settle(run, fresh, 0, None).result == "finished" and settle(run, resumed, 0, None).result == "resumed"


# ------------------------------------------------------------------------------------ dispatch
class FakeExecutor:
    """Executes runs in-process: each poll ends the oldest active run with the status ``plan`` gives it."""

    def __init__(self, slots: int, plan: dict[tuple[str, int], str] | None = None):
        self.slots, self.plan = slots, plan or {}
        self.active: list[RunSpec] = []
        self.launched: list[RunSpec] = []
        self.most_at_once = 0
        self.interrupted = self.killed = False
        self.stop_after_launch: StopFlag | None = None  # request a stop this many times after the first launch
        self.signals = 1
        self.stubborn = False  # ignores the interrupt; only kill() ends its runs

    def free_slots(self) -> int:
        return self.slots - len(self.active)

    def launch(self, runs):
        self.active += runs
        self.launched += runs
        self.most_at_once = max(self.most_at_once, len(self.active))
        for run in runs:
            write_run(run, "running")
        if self.stop_after_launch is not None:
            for _ in range(self.signals):
                self.stop_after_launch.request()

    def poll(self):
        if not self.active or self.stop_after_launch is not None and not self.interrupted:
            return []
        if self.stubborn and not self.killed:
            return []
        run = self.active.pop(0)
        if self.killed:
            return [Exited(run, -9, None)]
        status = "interrupted" if self.interrupted else self.plan.get((run.name, run.seed), "finished")
        if status == "crash":  # the worker died before writing a record
            return [Exited(run, -9, "Segmentation fault")]
        write_run(run, status)
        return [Exited(run, 0 if status == "finished" else 1, f"run failed: {status}")]

    def running(self):
        return [(f"w{i + 1}", r) for i, r in enumerate(self.active)]

    def interrupt(self):
        self.interrupted = True

    def kill(self):
        self.killed = True


def test_runs_start_in_plan_order_never_more_than_the_slots_and_a_crash_stops_nothing(tmp_path: Path):
    runs = [spec(tmp_path, n, s) for n in ("a", "b", "c") for s in (0, 1)]
    ex = FakeExecutor(2, {("b", 0): "crash", ("c", 1): "diverged"})
    outcomes = run_sweep(runs, ex, poll_seconds=0)
    assert ex.launched == runs and ex.most_at_once == 2
    assert [o.result for o in outcomes] == ["finished", "finished", "failed", "finished", "finished", "failed"]
    assert outcomes[2].reason == "worker killed by signal 9: Segmentation fault"
    assert outcomes[5].reason == "diverged"


def test_a_rerun_skips_finished_resumes_interrupted_and_reports_failures(tmp_path: Path):
    runs = [spec(tmp_path, "a", s) for s in range(5)]
    write_run(runs[0], "finished")
    write_run(runs[1], "interrupted")
    write_run(runs[2], "diverged")
    write_run(runs[3], "running")
    ex = FakeExecutor(1)
    outcomes = run_sweep(runs, ex, poll_seconds=0)
    assert ex.launched == [runs[1], runs[3], runs[4]]
    assert [o.result for o in outcomes] == ["skipped", "resumed", "failed", "resumed", "finished"]
    assert "not retried; pass --retry-failed" in outcomes[2].reason
    again = FakeExecutor(1)
    assert [o.result for o in run_sweep(runs, again, poll_seconds=0)] == ["skipped"] * 2 + ["failed"] + ["skipped"] * 2
    assert again.launched == []


def test_retry_failed_moves_a_diverged_run_aside_and_starts_it_again(tmp_path: Path):
    run = spec(tmp_path)
    write_run(run, "diverged")
    outcomes = run_sweep([run], FakeExecutor(1), retry_failed=True, poll_seconds=0)
    assert outcomes[0].result == "retried" and load_record(run.run_dir / RECORD_FILENAME).status == "finished"
    kept = list(run.run_dir.parent.glob("seed0.diverged-*"))
    assert len(kept) == 1 and load_record(kept[0] / RECORD_FILENAME).status == "diverged"


def test_a_run_waits_for_the_run_it_starts_from_and_is_blocked_when_that_fails(tmp_path: Path):
    runs = [spec(tmp_path, "ce", 0), spec(tmp_path, "ce", 1),
            spec(tmp_path, "drolt", 0, needs="ce"), spec(tmp_path, "drolt", 1, needs="ce")]
    ex = FakeExecutor(4, {("ce", 1): "diverged"})
    outcomes = run_sweep(runs, ex, poll_seconds=0)
    assert ex.launched[:2] == runs[:2] and ex.launched[2:] == [runs[2]]  # drolt 0 only after ce 0 finished
    assert [o.result for o in outcomes] == ["finished", "failed", "finished", "blocked"]
    assert outcomes[3].reason == "starts from ce seed 1, which did not finish"


def test_a_stop_request_interrupts_the_running_runs_and_starts_no_more(tmp_path: Path):
    runs = [spec(tmp_path, "a", s) for s in range(4)]
    ex = FakeExecutor(2)
    stop = StopFlag()
    ex.stop_after_launch = stop  # the signal arrives right after the first two runs started
    outcomes = run_sweep(runs, ex, stop=stop, poll_seconds=0)
    assert ex.interrupted and ex.launched == runs[:2]
    assert [o.result for o in outcomes] == ["interrupted", "interrupted", "not started", "not started"]
    assert [o.result for o in run_sweep(runs, FakeExecutor(2), poll_seconds=0)] == [
        "resumed", "resumed", "finished", "finished"]


def test_a_second_signal_kills_the_workers_and_their_runs_stay_resumable(tmp_path: Path):
    runs = [spec(tmp_path, "a", s) for s in range(3)]
    ex = FakeExecutor(2)
    ex.stop_after_launch, ex.signals, ex.stubborn = StopFlag(), 2, True
    outcomes = run_sweep(runs, ex, stop=ex.stop_after_launch, poll_seconds=0)
    assert ex.interrupted and ex.killed
    assert [o.result for o in outcomes] == ["interrupted", "interrupted", "not started"]
    assert outcomes[0].reason == "worker killed by signal 9; rerun the sweep to resume it"
    assert [inspect(r).action for r in runs] == ["resume", "resume", "run"]


def test_the_live_view_shows_progress_per_worker_and_piped_output_is_one_line_per_run(tmp_path: Path):
    from rich.console import Console

    from ltrank.sweep.dispatch import Launched, Progress, Settled
    from ltrank.sweep.view import SweepView

    running, done = spec(tmp_path, "a", 0), spec(tmp_path, "b", 0)
    running = RunSpec(**{**running.__dict__, "total_epochs": 10})
    write_run(running, "running")  # 2 epochs of 1 s each: 8 epochs left
    write_run(done, "finished")
    progress = Progress(total=3, running=[("w1", running)])
    progress.outcomes[done] = settle(done, inspect(done), 0, None)
    terminal = Console(force_terminal=True, width=100, record=True)
    terminal.print(SweepView(terminal).render(progress))
    screen = terminal.export_text()
    assert "sweep: 1/3 done, 1 running" in screen
    assert re.search(r"w1\s+a seed 0\s+2/10\s+0:00:08", screen), screen

    piped = Console(force_terminal=False, width=100, record=True)
    view = SweepView(piped)
    assert view.live is None
    view(Launched(running, "w1", inspect(running)))
    view(progress)
    view(Settled(progress.outcomes[done]))
    assert piped.export_text().splitlines() == ["start w1 a seed 0: resume: running run after epoch 2",
                                                "finished b seed 0: epoch 2/2 top-1 31.25%"]


# ------------------------------------------------------------------------- workers and threads
def test_each_worker_gets_its_share_of_the_thread_budget():
    assert threads_per_worker(2, {"OMP_NUM_THREADS": "8"}) == 4
    assert threads_per_worker(3, {"OMP_NUM_THREADS": "8"}) == 2
    assert threads_per_worker(4, {"OMP_NUM_THREADS": "1"}) == 1
    assert threads_per_worker(1, {}) == len(os.sched_getaffinity(0))


def test_the_worker_is_ltrank_train_with_resume_and_the_sweeps_settings(tmp_path: Path):
    run = spec(tmp_path, "cifar10-ir100-ap", 3)
    options = WorkerOptions("cpu", tmp_path / "data", ("train.lr=0.05", "eval.every=5"), threads=2)
    cmd = train_command(run, options, python="py")
    assert cmd == ["py", "-m", "ltrank", "train", "--recipe", "cifar10-ir100-ap", "--seed", "3", "--out",
                   str(tmp_path.resolve()), "--resume", "--device", "cpu", "--data-dir", str(tmp_path / "data"),
                   "--set", "train.lr=0.05", "--set", "eval.every=5"]
    env = worker_env(options, {"PYTHONPATH": "/elsewhere"})
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(REPO), "/elsewhere"]  # the sweep's own ltrank first


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_local_workers_run_at_once_and_one_killed_worker_leaves_the_others_alone(tmp_path: Path):
    runs = [spec(tmp_path, n) for n in ("a", "b", "c")]
    flags = {r.name: tmp_path / f"{r.name}.started" for r in runs}
    # a and b each wait for the other to have started: they can only finish if they ran at the same time
    code = {
        "a": f"import pathlib,time\npathlib.Path({str(flags['a'])!r}).touch()\n"
             f"while not pathlib.Path({str(flags['b'])!r}).exists(): time.sleep(0.01)\nprint('a done')",
        "b": f"import pathlib,time\npathlib.Path({str(flags['b'])!r}).touch()\n"
             f"while not pathlib.Path({str(flags['a'])!r}).exists(): time.sleep(0.01)\nprint('b done')",
        "c": "import os, signal\nprint('about to die', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)",
    }
    ex = LocalExecutor(2, lambda run: _python(code[run.name]))
    exited: dict[str, Exited] = {}
    for run in runs:
        while ex.free_slots() == 0:
            exited.update((e.run.name, e) for e in ex.poll())
            time.sleep(0.01)
        ex.launch([run])
    while ex.running():
        exited.update((e.run.name, e) for e in ex.poll())
        time.sleep(0.01)
    assert (exited["a"].exit_code, exited["a"].last_line) == (0, "a done")
    assert (exited["b"].exit_code, exited["b"].last_line) == (0, "b done")
    assert (exited["c"].exit_code, exited["c"].last_line) == (-signal.SIGKILL, "about to die")
    log = (runs[2].run_dir / LOG_FILENAME).read_text()
    assert log.startswith("== ") and "ltrank sweep:" in log.splitlines()[0]


def test_interrupt_sends_each_local_worker_one_sigint(tmp_path: Path):
    run = spec(tmp_path)
    ready = tmp_path / "ready"
    code = ("import pathlib, signal, sys, time\n"
            "signal.signal(signal.SIGINT, lambda *a: (print('got SIGINT', flush=True), sys.exit(1)))\n"
            f"pathlib.Path({str(ready)!r}).touch()\n"
            "time.sleep(600)")
    ex = LocalExecutor(1, lambda r: _python(code))
    ex.launch([run])
    while not ready.exists():
        time.sleep(0.01)
    ex.interrupt()
    exited: list[Exited] = []
    while not exited:
        exited = ex.poll()
        time.sleep(0.01)
    assert (exited[0].exit_code, exited[0].last_line) == (1, "got SIGINT")


# ----------------------------------------------------------------------------- CLI, no training
def test_sweep_dry_run_lists_what_would_be_skipped_resumed_or_reported_and_changes_nothing(tmp_path: Path):
    recipe = tiny_recipe(tmp_path, epochs=2)
    out = tmp_path / "runs"
    runs = plan_runs([str(recipe)], [0, 1, 2, 3], out)
    write_run(runs[0], "finished")
    write_run(runs[1], "interrupted")
    write_run(runs[2], "diverged")
    args = ["sweep", str(recipe), "--seeds", "0,1,2,3", "--out", str(out), "--dry-run"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for text in ("skip: finished", "resume: interrupted run after epoch 2", "report: diverged after epoch 2",
                 "new", "4 runs: 1 new, 1 to resume, 0 to retry, 1 finished (skipped), 1 failed earlier (reported)"):
        assert text in result.output
    retry = runner.invoke(app, [*args, "--retry-failed"])
    assert "retry: diverged run moved aside" in retry.output
    assert sorted(p.name for p in runs[0].run_dir.parent.iterdir()) == ["seed0", "seed1", "seed2"]


def test_a_sweep_of_finished_runs_starts_nothing_and_exits_0(tmp_path: Path):
    recipe = tiny_recipe(tmp_path, epochs=2)
    out = tmp_path / "runs"
    for run in plan_runs([str(recipe)], [0, 1], out):
        write_run(run, "finished")
    result = runner.invoke(app, ["sweep", str(recipe), "--seeds", "0,1", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.output.count("skipped tiny-ce seed") == 2 and "2 runs: 2 skipped (all finished)" in result.output
    assert not list(out.rglob(LOG_FILENAME))  # no worker was started


@pytest.mark.parametrize("args, message", [
    (["nope-*"], "'nope-*' matches no shipped recipe"),
    (["cifar10-ir100-ce", "--seeds", "1,1"], "--seeds '1,1': expected distinct integers"),
    (["cifar10-ir100-ce", "--slurm-partition", "gpu"], "--slurm-partition: only with --executor slurm"),
    (["cifar10-ir100-ce", "--executor", "slurm", "--workers", "2"], "--workers is for --executor local"),
    (["cifar10-ir100-ce", "--set", "train.lrr=1"], "train.lrr: unknown key"),
    (["cifar10-ir100-ce", "--workers", "0"], "--workers"),
    pytest.param(["cifar10-ir100-ce", "--executor", "slurm"], "--executor slurm: sbatch not found",
                 marks=pytest.mark.skipif(shutil.which("sbatch") is not None or find_spec("submitit") is None,
                                          reason="SLURM is installed here, or submitit is not")),
])
def test_sweep_usage_errors_are_one_line_and_exit_2(args, message):
    result = runner.invoke(app, ["sweep", *args])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------- end to end, real workers
EPOCHS = 15


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _sweep_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ltrank", "sweep", "--device", "cpu", *args]


def _epochs(out: Path, seed: int) -> int:
    paths = list(out.glob(f"*/*/seed{seed}/{RECORD_FILENAME}"))
    try:
        return len(load_record(paths[0]).history) if paths else 0
    except LtrankError:  # caught between two writes of the file? (atomic, so not expected)
        return 0


def _wait_until(condition, what: str, process: subprocess.Popen, limit_s: float = 300.0) -> None:
    """Poll ``condition``; a hang guard only (no speed is asserted)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}: {process.communicate()[0]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """Two workers: the tiny recipe (seeds 0, 1) and a recipe whose data is missing (crashes at start)."""
    root = tmp_path_factory.mktemp("sweep")
    recipe = tiny_recipe(root, epochs=EPOCHS)
    broken = tiny_recipe(root, name="tiny-broken", epochs=EPOCHS)
    broken.write_text(broken.read_text().replace("tiny.npz", "missing.npz"))
    out = root / "runs"
    result = subprocess.run(_sweep_cmd(str(recipe), str(broken), "--seeds", "0,1", "--out", str(out), "--workers", "2"),
                            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    return SimpleNamespace(root=root, recipe=recipe, broken=broken, out=out, result=result)


def _final_records(out: Path, name: str = "tiny-ce") -> dict[int, object]:
    return {load_record(p).seed: load_record(p) for p in out.glob(f"{name}/*/seed*/{RECORD_FILENAME}")}


def test_two_workers_train_and_a_crashing_run_is_reported_without_stopping_them(tiny_sweep):
    result = tiny_sweep.result
    assert result.returncode == 1, result.stdout + result.stderr
    records = _final_records(tiny_sweep.out)
    assert sorted(records) == [0, 1]
    assert all(r.status == "finished" and len(r.history) == EPOCHS for r in records.values())
    lines = result.stdout.splitlines()
    assert sum(ln.startswith("finished tiny-ce seed") for ln in lines) == 2
    crashed = [ln for ln in lines if ln.startswith("failed tiny-broken seed")]
    assert len(crashed) == 2 and all("missing.npz" in ln for ln in crashed)
    assert "4 runs: 2 finished, 2 failed" in result.stdout
    # the rerun of the part that worked redoes nothing
    again = subprocess.run(_sweep_cmd(str(tiny_sweep.recipe), "--seeds", "0,1", "--out", str(tiny_sweep.out)),
                           cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "2 runs: 2 skipped (all finished)" in again.stdout


def test_sigterm_stops_the_sweep_resumably_and_the_rerun_ends_with_the_same_records(tiny_sweep, tmp_path: Path):
    out = tmp_path / "runs"
    cmd = _sweep_cmd(str(tiny_sweep.recipe), "--seeds", "0,1", "--out", str(out), "--workers", "1")
    sweep = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_until(lambda: _epochs(out, 1) >= 1, "seed 1 finished an epoch", sweep)  # seed 0 is done by then
    sweep.send_signal(signal.SIGTERM)
    output = sweep.communicate(timeout=300)[0]
    assert sweep.returncode == 1, output
    first = _final_records(out)
    assert first[0].status == "finished" and first[1].status == "interrupted"
    assert 1 <= len(first[1].history) < EPOCHS
    assert "interrupted tiny-ce seed 1" in output and "1 finished, 1 interrupted" in output

    rerun = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "skipped tiny-ce seed 0" in rerun.stdout and "resumed tiny-ce seed 1" in rerun.stdout
    resumed, reference = _final_records(out), _final_records(tiny_sweep.out)
    for seed in (0, 1):
        assert resumed[seed].status == "finished"
        assert resumed[seed].final == reference[seed].final  # bit-identical on CPU
        assert [h.train_loss for h in resumed[seed].history] == [h.train_loss for h in reference[seed].history]


def _submitit_task(folder: Path) -> int:
    """The pid of the submitit task process working on jobs in ``folder`` (Linux /proc)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"submitit.core._submit" in args and str(folder).encode() in args:
            return int(cmdline.parent.name)
    raise AssertionError(f"no submitit task for {folder}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the job's process through /proc")
def test_submitit_requeues_a_preempted_run_which_resumes_from_its_checkpoint(tiny_sweep, tmp_path: Path):
    pytest.importorskip("submitit")
    out = tmp_path / "runs"
    sweep = subprocess.Popen(
        _sweep_cmd(str(tiny_sweep.recipe), "--seeds", "0", "--out", str(out), "--executor", "slurm",
                   "--slurm-cluster", "local", "--slurm-cpus-per-task", "1", "--slurm-gpus-per-task", "0"),
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_until(lambda: _epochs(out, 0) >= 1, "the job finished an epoch", sweep)
    os.kill(_submitit_task(out / ".submitit"), signal.SIGUSR2)  # what SLURM sends before preemption/time limit
    output = sweep.communicate(timeout=600)[0]
    assert sweep.returncode == 0, output
    assert "1 runs: 1 finished (all finished)" in output
    record = _final_records(out)[0]
    assert record.status == "finished" and record.final == _final_records(tiny_sweep.out)[0].final
    attempts = [ln for ln in (out.glob(f"tiny-ce/*/seed0/{LOG_FILENAME}").__next__()).read_text().splitlines()]
    headers = [i for i, ln in enumerate(attempts) if ln.startswith("== ")]
    assert len(headers) == 2  # the job ran twice: preempted, then requeued
    assert attempts[headers[1] - 1].startswith("run failed: interrupted after epoch")
    assert "Requeued job" in "".join(p.read_text() for p in (out / ".submitit").glob("*_log.out"))
