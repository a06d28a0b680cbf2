"""Decoupled training through the real trainer, run lifecycle, ``ltrank eval --posthoc`` and
``ltrank compare``: frozen parts stay bit-identical (BatchNorm buffers too), cRT re-draws only the
classifier, LWS trains only its scales, resume mid-stage-2 is exact, stage-2 and post-hoc records
link the run they came from and become rows of their own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _tiny_recipe import tiny_recipe
from typer.testing import CliRunner

from ltrank.cli.app import app
from ltrank.compare import compare_records
from ltrank.data import load_longtailed
from ltrank.engine import checkpoint as ckpt
from ltrank.engine.checkpoint_eval import evaluate_checkpoint
from ltrank.engine.components import build_model
from ltrank.engine.events import BatchEnded
from ltrank.engine.run import run_dir_for, train_one
from ltrank.engine.trainer import Trainer
from ltrank.errors import LtrankError, RunFailed
from ltrank.metrics import per_class_accuracy
from ltrank.rebalance import LearnableWeightScaling, extract_features
from ltrank.recipe import load_recipe
from ltrank.records import load_record
from ltrank.run_folder import find_records

CPU = torch.device("cpu")
runner = CliRunner()


def _stage2(folder: Path, method: str, epochs: int = 2, base: str = "tiny-ce", name: str | None = None,
            extra: str = "") -> Path:
    """A stage-2 recipe on top of the tiny ``base`` run: ``method`` is crt, lws or a post-hoc stage."""
    if method in ("crt", "lws"):
        stage = f'method = "{method}"\nepochs = {epochs}\nlr = 0.1\nlr_schedule = "cosine"\nweight_decay = 2e-4\n'
    else:
        stage = f'method = "{method}"\n' + ("" if method == "ncm" else "tau = 1.0\n")
    train = f'[train]\nbatch_size = 8\ninit_from = "recipe:{base}"\n[[train.stages]]\n{stage}'
    return tiny_recipe(folder, name or f"{base}-{method}", 'name = "ce"', train=train, extra=extra)


@pytest.fixture
def ce_run(tmp_path: Path):
    """A finished 2-epoch CE run (seed 0) under tmp_path/runs: (out, recipe, record, checkpoint state)."""
    out = tmp_path / "runs"
    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=2)))
    record = train_one(recipe, seed=0, out=out, device=CPU)
    return out, recipe, record, ckpt.load_checkpoint(run_dir_for(out, recipe, 0) / "checkpoint.pt")


def _snapshots(trainer: Trainer) -> list[dict[str, torch.Tensor]]:
    seen: list[dict[str, torch.Tensor]] = []
    trainer.fit(on_epoch_end=lambda t: seen.append({k: v.clone() for k, v in t.model.state_dict().items()}))
    return seen


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_crt_stage_keeps_the_encoder_and_its_batchnorm_buffers_and_redraws_only_the_head(tmp_path, ce_run):
    out, _, _, start = ce_run
    recipe = load_recipe(str(_stage2(tmp_path, "crt", epochs=2))).recipe
    trainer = Trainer(recipe, load_longtailed(recipe.data), seed=0, device=CPU, init_model=start["model"])
    trainer._enter_phase(1)  # what the first epoch does before any step
    prepared = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert _same(_part(prepared, "encoder."), _part(start["model"], "encoder."))
    assert all(not torch.equal(prepared[k], start["model"][k]) for k in ("head.weight", "head.bias"))
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in trainer.model.head.parameters()}
    assert trainer.phase.stage.sampler == "class_aware"

    snapshots = _snapshots(trainer)
    encoder = _part(start["model"], "encoder.")
    assert any(k.endswith("running_mean") for k in encoder) and any(k.endswith("num_batches_tracked") for k in encoder)
    for after in snapshots:  # every stage-2 epoch: parameters AND BatchNorm buffers bit-identical
        assert _same(_part(after, "encoder."), encoder)
    assert not torch.equal(snapshots[-1]["head.weight"], prepared["head.weight"])  # the head did train


def test_lws_stage_trains_only_the_per_class_scales(tmp_path, ce_run):
    out, _, _, start = ce_run
    recipe = load_recipe(str(_stage2(tmp_path, "lws", epochs=2))).recipe
    trainer = Trainer(recipe, load_longtailed(recipe.data), seed=0, device=CPU, init_model=start["model"])
    after = _snapshots(trainer)[-1]
    assert isinstance(trainer.model.head, LearnableWeightScaling)
    assert set(after) == (set(start["model"]) - {"head.weight", "head.bias"}) | \
        {"head.head.weight", "head.head.bias", "head.scales"}
    assert _same(_part(after, "encoder."), _part(start["model"], "encoder."))
    assert torch.equal(after["head.head.weight"], start["model"]["head.weight"])
    assert torch.equal(after["head.head.bias"], start["model"]["head.bias"])
    assert not torch.equal(after["head.scales"], torch.ones(4))
    optimised = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    assert [id(p) for p in optimised] == [id(trainer.model.head.scales)]


def _comparable(record):
    history = [{k: v for k, v in h.model_dump().items() if k != "seconds"} for h in record.history]
    return history, record.final.model_dump(), record.best.model_dump()


@pytest.mark.parametrize("method", ["crt", "lws"])
def test_resume_in_the_middle_of_stage_2_is_bit_identical(tmp_path, ce_run, method):
    out = ce_run[0]
    recipe = load_recipe(str(_stage2(tmp_path, method, epochs=3)))
    whole = train_one(recipe, seed=0, out=out, device=CPU)

    def interrupt(event):  # Ctrl-C in epoch 2: the checkpoint holds stage-2 epoch 1
        if isinstance(event, BatchEnded) and (event.epoch, event.batch) == (2, 3):
            raise KeyboardInterrupt

    other = tmp_path / "other"
    other.mkdir()
    (other / "tiny-ce").symlink_to(out / "tiny-ce")  # the same stage-1 run to start from
    with pytest.raises(RunFailed, match="interrupted after epoch 1"):
        train_one(recipe, seed=0, out=other, device=CPU, callback=interrupt)
    resumed = train_one(recipe, seed=0, out=other, device=CPU, resume=True)
    assert _comparable(resumed) == _comparable(whole)
    a = ckpt.load_checkpoint(run_dir_for(out, recipe, 0) / "checkpoint.pt")["model"]
    b = ckpt.load_checkpoint(run_dir_for(other, recipe, 0) / "checkpoint.pt")["model"]
    assert _same(a, b)
    # ltrank eval rebuilds the stage-2 model (an LWS head is wrapped) and finds the recorded numbers
    ev = evaluate_checkpoint(run_dir_for(other, recipe, 0))
    assert ev.metrics.per_class == resumed.final.per_class


def test_a_stage_2_record_links_its_stage_1_run(tmp_path, ce_run):
    out, ce, ce_record, _ = ce_run
    record = train_one(load_recipe(str(_stage2(tmp_path, "crt", epochs=2))), seed=0, out=out, device=CPU)
    src = record.init_from
    assert src.path == str(run_dir_for(out, ce, 0) / "checkpoint.pt")
    assert (src.recipe_name, src.config_hash, src.seed, src.epochs) == ("tiny-ce", ce.config_hash, 0, 2)
    assert (src.method_key, src.method_label, src.logit_scale) == ("ce", "CE", 1.0)
    assert src.finished_at == ce_record.finished_at
    assert [h.lr for h in record.history] == [0.1, pytest.approx(0.05)]  # cosine, per epoch


def _hand_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    return [100.0 * v for v in per_class_accuracy(logits.argmax(dim=1), labels, 4)]


def _trained_model(recipe, state):
    model = build_model(recipe.recipe, 4)
    model.load_state_dict(state["model"])
    return model.eval()


def test_eval_posthoc_gives_one_row_and_one_record_per_adjustment(ce_run):
    out, ce, ce_record, state = ce_run
    run = run_dir_for(out, ce, 0)
    result = runner.invoke(app, ["eval", str(run), "--posthoc", "tau-norm=0", "--posthoc", "tau-norm=1.0",
                                 "--posthoc", "logit-adjust=1.0", "--posthoc", "ncm", "--per-class"])
    assert result.exit_code == 0, result.output
    for label in ("as trained", "tau-norm (tau 0.0)", "tau-norm (tau 1.0)", "logit-adjust (tau 1.0)", "NCM"):
        assert label in result.output
    records = {name: load_record(run / "posthoc" / name / "record.json")
               for name in ("tau-norm-0.0", "tau-norm-1.0", "logit-adjust-1.0", "ncm")}
    hashes = {r.config_hash for r in records.values()} | {ce_record.config_hash}
    assert len(hashes) == 5  # each adjustment its own experiment, none the source's
    for rec in records.values():
        assert rec.status == "finished" and rec.recipe == ce_record.recipe and rec.seed == 0
        assert rec.final == rec.best and rec.final.epoch == 2 and rec.history == []
        assert (rec.init_from.config_hash, rec.init_from.recipe_name, rec.init_from.method_key) == \
            (ce_record.config_hash, "tiny-ce", "ce")
        assert rec.init_from.path == str(run / "checkpoint.pt")
    assert records["tau-norm-0.0"].final.per_class == ce_record.final.per_class  # tau 0 is the trained model
    assert (records["tau-norm-1.0"].posthoc.method, records["tau-norm-1.0"].posthoc.tau) == ("tau-norm", 1.0)

    # by hand: the trained model's features and head, float64
    data = load_longtailed(ce.recipe.data)
    model = _trained_model(ce, state)
    feats, labels = extract_features(model, data.test_images, data.test_labels, CPU)
    w, b = model.head.weight.double(), model.head.bias.double()
    f = feats.double()
    unit_w = w / w.norm(dim=1, keepdim=True)
    assert records["tau-norm-1.0"].final.per_class == _hand_accuracy(f @ unit_w.t() + b, labels)
    prior = torch.tensor(data.class_counts, dtype=torch.float64) / sum(data.class_counts)
    assert records["logit-adjust-1.0"].final.per_class == _hand_accuracy(f @ w.t() + b - prior.log(), labels)
    train_f, train_y = extract_features(model, data.train_images, data.train_labels, CPU)
    means = torch.stack([F.normalize(train_f.double()[train_y == c], dim=1).mean(0) for c in range(4)])
    cos = F.normalize(f, dim=1) @ F.normalize(means, dim=1).t()
    assert records["ncm"].final.per_class == _hand_accuracy(cos, labels)


def test_eval_posthoc_again_replaces_its_own_record(ce_run):
    out, ce, _, _ = ce_run
    run = run_dir_for(out, ce, 0)
    assert runner.invoke(app, ["eval", str(run), "--posthoc", "ncm"]).exit_code == 0
    first = load_record(run / "posthoc" / "ncm" / "record.json")
    again = runner.invoke(app, ["eval", str(run), "--posthoc", "ncm"])
    assert again.exit_code == 0, again.output
    second = load_record(run / "posthoc" / "ncm" / "record.json")
    assert second.started_at == first.started_at and second.final == first.final
    assert len(find_records([run])) == 2  # the run and its one NCM record


@pytest.mark.parametrize("args,fragment", [
    (["--posthoc", "ncm", "--posthoc", "tau-norm=auto"], "tau-norm=auto picks tau on the source's validation split"),
    (["--posthoc", "tau-nrom=1"], "unknown adjustment 'tau-nrom' (did you mean 'tau-norm'?)"),
    (["--posthoc", "logit-adjust"], "logit-adjust needs a tau"),
])
def test_an_adjustment_that_cannot_apply_is_one_line_before_anything_is_written(ce_run, args, fragment):
    out, ce, _, _ = ce_run
    run = run_dir_for(out, ce, 0)
    result = runner.invoke(app, ["eval", str(run), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.output
    assert not (run / "posthoc").exists()


def test_another_runs_record_in_the_posthoc_folder_is_never_replaced(ce_run):
    out, ce, _, _ = ce_run
    run = run_dir_for(out, ce, 0)
    (run / "posthoc" / "ncm").mkdir(parents=True)
    shutil.copy(run / "record.json", run / "posthoc" / "ncm" / "record.json")
    result = runner.invoke(app, ["eval", str(run), "--posthoc", "ncm"])
    assert result.exit_code == 2 and "holds the record of another run" in result.stderr


def test_adjustments_of_an_unfinished_run_are_shown_but_not_recorded(tmp_path):
    recipe = load_recipe(str(tiny_recipe(tmp_path, epochs=2)))

    def interrupt(event):
        if isinstance(event, BatchEnded) and (event.epoch, event.batch) == (2, 1):
            raise KeyboardInterrupt

    with pytest.raises(RunFailed):
        train_one(recipe, seed=0, out=tmp_path / "runs", device=CPU, callback=interrupt)
    run = run_dir_for(tmp_path / "runs", recipe, 0)
    result = runner.invoke(app, ["eval", str(run), "--posthoc", "tau-norm=1.0"])
    assert result.exit_code == 0, result.output
    assert "tau-norm (tau 1.0)" in result.output and "not recorded: the run is interrupted" in result.output
    assert not (run / "posthoc").exists()


@pytest.mark.parametrize("method,spec", [("tau-norm", "tau-norm=1.0"), ("ncm", "ncm"),
                                         ("logit-adjust", "logit-adjust=1.0")])
def test_a_posthoc_recipe_stage_trains_nothing_and_equals_eval_posthoc(tmp_path, ce_run, method, spec):
    out, ce, _, _ = ce_run
    recipe = load_recipe(str(_stage2(tmp_path, method)))
    assert recipe.recipe.train.epochs == 0
    record = train_one(recipe, seed=0, out=out, device=CPU)
    assert record.status == "finished" and record.history == [] and record.final == record.best
    assert record.final.epoch == 0 and record.init_from.recipe_name == "tiny-ce"
    run = run_dir_for(out, ce, 0)
    assert runner.invoke(app, ["eval", str(run), "--posthoc", spec]).exit_code == 0
    [posthoc] = [load_record(p) for p in find_records([run / "posthoc"])]
    assert record.final.per_class == posthoc.final.per_class
    # ltrank eval on the post-hoc run applies its adjustment again to the weights it kept
    assert evaluate_checkpoint(run_dir_for(out, recipe, 0)).metrics.per_class == record.final.per_class


def test_compare_shows_stage_2_and_posthoc_rows_beside_stage_1_without_double_counting(tmp_path):
    out = tmp_path / "runs"
    ce = load_recipe(str(tiny_recipe(tmp_path, epochs=1)))
    crt = load_recipe(str(_stage2(tmp_path, "crt", epochs=1)))
    for seed in (0, 1):
        train_one(ce, seed=seed, out=out, device=CPU)
        train_one(crt, seed=seed, out=out, device=CPU)
        assert runner.invoke(app, ["eval", str(run_dir_for(out, ce, seed)), "--posthoc", "tau-norm=1.0"]).exit_code == 0
        assert runner.invoke(app, ["eval", str(run_dir_for(out, crt, seed)), "--posthoc", "ncm"]).exit_code == 0
    records = [(p, load_record(p)) for p in find_records([out])]
    assert len(records) == 8
    [table] = compare_records(records).tables
    rows = [(r.label, r.method_key, r.n, sorted(r.seeds)) for r in table.rows]
    assert rows == [("CE", "ce", 2, [0, 1]), ("CE + cRT", "ce+crt", 2, [0, 1]),
                    ("CE + cRT + NCM", "ce+crt+ncm", 2, [0, 1]),
                    ("CE + tau-norm (tau 1.0)", "ce+tau-norm", 2, [0, 1])]
    result = runner.invoke(app, ["compare", str(out), "--format", "csv"])
    assert result.exit_code == 0 and "CE + cRT + NCM" in result.output


def test_logit_adjustment_of_an_ldam_run_uses_its_scale(tmp_path):
    out = tmp_path / "runs"
    ldam = load_recipe(str(tiny_recipe(tmp_path, "tiny-ldam", 'name = "ldam"', epochs=1,
                                       extra='[model.params]\nhead = "cosine"')))
    train_one(ldam, seed=0, out=out, device=CPU)
    run = run_dir_for(out, ldam, 0)
    result = runner.invoke(app, ["eval", str(run), "--posthoc", "logit-adjust=1.0"])
    assert result.exit_code == 0, result.output
    rec = load_record(run / "posthoc" / "logit-adjust-1.0" / "record.json")
    assert rec.init_from.logit_scale == 30.0 and rec.init_from.method_key == "ldam"
    data = load_longtailed(ldam.recipe.data)
    model = _trained_model(ldam, ckpt.load_checkpoint(run / "checkpoint.pt"))
    feats, labels = extract_features(model, data.test_images, data.test_labels, CPU)
    cos = F.normalize(feats.double(), dim=1) @ F.normalize(model.head.weight.double(), dim=1).t()
    prior = torch.tensor(data.class_counts, dtype=torch.float64) / sum(data.class_counts)
    assert rec.final.per_class == _hand_accuracy(30.0 * cos - prior.log(), labels)
    refused = runner.invoke(app, ["eval", str(run), "--posthoc", "tau-norm=1.0"])
    assert refused.exit_code == 2 and "tau-norm does nothing on a cosine head" in refused.stderr

    # a recipe stage from a bare checkpoint cannot know s: refused before anything is written
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "checkpoint.pt", bare / "checkpoint.pt")
    stage = _stage2(tmp_path, "logit-adjust", base="tiny-ldam", extra='[model.params]\nhead = "cosine"')
    recipe = load_recipe(str(stage), [f"train.init_from={bare / 'checkpoint.pt'}"])
    with pytest.raises(LtrankError, match="logit-adjust on a cosine head needs the scale"):
        train_one(recipe, seed=0, out=tmp_path / "other", device=CPU)
    assert not (tmp_path / "other").exists()
