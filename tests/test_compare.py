"""`ltrank compare`: aggregation maths against hand computation, formats, bold best, reference
merge, mixed datasets, runs left out, plot."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys

import pytest
from record_factory import make_record
from rich.console import Console
from typer.testing import CliRunner

from ltrank.cli.app import app
from ltrank.cli.compare import _rich_tables
from ltrank.compare import Stat, compare_records, format_stat, to_csv, to_json, to_markdown
from ltrank.errors import LtrankError
from ltrank.reference import load_reference
from ltrank.records import write_record

BASE = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]  # thirds (4/3/3): Head 75, Body 40, Tail 10 (%)
runner = CliRunner()


def shifted(delta: float) -> list[float]:
    return [v + delta for v in BASE]


def pairs(*records):
    return [(f"r{i}/record.json", r) for i, r in enumerate(records)]


def test_mean_and_sample_std_by_hand():
    recs = pairs(make_record(shifted(0.0), seed=0), make_record(shifted(0.03), seed=1), make_record(shifted(0.09), seed=2))
    table = compare_records(recs).tables[0]
    (row,) = table.rows
    assert row.n == 3 and row.seeds == [0, 1, 2]
    # Head per run: 75, 78, 84 -> mean 79, sample std sqrt(((-4)^2 + (-1)^2 + 5^2) / 2) = sqrt(21)
    assert row.cells["Head"].mean == pytest.approx(79.0)
    assert row.cells["Head"].std == pytest.approx(math.sqrt(21.0))
    assert row.cells["Tail"].mean == pytest.approx(14.0)
    assert row.cells["Average"].mean == pytest.approx(49.0)
    assert row.per_class[0] == pytest.approx(94.0)


def test_single_run_shows_its_value_alone_and_empty_group_is_empty():
    comp = compare_records(pairs(make_record(BASE)), scheme="shots")
    row = comp.tables[0].rows[0]
    assert row.cells["Average"].std is None
    assert format_stat(row.cells["Average"]) == "45.00"
    assert row.cells["Few"] == Stat(None, None, 0)  # CIFAR-10-LT IR100 has no class under 20 images
    assert format_stat(row.cells["Few"]) == "empty"
    assert format_stat(Stat(70.123, 1.0, 2)) == "70.12 ± 1.00"


def test_rows_per_config_hash_in_thesis_order_with_labels():
    recs = pairs(
        make_record(BASE, config_hash="cbd", seed=0),
        make_record(shifted(0.05), recipe_name="cifar10-ir100-ap", config_hash="ap", recipe={"loss": {"name": "ap"}}),
        make_record(shifted(0.02), config_hash="cbd", seed=1),
    )
    rows = compare_records(recs).tables[0].rows
    assert [(r.label, r.n) for r in rows] == [("AP", 1), ("AP CB Delta (beta 0.99)", 2)]


def _two_methods():
    return pairs(
        make_record(BASE, config_hash="cbd"),
        make_record([0.95, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.0, 0.0], recipe_name="cifar10-ir100-ap",
                    config_hash="ap", recipe={}),
    )


def test_best_per_column_bold_in_markdown_and_rich():
    comp = compare_records(_two_methods())
    # AP: Head 76.25, Tail 6.67, Average 44.5; CB Delta: Head 75, Tail 10, Average 45; Body: both 40,
    # so no row is best there and nothing is bold
    assert comp.best(comp.tables[0]) == {"Average": {1}, "Head": {0}, "Tail": {1}}
    md = to_markdown(comp)
    lines = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| AP")}
    assert "**76.25**" in lines["AP"] and "**40.00" not in md and "**6.67" not in lines["AP"]
    assert "**45.00**" in lines["AP CB Delta (beta 0.99)"] and "**10.00**" in lines["AP CB Delta (beta 0.99)"]
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=200)
    for table in _rich_tables(comp):
        console.print(table)
    text = out.getvalue()
    bold = set(re.findall(r"\x1b\[1m *([0-9.]+)\x1b\[0m", text))
    assert bold == {"76.25", "45.00", "10.00"}  # Body ties: no best


def test_last_epoch_by_default_best_epoch_on_request():
    rec = make_record(BASE, best_per_class=shifted(0.05))
    last = compare_records(pairs(rec))
    best = compare_records(pairs(rec), metric="best")
    assert last.tables[0].rows[0].cells["Average"].mean == pytest.approx(45.0)
    assert best.tables[0].rows[0].cells["Average"].mean == pytest.approx(50.0)
    assert "last epoch" in last.caption and "best epoch" in best.caption


def test_mixed_datasets_error_names_them_unless_allowed():
    c100 = [500 - 5 * i for i in range(100)]
    recs = pairs(make_record(BASE), make_record([0.5] * 100, source="cifar100", counts=c100, config_hash="h100"),
                 make_record(BASE, ir=50.0, config_hash="ir50"))
    with pytest.raises(LtrankError, match=r"cifar10 IR100 \(1 run\), cifar100 IR100 \(1 run\), cifar10 IR50 .*--allow-mixed"):
        compare_records(recs)
    comp = compare_records(recs, allow_mixed=True)
    assert [t.dataset_key for t in comp.tables] == ["cifar10-ir100", "cifar100-ir100", "cifar10-ir50"]
    assert len(to_markdown(comp).split("### ")) == 4


def test_unfinished_runs_left_out_with_a_note():
    recs = pairs(make_record(BASE), make_record(BASE, status="diverged", seed=1), make_record(BASE, status="running", seed=2))
    comp = compare_records(recs)
    assert comp.tables[0].rows[0].n == 1
    assert comp.notes == ["left out r1/record.json: run diverged", "left out r2/record.json: run running"]
    with pytest.raises(LtrankError, match="the run record is not a finished run"):
        compare_records(pairs(make_record(BASE, status="interrupted")))
    with pytest.raises(LtrankError, match="none of the 2 run records is a finished run"):
        compare_records(pairs(make_record(BASE, status="interrupted"), make_record(BASE, status="failed", seed=1)))


def test_reference_merge_by_dataset_and_method_key():
    thesis = load_reference("thesis")
    cbd = {"loss": {"name": "ap_cb_delta", "params": {"mode": "multiply", "beta": 0.99}}, "schedule": {"name": "fixed"}}
    recs = pairs(
        make_record(BASE, recipe=cbd),
        make_record(BASE, recipe_name="quickstart", config_hash="q", recipe=cbd),  # method read from the recipe
        make_record(BASE, recipe_name="cifar10-ir100-ldam-drw", config_hash="l",
                    recipe={"loss": {"name": "ldam", "params": {"beta": 0.9999}}, "schedule": {"name": "drw"}}),
        make_record(BASE, recipe_name="mine", config_hash="m", recipe={"loss": {"name": "my_plugin_loss"}}),
        make_record(BASE, recipe_name="cifar10-ir100-bs", config_hash="b", recipe={"loss": {"name": "balanced_softmax"}}),
    )
    comp = compare_records(recs, reference=thesis)
    rows = {r.recipe_name: r for r in comp.tables[0].rows}
    assert rows["cifar10-ir100-cbdelta"].reference.Average.mean == 74.77
    assert rows["quickstart"].method_key == "cbdelta" and rows["quickstart"].reference.Tail.mean == 65.22
    # same label, different configs: told apart by config hash
    assert {rows["quickstart"].label, rows["cifar10-ir100-cbdelta"].label} == {
        "AP CB Delta (beta 0.99) [q]", "AP CB Delta (beta 0.99) [hash-a]"}
    assert rows["cifar10-ir100-ldam-drw"].label == "LDAM-DRW (beta 0.9999)"
    assert rows["cifar10-ir100-ldam-drw"].reference.Tail.mean == 75.65
    assert [a.top1 for a in rows["cifar10-ir100-ldam-drw"].anchors] == [77.73, 77.03]
    assert rows["mine"].reference is None and rows["mine"].anchors == [] and rows["mine"].label == "mine"
    assert [a.top1 for a in rows["cifar10-ir100-bs"].anchors] == [77.54]
    md = to_markdown(comp)
    assert "| *thesis: AP CB Delta* | | 74.77 ± 0.09 | 85.74 ± 0.58 | 69.70 ± 1.15 | 65.22 ± 0.28 |" in md
    assert "| *Bag of Tricks for long-tailed recognition, model gallery: LDAM-DRW, best epoch* | | 77.73 |" in md
    ir50 = compare_records(pairs(make_record(BASE, ir=50.0, recipe_name="cifar10-ir50-x", recipe=cbd)), reference=thesis)
    assert ir50.tables[0].rows[0].reference.Average.mean == 78.79


def test_method_read_from_recipe_contents_before_name():
    divide = {"loss": {"name": "ap_cb_delta", "params": {"mode": "divide", "beta": 0.999}},
              "schedule": {"name": "progressive"}}
    (row,) = compare_records(pairs(make_record(BASE, recipe=divide))).tables[0].rows
    assert row.method_key == "cbdelta-divide-progressive"
    ce = {"loss": {"name": "ce", "params": {"beta": 0.9999}}, "schedule": {"name": "none"}}
    (row,) = compare_records(pairs(make_record(BASE, recipe_name="cifar10-ir100-ce", recipe=ce))).tables[0].rows
    assert (row.method_key, row.label) == ("ce", "CE")  # beta unused without class weights: not shown
    ce_drw = {"loss": {"name": "ce", "params": {"beta": 0.9999}}, "schedule": {"name": "drw"}}
    (row,) = compare_records(pairs(make_record(BASE, recipe_name="my-ce-drw", recipe=ce_drw)),
                             reference=load_reference("thesis")).tables[0].rows
    assert (row.method_key, row.label, row.reference) == ("my-ce-drw", "my-ce-drw (beta 0.9999)", None)


def test_reference_with_shots_shows_only_average():
    comp = compare_records(pairs(make_record(BASE)), scheme="shots", reference=load_reference("thesis"))
    rows = list(csv.DictReader(io.StringIO(to_csv(comp))))
    assert rows[1]["kind"] == "thesis" and rows[1]["Average_mean"] == "74.7700" and rows[1]["Many_mean"] == ""
    assert any("thirds groups only" in n for n in comp.notes)


def test_csv_and_json_formats():
    recs = pairs(make_record(shifted(0.0), seed=0), make_record(shifted(0.02), seed=1))
    comp = compare_records(recs)
    (row,) = list(csv.DictReader(io.StringIO(to_csv(comp))))
    assert row["n"] == "2" and row["seeds"] == "0 1" and row["Head_mean"] == "76.0000"
    assert float(row["Head_std"]) == pytest.approx(math.sqrt(2.0), abs=1e-4)
    data = json.loads(to_json(comp))
    assert data["metric"] == "last" and data["columns"] == ["Average", "Head", "Body", "Tail"]
    cell = data["tables"][0]["rows"][0]["cells"]["Tail"]
    assert cell["mean"] == pytest.approx(11.0) and cell["n"] == 2


def _write_runs(root):
    write_record(root / "cbd" / "s0" / "record.json", make_record(BASE, seed=0))
    write_record(root / "cbd" / "s1" / "record.json", make_record(shifted(0.02), seed=1))
    write_record(root / "bad" / "record.json", make_record(BASE, status="diverged", seed=5, config_hash="z"))


def test_cli_compare_formats_and_notes(tmp_path):
    _write_runs(tmp_path)
    result = runner.invoke(app, ["compare", str(tmp_path), "--reference", "thesis"])
    assert result.exit_code == 0, result.output
    assert "AP CB Delta (beta 0.99)" in result.output and "thesis: AP CB Delta" in result.output
    assert "last epoch" in result.output and "run diverged" in result.output
    md = runner.invoke(app, ["compare", str(tmp_path), "--format", "markdown", "--metric", "best"])
    assert md.exit_code == 0 and "| AP CB Delta (beta 0.99) | 2 | 46.00 ± 1.41 |" in md.output  # one row: no bold
    js = runner.invoke(app, ["compare", str(tmp_path), "--format", "json", "--groups", "shots"])
    assert json.loads(js.stdout)["scheme"] == "shots"


def test_cli_compare_user_errors_exit_2_in_one_line(tmp_path):
    _write_runs(tmp_path)
    write_record(tmp_path / "c100" / "record.json",
                 make_record([0.5] * 100, source="cifar100", counts=[500 - 5 * i for i in range(100)], config_hash="x"))
    mixed = runner.invoke(app, ["compare", str(tmp_path)])
    assert mixed.exit_code == 2 and "different datasets" in mixed.output and "Traceback" not in mixed.output
    assert runner.invoke(app, ["compare", str(tmp_path), "--allow-mixed"]).exit_code == 0
    broken = tmp_path / "broken" / "record.json"
    broken.parent.mkdir()
    broken.write_text("{")
    bad = runner.invoke(app, ["compare", str(broken)])
    assert bad.exit_code == 2 and str(broken) in bad.output and len(bad.output.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(app, ["compare", str(empty)]).exit_code == 2
    assert "unknown reference" in runner.invoke(app, ["compare", str(tmp_path / "cbd"), "--reference", "nope"]).output


def test_plot_written_atomically(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    _write_runs(tmp_path)
    out = tmp_path / "per_class.png"
    result = runner.invoke(app, ["compare", str(tmp_path / "cbd"), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, monkeypatch):
    _write_runs(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = runner.invoke(app, ["compare", str(tmp_path / "cbd"), "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 2 and "pip install 'ltrank[plot]'" in result.output


def test_reference_notes_a_shorter_training_budget():
    short = {"loss": {"name": "ap_cb_delta", "params": {"beta": 0.99}}, "schedule": {"name": "fixed"},
             "train": {"epochs": 30}}
    comp = compare_records(pairs(make_record(BASE, recipe=short)), reference=load_reference("thesis"))
    assert comp.tables[0].notes == ["AP CB Delta (beta 0.99): trained 30 epochs, the thesis numbers beside it 200"]
    full = dict(short, train={"epochs": 200})
    assert compare_records(pairs(make_record(BASE, recipe=full)), reference=load_reference("thesis")).tables[0].notes == []
    # DRO-LT: 100 epochs of its own on top of a 200-epoch CE model, as in the thesis: no note
    drolt = {"loss": {"name": "drolt"}, "schedule": {"name": "none"},
             "train": {"epochs": 100, "init_from": "recipe:cifar10-ir100-ce"}}
    comp = compare_records(pairs(make_record(BASE, recipe_name="cifar10-ir100-drolt", recipe=drolt)),
                           reference=load_reference("thesis"))
    assert comp.tables[0].rows[0].reference is not None and comp.tables[0].notes == []


def test_every_shipped_recipe_maps_to_its_thesis_row():
    """The method read from each shipped thesis recipe is its name's suffix, so --reference finds its
    row; every thesis row has a shipped recipe. (Decoupling recipes: test_decoupling_runs.py.)"""
    from ltrank.recipe import load_recipe, shipped_recipes

    thesis = load_reference("thesis")
    names = [n for n in shipped_recipes() if n.split("-")[0] in ("cifar10", "cifar100")
             and not n.endswith(("-crt", "-lws"))]
    assert len(names) == 48
    matched = set()
    for name in names:
        resolved = load_recipe(name)
        cfg = resolved.recipe.data
        dataset = f"{cfg.source}-ir{cfg.imbalance_ratio:g}"
        rec = make_record(BASE, recipe_name=name, recipe=resolved.as_dict(), source=cfg.source, ir=cfg.imbalance_ratio)
        (row,) = compare_records(pairs(rec), reference=thesis).tables[0].rows
        assert row.method_key == name.removeprefix(dataset + "-"), name
        if row.reference is not None:
            matched.add((dataset, row.method_key))
    expected = {(d, m) for d, table in thesis.datasets.items() for m in table.methods}
    assert matched == expected
