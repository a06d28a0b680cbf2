"""`compare`, `eval` and `train` read well (issue 15 items 3-7): at 80 columns no line is longer
and no word is broken, data is never parsed as rich markup (a hash suffix survives), bold marks a
best among several rows only, one run shows its value alone, piped training prints a line per
epoch, the test and feature passes report progress and can be capped, counts agree with their
nouns, flags look like flags in help, floats are rounded for display only, and the record names
the commit it was built from."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _datafakes import write_npz  # noqa: E402
from _tiny_recipe import tiny_recipe  # noqa: E402
from record_factory import make_record  # noqa: E402

from ltrank.catalog import LOSSES  # noqa: E402
from ltrank.cli.app import app  # noqa: E402
from ltrank.compare import anchor_sources, compare_records, reference_lines  # noqa: E402
from ltrank.engine.capped import balanced_indices  # noqa: E402
from ltrank.groups import SCHEMES  # noqa: E402
from ltrank.recipe import config_hash, load_recipe  # noqa: E402
from ltrank.reference import load_reference  # noqa: E402
from ltrank.records import load_record, write_record  # noqa: E402
from ltrank.registry import USES_CLASS_WEIGHTS, Spec  # noqa: E402
from ltrank.run_folder import find_records  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ROOT = Path(__file__).resolve().parents[1]
BASE = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
CBD = {"loss": {"name": "ap_cb_delta", "params": {"mode": "multiply", "beta": 0.99}}, "schedule": {"name": "fixed"}}
POOL_NOTE = "long-tail pool: the split has the reference per-class counts but not all the reference images"


def _run(*args: str, terminal: bool = False, columns: int | None = 80, raw: bool = False):
    env = {"COLUMNS": None if columns is None else str(columns), "TTY_COMPATIBLE": "1" if terminal else None}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout if raw else ANSI.sub("", result.stdout)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _assert_fits(output: str, width: int = 80) -> None:
    long = [line for line in output.splitlines() if len(line) > width]
    assert not long, f"{len(long)} lines longer than {width}:\n" + "\n".join(long)


def _logical_rows(output: str, wrapping: int = 0) -> list[list[str]]:
    """Table rows (not the header, drawn with ┃) with wrapped lines joined: a line whose cells
    other than column ``wrapping`` are all empty continues the row above (a wrapped text)."""
    rows: list[list[str]] = []
    for line in output.splitlines():
        if "│" not in line:
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if any(c for i, c in enumerate(cells) if i != wrapping) or not rows:
            rows.append(cells)
        else:
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
    return rows


def _write(root: Path, name: str, record) -> None:
    write_record(root / name / "record.json", record)


@pytest.fixture
def runs(tmp_path):
    """Two configurations of one method (hash suffixes), a long label, a method with anchors, a
    quickstart-like 2-epoch run, and data from a pool (a data note)."""
    short = {**CBD, "train": {"epochs": 2}}
    progressive = {"loss": {"name": "ap_cb_primary", "params": {"beta": 0.99}}, "schedule": {"name": "progressive"}}
    ldam = {"loss": {"name": "ldam", "params": {"beta": 0.9999}}, "schedule": {"name": "drw"}}
    shifted = [v + 0.031 for v in BASE]
    _write(tmp_path, "a0", make_record(BASE, recipe=short, recipe_name="quickstart", config_hash="dd07246d9c1e"))
    _write(tmp_path, "b0", make_record(shifted, recipe=CBD, config_hash="0a1b2c3d4e5f"))
    _write(tmp_path, "b1", make_record(BASE, recipe=CBD, config_hash="0a1b2c3d4e5f", seed=1))
    _write(tmp_path, "c0", make_record(BASE, recipe=progressive, recipe_name="cifar10-ir100-cbprimary-progressive",
                                        config_hash="cc"))
    _write(tmp_path, "d0", make_record(shifted, recipe=ldam, recipe_name="cifar10-ir100-ldam-drw", config_hash="dd"))
    for path in find_records([tmp_path]):
        rec = load_record(path)
        write_record(path, rec.model_copy(update={"data": rec.data.model_copy(update={"note": POOL_NOTE})}))
    return tmp_path


def _expected(root: Path):
    records = [(p, load_record(p)) for p in find_records([root])]
    return compare_records(records, reference=load_reference("thesis"))


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
def test_compare_with_reference_fits_80_columns_without_breaking_words(runs, terminal):
    output = _run("compare", str(runs), "--reference", "thesis", terminal=terminal)
    _assert_fits(output)
    comp = _expected(runs)
    footnotes = anchor_sources(comp)
    expected = []
    for row in comp.tables[0].rows:
        expected.append(row.label)
        expected += [label.strip() for label, _ in reference_lines(comp, row, footnotes)]
    shown = [cells[0] for cells in _logical_rows(output)]
    assert [s.split() for s in shown] == [e.split() for e in expected]  # whole words, in order
    # the hash-looking suffixes of the two AP CB Delta configurations are not swallowed as markup
    assert "AP CB Delta (beta 0.99) [dd07246d]" in expected and "AP CB Delta (beta 0.99) [0a1b2c3d]" in expected
    assert max(len(label) for label in shown) < 40  # no anchor label wrapped into a tall column
    flat = _flat(output)
    for text in [comp.caption, comp.legend, *footnotes, *comp.tables[0].notes]:
        assert _flat(text) in flat, text
    assert SCHEMES["thirds"].summary in flat  # what Head/Body/Tail mean, in one line
    assert "[dd07246d]: trained 2 epochs, the thesis numbers beside it 200; a run this short demonstrates " \
           "the path, not the method" in flat
    assert f"the runs' data: {POOL_NOTE}" in flat


def test_compare_piped_without_columns_is_not_padded(runs):
    output = _run("compare", str(runs), "--reference", "thesis", columns=None)
    lines = output.splitlines()
    assert all(line == line.rstrip() for line in lines)
    table = [line for line in lines if line.startswith(("┏", "│", "└"))]
    assert len({len(line) for line in table}) == 1 and len(table[0]) < 120  # natural width
    assert "│   thesis: LDAM (LDAM-DRW style)" in output  # wide enough: nothing compacted or wrapped
    assert any(line.startswith("note: ") and POOL_NOTE in line for line in lines)  # a note is one line


def test_markup_looking_names_from_data_are_shown_literally(tmp_path):
    plugin = {"loss": {"name": "not_installed_loss"}}
    _write(tmp_path, "a", make_record(BASE, recipe=plugin, recipe_name="[bold red]mine[/bold red]", config_hash="x1"))
    _write(tmp_path, "b", make_record(BASE, recipe=plugin, recipe_name="[link=file:///etc]t[/link]", config_hash="x2"))
    for terminal in (False, True):
        output = _run("compare", str(tmp_path), terminal=terminal)
        assert "[bold red]mine[/bold red]" in _flat(output) and "[link=file:///etc]t[/link]" in _flat(output)


def test_duplicated_seed_note_names_the_row_it_means(tmp_path):
    _write(tmp_path, "a0", make_record(BASE, recipe=CBD, config_hash="aaaaaaaa1111"))
    _write(tmp_path, "a0bis", make_record(BASE, recipe=CBD, config_hash="aaaaaaaa1111"))
    _write(tmp_path, "b0", make_record(BASE, recipe=CBD, config_hash="bbbbbbbb2222"))
    output = _flat(_run("compare", str(tmp_path)))
    assert "note: AP CB Delta (beta 0.99) [aaaaaaaa]: seed 0 appears more than once; every run is counted" in output
    assert "[bbbbbbbb]: seed" not in output


def test_single_run_table_has_no_bold_and_no_spread(tmp_path):
    _write(tmp_path, "a", make_record(BASE, recipe=CBD))
    raw = _run("compare", str(tmp_path), terminal=True, raw=True)
    (row_line,) = [line for line in raw.splitlines() if "AP CB Delta" in line]
    assert "\x1b[1m" not in row_line  # nothing is "best" in a table of one row
    (cells,) = _logical_rows(ANSI.sub("", raw))
    assert cells == ["AP CB Delta (beta 0.99)", "1", "45.00", "75.00", "40.00", "10.00"]  # n = 1, no "± -"
    md = _run("compare", str(tmp_path), "--format", "markdown")
    assert "| AP CB Delta (beta 0.99) | 1 | 45.00 | 75.00 | 40.00 | 10.00 |" in md and "**" not in md


def test_bold_marks_the_best_of_several_rows_only(tmp_path):
    _write(tmp_path, "a", make_record(BASE, recipe=CBD, config_hash="a"))
    _write(tmp_path, "b", make_record([v + 0.05 for v in BASE[:4]] + BASE[4:], recipe_name="cifar10-ir100-ap",
                                      recipe={"loss": {"name": "ap"}}, config_hash="b"))
    raw = _run("compare", str(tmp_path), terminal=True, raw=True)
    bold = {line.split("│")[1].strip(): re.findall(r"\x1b\[1m *([0-9.]+)", line)
            for line in raw.splitlines() if line.startswith("│")}
    bold = {ANSI.sub("", k): v for k, v in bold.items()}
    assert bold == {"AP": ["47.00", "80.00"], "AP CB Delta (beta 0.99)": []}  # Body and Tail tie: no best


def test_plugin_loss_label_names_its_rows(tmp_path, monkeypatch):
    class Plain(nn.Module):
        def __init__(self, class_counts):
            super().__init__()

        def forward(self, logits, targets):
            return F.cross_entropy(logits, targets)

    spec = Spec(Plain, "a plugin loss", label="My Balanced", capabilities=frozenset({USES_CLASS_WEIGHTS}))
    monkeypatch.setitem(LOSSES._entries, "my_balanced_loss", spec)
    _write(tmp_path, "a", make_record(BASE, recipe={"loss": {"name": "my_balanced_loss"}}, recipe_name="mine"))
    rows = _logical_rows(_run("compare", str(tmp_path)))
    assert rows[0][0] == "My Balanced"
    drw = {"loss": {"name": "my_balanced_loss"}, "schedule": {"name": "drw", "params": {"beta": 0.999}}}
    _write(tmp_path, "b", make_record(BASE, recipe=drw, recipe_name="mine-drw", config_hash="other"))
    labels = [r[0] for r in _logical_rows(_run("compare", str(tmp_path)))]
    assert sorted(labels) == ["My Balanced", "mine-drw (beta 0.999)"]  # a weighting schedule: the recipe's name


def test_json_and_records_keep_full_precision(tmp_path):
    per_class = [1 / 3, 2 / 3, 1 / 7, 0.123456789, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    _write(tmp_path, "a", make_record(per_class, recipe=CBD))
    _write(tmp_path, "b", make_record([v * 0.9 for v in per_class], recipe=CBD, seed=1))
    records = [load_record(p) for p in find_records([tmp_path])]
    assert records[0].final.per_class[0] == 100 * (1 / 3)  # the record: not rounded
    data = json.loads(_run("compare", str(tmp_path), "--format", "json"))
    cell = data["tables"][0]["rows"][0]["cells"]["Average"]
    averages = [statistics.fmean(r.final.per_class) for r in records]
    assert cell["mean"] == pytest.approx(statistics.fmean(averages), rel=1e-15)
    assert cell["std"] == pytest.approx(statistics.stdev(averages), rel=1e-12)
    assert round(cell["mean"], 2) != cell["mean"]  # more than the two decimals the table shows
    assert data["legend"] == SCHEMES["thirds"].summary


# ---------------------------------------------------------------------------------------- eval
NAMES = ["[red]airplane[/red]", "a class whose name is long enough to wrap inside the table", "bird", "cat"]


@pytest.fixture
def trained(tmp_path):
    write_npz(tmp_path / "tiny.npz", class_names=np.asarray(NAMES))
    recipe = tiny_recipe(tmp_path, epochs=1)
    out = tmp_path / "runs"
    _run("train", "--recipe", str(recipe), "--out", str(out), "--device", "cpu")
    (path,) = find_records([out])
    return path.parent


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
def test_eval_fits_80_columns_and_shows_class_names_literally(trained, terminal):
    output = _run("eval", str(trained), "--per-class", terminal=terminal)
    _assert_fits(output)
    per_class = _logical_rows(output[output.index("per-class test accuracy"):], wrapping=1)
    assert [cells[1].split() for cells in per_class] == [name.split() for name in NAMES]
    assert SCHEMES["thirds"].summary in _flat(output)
    assert "evaluated 12 test images on cpu" in output


def test_eval_of_a_capped_run_says_it_tested_on_part_of_the_test_set(tmp_path):
    recipe = tiny_recipe(tmp_path, epochs=1)
    out = tmp_path / "runs"
    _run("train", "--recipe", str(recipe), "--out", str(out), "--device", "cpu", "--set", "eval.max_batches=1",
         "--set", "eval.batch_size=4")
    (path,) = find_records([out])
    record = load_record(path)
    assert record.recipe["eval"]["max_batches"] == 1
    assert any("eval.max_batches = 1" in w and "not a result" in w for w in record.warnings)
    assert "eval.max_batches = 1, a smoke run" in _flat(_run("eval", str(path.parent)))
    assert "a smoke run (eval.max_batches = 1): its numbers are not a result" in _flat(_run("compare", str(out)))


# ---------------------------------------------------------------------------------------- train
EPOCH_LINE = re.compile(r"^seed 0 epoch (\d)/2: loss \d+\.\d{4}, train \d+\.\d{2}%(, test \d+\.\d{2}%)?, "
                        r"lr [0-9.e-]+, \d+ s(, ETA \d+ s)?$")


def test_training_prints_one_line_per_epoch_when_not_a_terminal(tmp_path):
    recipe = tiny_recipe(tmp_path, epochs=2)
    output = _run("train", "--recipe", str(recipe), "--out", str(tmp_path / "runs"), "--device", "cpu",
                  "--set", "eval.every=2")
    lines = output.splitlines()
    assert lines[0] == "seed 0: 2 epochs of 5 batches on cpu"
    epoch_lines = [line for line in lines if line.startswith("seed 0 epoch")]
    matches = [EPOCH_LINE.match(line) for line in epoch_lines]
    assert all(matches), epoch_lines
    assert [m[1] for m in matches] == ["1", "2"]
    assert matches[0][2] is None and matches[1][2] is not None  # tested after epoch 2 only (eval.every = 2)
    assert matches[0][3] is not None and matches[1][3] is None  # an ETA while epochs remain
    assert "\x1b[" not in output


def test_one_epoch_is_singular(tmp_path):
    recipe = tiny_recipe(tmp_path, epochs=1)
    output = _run("train", "--recipe", str(recipe), "--out", str(tmp_path / "runs"), "--device", "cpu",
                  "--set", "train.max_batches_per_epoch=1")
    assert output.splitlines()[0] == "seed 0: 1 epoch of 1 batch on cpu"
    compared = _run("compare", str(tmp_path / "runs"))
    for text in (output, compared):
        assert not re.search(r"\b1 (epochs|batches|runs|images)\b", text), text


def test_progress_bars_show_the_test_pass_and_the_feature_pass():
    import io

    from rich.console import Console

    from ltrank.cli.train import ProgressView
    from ltrank.engine.events import (
        EpochStarted, EvalEnded, EvalStarted, FeaturePassEnded, FeaturePassStarted, PassProgress, RunStarted)

    def shown(events) -> str:
        out = io.StringIO()
        with ProgressView(Console(file=out, force_terminal=True, width=150)) as view:
            for event in events:
                view(event)
        return ANSI.sub("", out.getvalue())

    start = RunStarted(seed=0, start_epoch=1, total_epochs=2, batches_per_epoch=3, device="cpu")
    text = shown([start, FeaturePassStarted(1, 12406, 13), PassProgress(5, 13)])
    assert "features" in text and "5/13" in text and "12,406 training images for the loss" in text
    text = shown([start, EpochStarted(1, 2, 0.1, 3), EvalStarted(1, 10000, 10), PassProgress(4, 10)])
    assert "testing" in text and "4/10" in text and "10,000 test images" in text
    assert "test 41.25%" in shown([start, EvalStarted(1, 10, 1), PassProgress(1, 1), EvalEnded(1, 41.25, 0.5),
                                  FeaturePassEnded(2, 0.1)])


class _ReadsFeatures(nn.Module):
    """Cross-entropy whose epoch hook reads the training set through ctx.feature_batches()."""

    def __init__(self, class_counts):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def epoch_start(self, ctx) -> None:
        self.seen.append(torch.cat([y.cpu() for _, y in ctx.feature_batches()]))

    def forward(self, logits, targets):
        return F.cross_entropy(logits, targets)


def test_trainer_reports_and_caps_the_test_pass_and_the_feature_pass(tmp_path, monkeypatch):
    from ltrank.data import load_longtailed
    from ltrank.engine.events import EvalEnded, EvalStarted, FeaturePassEnded, FeaturePassStarted, PassProgress
    from ltrank.engine.trainer import Trainer

    monkeypatch.setitem(LOSSES._entries, "reads_features", Spec(_ReadsFeatures, "test loss reading features"))
    path = tiny_recipe(tmp_path, "tiny-features", 'name = "reads_features"', epochs=1)
    capped = load_recipe(str(path), ["train.max_batches_per_epoch=1", "eval.max_batches=1", "eval.batch_size=2"])
    data = load_longtailed(capped.recipe.data, None)
    events: list = []
    trainer = Trainer(capped.recipe, data, seed=0, device=torch.device("cpu"), callback=events.append)
    trainer.fit()
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("FeaturePassStarted") < kinds.index("EpochStarted") < kinds.index("EvalStarted")
    assert kinds.index("EvalStarted") < kinds.index("EvalEnded") < kinds.index("EpochEnded")
    feature = next(e for e in events if isinstance(e, FeaturePassStarted))
    labels = trainer.losses[0].module.seen[0]
    # capped like the epoch: one batch of 8 training images, two of each of the 4 classes
    assert feature.images == 8 == len(labels) and torch.bincount(labels, minlength=4).tolist() == [2, 2, 2, 2]
    assert any(isinstance(e, FeaturePassEnded) for e in events)
    evaluated = next(e for e in events if isinstance(e, EvalStarted))
    assert evaluated.images == 4 and evaluated.batches == 2  # 1 x 2 images asked, one per class kept
    progress = [e for e in events if isinstance(e, PassProgress)]
    assert (progress[-1].batch, progress[-1].batches) == (2, 2)
    ended = next(e for e in events if isinstance(e, EvalEnded))
    assert ended.top1 == trainer.state.final["top1"]

    # uncapped: the whole training set and test set
    events.clear()
    full = load_recipe(str(path))
    trainer = Trainer(full.recipe, data, seed=0, device=torch.device("cpu"), callback=events.append)
    trainer.fit()
    assert next(e for e in events if isinstance(e, FeaturePassStarted)).images == len(data.train_labels)
    assert next(e for e in events if isinstance(e, EvalStarted)).images == len(data.test_labels)


def _round_robin(labels: list[int], limit: int) -> list[int]:
    """Slow reference: the k-th item of every class (label order) before any (k+1)-th."""
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    picked, k = [], 0
    while len(picked) < len(labels):
        for label in sorted(by_class):
            if k < len(by_class[label]):
                picked.append(by_class[label][k])
        k += 1
    return sorted(picked[: max(limit, len(by_class))])


@pytest.mark.parametrize("limit", [0, 1, 3, 7, 10, 25, 1000])
def test_balanced_indices_take_classes_in_turn(limit):
    labels = np.random.RandomState(limit).choice([0, 2, 5, 6], size=40, p=[0.6, 0.25, 0.1, 0.05]).tolist()
    got = balanced_indices(torch.tensor(labels), limit).tolist()
    assert got == (_round_robin(labels, limit) if limit < len(labels) else list(range(len(labels))))


def test_eval_max_batches_enters_the_config_hash_only_when_set(tmp_path):
    path = tiny_recipe(tmp_path, epochs=1)
    plain = load_recipe(str(path))
    resolved = plain.as_dict()
    assert resolved["eval"]["max_batches"] is None
    without = json.loads(json.dumps(resolved))
    del without["eval"]["max_batches"]
    assert plain.config_hash == config_hash(without)  # adding the option changed no existing hash
    assert load_recipe(str(path), ["eval.max_batches=2"]).config_hash != plain.config_hash


# ---------------------------------------------------------------------------------------- help
def _command_paths(command, prefix=()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*prefix, name))


def test_flags_show_as_flags_in_every_help():
    import typer

    paths = list(_command_paths(typer.main.get_command(app)))
    assert ("train",) in paths and ("list", "losses") in paths
    for path in paths:
        text = _run(*path, "--help", columns=200)
        assert "<bool>" not in text, path
    train_help = _run("train", "--help", columns=200)
    assert re.search(r"--resume +Continue unfinished runs", train_help)
    assert re.search(r"--plot +--no-plot +Save a PNG", _run("make-dataset", "--help", columns=200))


# ---------------------------------------------------------------------------------------- git sha
def test_environment_names_the_checkout_commit_or_says_why_not(tmp_path):
    from ltrank.records import BUILD_INFO, _git_sha, collect_environment

    if (ROOT / ".git").exists() and shutil.which("git"):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        env = collect_environment("cpu")
        assert (env.git_sha, env.git_sha_note) == (head, None)
    package = tmp_path / "site-packages" / "ltrank"
    package.mkdir(parents=True)
    sha, note = _git_sha(package)
    assert sha is None and "not installed from a git clone" in note
    (package / BUILD_INFO).write_text(json.dumps({"git_sha": "abc123", "git_sha_note": None}))
    assert _git_sha(package) == ("abc123", None)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_wheel_built_from_a_clone_carries_its_commit(tmp_path):
    pytest.importorskip("setuptools", reason="building needs setuptools")
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, clone / name)
    shutil.copytree(ROOT / "ltrank", clone / "ltrank", ignore=shutil.ignore_patterns("__pycache__", "_build_info.json"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=clone, check=True)
    subprocess.run([*git, "add", "-A"], cwd=clone, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=clone, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), str(clone)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("ltrank-*.whl")
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        info = json.loads(archive.read("ltrank/_build_info.json"))
    assert info == {"git_sha": head, "git_sha_note": None}


# ---------------------------------------------------------------------------------------- docs
def test_the_quickstart_time_is_stated_once_the_same_everywhere():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme[readme.index("## Quick start"):readme.index("## Data")]
    stated = re.findall(r"about (\d+) min", quick)
    for recipe in (ROOT / "ltrank" / "recipes" / "quickstart.toml", ROOT / "recipes" / "quickstart.toml"):
        stated += re.findall(r"about (\d+) min", recipe.read_text(encoding="utf-8"))
    assert len(stated) == 3 and len(set(stated)) == 1, stated
    # the data dir comes before the first command, as an absolute path
    assert quick.index("export LTRANK_DATA_DIR=$PWD/") < quick.index("ltrank train")
    assert "ltrank compare runs/quickstart --reference thesis" in quick
    assert "runs/quickstart/<config hash>/seed0/" in quick
