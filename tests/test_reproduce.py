"""`ltrank reproduce`: the thesis table map, the command's listing and plan, and the compare table at the end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from record_factory import make_record
from typer.testing import CliRunner

from ltrank.cli.app import app
from ltrank.errors import LtrankError
from ltrank.recipe import find_recipe, load_recipe, shipped_recipes
from ltrank.reference import dataset_key, load_reference
from ltrank.reference.tables import get_table, load_tables
from ltrank.records import write_record
from ltrank.run_folder import RECORD_FILENAME
from ltrank.sweep.plan import dependency, plan_runs

runner = CliRunner()
TABLES = load_tables().tables


def _thesis_table_numbers() -> dict[str, str]:
    """Table number -> dataset key, as thesis.json's 'tables' fields say."""
    out = {}
    for key, ds in load_reference("thesis").datasets.items():
        for number in ds.tables.split(","):
            out[number.strip()] = key
    return out


def test_every_thesis_table_is_mapped_to_its_dataset_and_nothing_else_is():
    thesis = _thesis_table_numbers()
    assert sorted(TABLES, key=lambda n: [int(x) for x in n.split(".")]) == list(TABLES)  # 4.1 ... 4.12 in order
    assert set(TABLES) == set(thesis) == {f"4.{i}" for i in range(1, 13)}
    for number, table in TABLES.items():
        assert table.dataset == thesis[number], number


@pytest.mark.parametrize("number", list(TABLES))
def test_each_tables_recipes_exist_train_its_dataset_and_have_thesis_numbers(number):
    table = TABLES[number]
    reference = load_reference("thesis")
    assert len(set(table.recipes)) == len(table.recipes)
    for name in table.recipes:
        assert name in shipped_recipes() and find_recipe(name).is_file()
        data = load_recipe(name).recipe.data
        assert dataset_key(data.source, data.imbalance_ratio) == table.dataset
        assert reference.row(table.dataset, name.removeprefix(f"{table.dataset}-")) is not None, name
        needed = dependency(load_recipe(name))
        assert needed is None or needed in table.recipes  # DRO-LT's CE run is part of the table's sweep


def test_the_tables_of_a_dataset_cover_every_method_the_thesis_reports_for_it():
    reference = load_reference("thesis")
    for key, ds in reference.datasets.items():
        covered = {r.removeprefix(f"{key}-") for t in TABLES.values() if t.dataset == key for r in t.recipes}
        assert covered == set(ds.methods), key


def test_table_numbers_are_looked_up_forgivingly_and_unknown_ones_are_one_line():
    assert get_table("Table 4.12") == get_table(" 4.12") == TABLES["4.12"]
    expected = r"unknown thesis table '4\.13' \(did you mean .*'4\.12'\?\); the tables are 4\.1, 4\.2, "
    with pytest.raises(LtrankError, match=expected):
        get_table("4.13")


def test_list_shows_every_table_with_its_recipes_and_run_count():
    result = runner.invoke(app, ["reproduce", "--list", "--seeds", "0,1"])
    assert result.exit_code == 0, result.output
    for number, table in TABLES.items():
        row = next(ln for ln in result.output.splitlines() if re.match(rf"\W*{re.escape(number)}\s", ln))
        assert f" {2 * len(table.recipes)} " in row and "cbdelta" in row
    assert "CIFAR-100-LT IR 100" in result.output


def test_dry_run_plans_the_table_with_ce_before_drolt_for_every_seed(tmp_path: Path):
    result = runner.invoke(app, ["reproduce", "4.12", "--out", str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Table 4.12: CB Primary Term (cifar100-ir100), 8 recipes x 3 seeds" in result.output
    assert "24 runs: 24 new" in result.output
    runs = plan_runs(TABLES["4.12"].recipes, [0, 1, 2], tmp_path)
    order = [(r.name.removeprefix("cifar100-ir100-"), r.seed) for r in runs]
    for seed in (0, 1, 2):
        assert order.index(("ce", seed)) < order.index(("drolt", seed))
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_reproduce_without_a_table_is_a_one_line_error():
    result = runner.invoke(app, ["reproduce"])
    assert result.exit_code == 2 and "give a thesis table number" in result.stderr


def _cifar100_ir100_counts() -> list[int]:
    return [int(500 * (1 / 100) ** (c / 99)) for c in range(100)]  # docs/method.md section 1


def test_a_reproduced_table_is_printed_beside_the_thesis(tmp_path: Path):
    """All runs already finished (fabricated records): the sweep skips them and prints the comparison."""
    counts = _cifar100_ir100_counts()
    for run in plan_runs(TABLES["4.12"].recipes, [0, 1], tmp_path):
        per_class = [max(0.0, 0.8 - 0.007 * c - 0.01 * run.seed) for c in range(100)]
        record = make_record(per_class, seed=run.seed, recipe_name=run.name, config_hash=run.config_hash,
                             counts=counts, source="cifar100", ir=100.0,
                             recipe=load_recipe(run.recipe_arg).as_dict())
        run.run_dir.mkdir(parents=True)
        write_record(run.run_dir / RECORD_FILENAME, record)
    result = runner.invoke(app, ["reproduce", "4.12", "--seeds", "0,1", "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "16 runs: 16 skipped (all finished)" in result.output
    assert "cifar100 IR100" in result.output  # compare's table title
    thesis = load_reference("thesis").datasets["cifar100-ir100"].methods
    for key in ("ce", "cbprimary", "drolt"):  # the thesis's own numbers sit under ours
        assert f"{thesis[key].Average.mean:.2f}" in result.output
    assert "n" in result.output and "AP CB Primary" in result.output
