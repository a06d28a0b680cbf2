"""The trainer on tiny data: exact resume, class weights per epoch, stages, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _tiny_recipe import tiny_recipe

from ltrank.data import load_longtailed
from ltrank.engine import checkpoint as ckpt
from ltrank.engine.events import BatchEnded, EpochEnded, EpochStarted
from ltrank.engine.run import run_dir_for, train_one
from ltrank.engine.trainer import Trainer
from ltrank.errors import LtrankError, RunFailed
from ltrank.recipe import load_recipe
from ltrank.records import load_record

CPU = torch.device("cpu")


def _comparable(record):
    """What must not depend on an interruption: everything but wall-clock times."""
    history = [{k: v for k, v in h.model_dump().items() if k != "seconds"} for h in record.history]
    return history, record.final.model_dump(), record.best.model_dump()


def test_resume_after_an_interruption_gives_exactly_the_uninterrupted_run(tmp_path: Path):
    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=3)))
    whole = train_one(recipe, seed=1, out=tmp_path / "a", device=CPU)

    def interrupt(event):  # Ctrl-C in the middle of epoch 2: the checkpoint holds epoch 1
        if isinstance(event, BatchEnded) and (event.epoch, event.batch) == (2, 3):
            raise KeyboardInterrupt

    with pytest.raises(RunFailed, match="interrupted after epoch 1.*--resume"):
        train_one(recipe, seed=1, out=tmp_path / "b", device=CPU, callback=interrupt)
    run_dir = run_dir_for(tmp_path / "b", recipe, 1)
    partial = load_record(run_dir / "record.json")
    assert partial.status == "interrupted" and len(partial.history) == 1
    assert ckpt.load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1

    with pytest.raises(LtrankError, match="unfinished run; pass --resume"):
        train_one(recipe, seed=1, out=tmp_path / "b", device=CPU)
    resumed = train_one(recipe, seed=1, out=tmp_path / "b", device=CPU, resume=True)
    assert resumed.status == "finished" and resumed.started_at == partial.started_at
    assert _comparable(resumed) == _comparable(whole)
    a = ckpt.load_checkpoint(run_dir_for(tmp_path / "a", recipe, 1) / "checkpoint.pt")
    b = ckpt.load_checkpoint(run_dir / "checkpoint.pt")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_seeds_change_the_run_and_the_same_seed_repeats_it(tmp_path: Path):
    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=1)))
    first = train_one(recipe, seed=0, out=tmp_path / "a", device=CPU)
    again = train_one(recipe, seed=0, out=tmp_path / "b", device=CPU)
    other = train_one(recipe, seed=5, out=tmp_path / "a", device=CPU)
    assert _comparable(first) == _comparable(again)
    assert first.history[0].train_loss != other.history[0].train_loss


def test_finished_runs_are_never_overwritten_and_resume_skips_them(tmp_path: Path):
    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=1)))
    train_one(recipe, seed=0, out=tmp_path, device=CPU)
    with pytest.raises(LtrankError, match="already holds a finished run"):
        train_one(recipe, seed=0, out=tmp_path, device=CPU)
    assert train_one(recipe, seed=0, out=tmp_path, device=CPU, resume=True) is None


def test_record_holds_the_run(tmp_path: Path):
    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=2)), ["eval.every=2"])
    record = train_one(recipe, seed=3, out=tmp_path, device=CPU)
    assert record.recipe_name == "tiny-ce" and record.config_hash == recipe.config_hash and record.seed == 3
    assert record.recipe == recipe.as_dict() and record.environment.device == "cpu"
    assert record.data.class_counts == [20, 12, 7, 5] and record.data.source_kind == "npz"
    assert [h.epoch for h in record.history] == [1, 2]
    assert record.history[0].test_acc is None and record.history[1].test_acc == record.final.top1
    assert record.history[0].lr == pytest.approx(0.1) and record.history[1].lr == pytest.approx(0.01)
    assert record.final.epoch == 2 and len(record.final.per_class) == 4 and record.best == record.final
    assert set(record.final.groups) == {"thirds", "shots"}
    assert record.timings.total_seconds > 0 and record.finished_at


def test_schedule_weights_reach_the_loss_every_epoch(tmp_path: Path):
    path = tiny_recipe(tmp_path, "tiny-cbdelta", 'name = "ap_cb_delta"\nparams = { beta = 0.9 }', epochs=3,
                       extra='[schedule]\nname = "progressive"')
    recipe = load_recipe(str(path))
    data = load_longtailed(recipe.recipe.data)
    seen = {}

    def spy(event):
        if isinstance(event, EpochStarted):
            seen[event.epoch] = trainer.losses[0].module.class_weights.clone()

    trainer = Trainer(recipe.recipe, data, seed=0, device=CPU, callback=spy)
    trainer.fit()
    counts = torch.tensor([20.0, 12.0, 7.0, 5.0], dtype=torch.float64)
    target = (1 - 0.9) / (1 - 0.9 ** counts)
    target = target * 4 / target.sum()
    for t in (1, 2, 3):  # thesis eq. 4.1 with T = 3
        expected = (1 - t / 3) + (t / 3) * target
        assert torch.allclose(seen[t].double(), expected, atol=1e-6)


def test_drolt_stages_start_from_the_ce_run_and_freeze_what_they_should(tmp_path: Path):
    out = tmp_path / "runs"
    ce = load_recipe(str(tiny_recipe(tmp_path, epochs=1)))
    train_one(ce, seed=0, out=out, device=CPU)
    stages = ('[train]\nbatch_size = 8\ninit_from = "recipe:tiny-ce"\n'
              '[[train.stages]]\nepochs = 1\nlr = 0.005\nweight_decay = 1e-4\ntrainable = "encoder"\n'
              '[[train.stages]]\nepochs = 1\nlr = 0.01\nweight_decay = 1e-4\ntrainable = "head"\n'
              'sampler = "class_aware"\nloss = { name = "ce" }\n')
    drolt = load_recipe(str(tiny_recipe(tmp_path, "tiny-drolt", 'name = "drolt"', train=stages)))
    assert drolt.recipe.train.epochs == 2
    start = ckpt.load_checkpoint(run_dir_for(out, ce, 0) / "checkpoint.pt")["model"]
    snapshots = []
    trainer = Trainer(drolt.recipe, load_longtailed(drolt.recipe.data), seed=0, device=CPU, init_model=start)
    radii_before = trainer.losses[0].module.radii.detach().clone()
    trainer.fit(on_epoch_end=lambda t: snapshots.append({k: v.clone() for k, v in t.model.state_dict().items()}))
    after_features, after_head = snapshots

    def changed(a, b, prefix):
        return [k for k in a if k.startswith(prefix) and not torch.equal(a[k], b[k])]

    # stage 1 trains the encoder (and the DRO radii), not the classifier
    assert changed(start, after_features, "encoder.") and not changed(start, after_features, "head.")
    assert not torch.equal(trainer.losses[0].module.radii.detach(), radii_before)
    # stage 2 trains only the classifier; the frozen encoder keeps its BatchNorm statistics too
    assert changed(after_features, after_head, "head.") and not changed(after_features, after_head, "encoder.")
    # and the whole thing runs through the run folder rules, finding the CE run by recipe name
    record = train_one(drolt, seed=0, out=out, device=CPU)
    assert record.status == "finished" and len(record.history) == 2


def test_drolt_without_the_ce_run_says_which_command_to_run(tmp_path: Path):
    stages = ('[train]\nbatch_size = 8\ninit_from = "recipe:tiny-ce"\n'
              '[[train.stages]]\nepochs = 1\nlr = 0.005\nweight_decay = 1e-4\ntrainable = "encoder"\n')
    drolt = load_recipe(str(tiny_recipe(tmp_path, "tiny-drolt", 'name = "drolt"', train=stages)))
    with pytest.raises(LtrankError, match="no finished run of tiny-ce with seed 2.*ltrank train --recipe tiny-ce --seed 2"):
        train_one(drolt, seed=2, out=tmp_path / "runs", device=CPU)


def test_checkpoints_load_with_weights_only_and_resume_optimizer_state(tmp_path: Path):
    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=1)))
    train_one(recipe, seed=0, out=tmp_path, device=CPU)
    path = run_dir_for(tmp_path, recipe, 0) / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and state["config_hash"] == recipe.config_hash
    assert state["optimizer"]["state"], "momentum buffers are saved"
    assert not list(path.parent.glob(".*.tmp")), "no temp files left behind"


def test_epoch_events_report_what_the_record_says(tmp_path: Path):
    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=2)))
    events = []
    record = train_one(recipe, seed=0, out=tmp_path, device=CPU, callback=events.append)
    ended = [e for e in events if isinstance(e, EpochEnded)]
    assert [(e.epoch, e.train_loss, e.test_acc) for e in ended] == [
        (h.epoch, h.train_loss, h.test_acc) for h in record.history]
    assert [e.batch for e in events if isinstance(e, BatchEnded) and e.epoch == 1] == [1, 2, 3, 4, 5]


def test_init_from_paths_take_the_seed_and_accept_run_folders(tmp_path: Path):
    from ltrank.run_folder import resolve_init_from

    run = tmp_path / "ce" / "seed3"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"")
    assert resolve_init_from(str(tmp_path / "ce" / "seed{seed}"), tmp_path, 3).checkpoint == run / "checkpoint.pt"
    assert resolve_init_from(str(run / "checkpoint.pt"), tmp_path, 0).checkpoint == run / "checkpoint.pt"
    with pytest.raises(LtrankError, match="seed4.*not found"):
        resolve_init_from(str(tmp_path / "ce" / "seed{seed}"), tmp_path, 4)


def test_resume_at_a_stage_boundary_equals_the_uninterrupted_staged_run(tmp_path: Path):
    out = tmp_path / "runs"
    train_one(load_recipe(str(tiny_recipe(tmp_path, epochs=1))), seed=0, out=out, device=CPU)
    stages = ('[train]\nbatch_size = 8\ninit_from = "recipe:tiny-ce"\n'
              '[[train.stages]]\nepochs = 2\nlr = 0.005\nweight_decay = 1e-4\ntrainable = "encoder"\n'
              '[[train.stages]]\nepochs = 1\nlr = 0.01\nweight_decay = 1e-4\ntrainable = "head"\n'
              'sampler = "class_aware"\nloss = { name = "ce" }\n')
    drolt = load_recipe(str(tiny_recipe(tmp_path, "tiny-drolt", 'name = "drolt"', train=stages)))
    whole = train_one(drolt, seed=0, out=out, device=CPU)

    def interrupt(event):  # right after the last epoch of stage 1 was saved
        if isinstance(event, EpochEnded) and event.epoch == 2:
            raise KeyboardInterrupt

    other = tmp_path / "other"
    other.mkdir()
    (other / "tiny-ce").symlink_to(out / "tiny-ce")  # the same CE run to start from
    with pytest.raises(RunFailed):
        train_one(drolt, seed=0, out=other, device=CPU, callback=interrupt)
    resumed = train_one(drolt, seed=0, out=other, device=CPU, resume=True)
    assert _comparable(resumed) == _comparable(whole)


def test_resume_refuses_a_checkpoint_of_another_config_or_seed(tmp_path: Path):
    import shutil

    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=1)))
    other = load_recipe(str(tiny_recipe(tmp_path, epochs=1)), ["train.lr=0.05"])
    train_one(recipe, seed=0, out=tmp_path, device=CPU)
    source = run_dir_for(tmp_path, recipe, 0) / "checkpoint.pt"
    for target, seed, message in ((other, 0, "belongs to config"), (recipe, 1, "belongs to seed 0")):
        run_dir = run_dir_for(tmp_path, target, seed)
        run_dir.mkdir(parents=True)
        shutil.copy(source, run_dir / "checkpoint.pt")
        with pytest.raises(LtrankError, match=message):
            train_one(target, seed=seed, out=tmp_path, device=CPU, resume=True)


def test_compile_is_a_speed_switch_outside_the_config_hash(tmp_path: Path, monkeypatch):
    """train.compile routes the training forward through torch.compile and leaves the experiment
    (config hash, state dict keys) unchanged. Compilation itself is replaced by a recorder here:
    compiling on CPU takes minutes and needs a compiler; benchmarks/gpu_check.sh times the real one."""
    compiled = []

    def fake_compile(model):
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    plain = load_recipe(str(tiny_recipe(tmp_path, epochs=1)))
    fast = load_recipe(str(tiny_recipe(tmp_path, epochs=1)), ["train.compile=true"])
    assert fast.config_hash == plain.config_hash and fast.recipe.train.compile
    a = train_one(plain, seed=0, out=tmp_path / "a", device=CPU)
    b = train_one(fast, seed=0, out=tmp_path / "b", device=CPU, resume=False)
    assert len(compiled) == 1 and _comparable(a) == _comparable(b)
