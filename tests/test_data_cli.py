"""`ltrank make-dataset` end to end on tiny files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _datafakes import write_npz  # noqa: E402

from ltrank.cli.app import app  # noqa: E402
from ltrank.data import DatasetConfig, load_longtailed  # noqa: E402
from ltrank.data.manifest import load_manifest  # noqa: E402

runner = CliRunner()


@pytest.fixture
def tiny(tmp_path):
    write_npz(tmp_path / "tiny.npz", num_classes=4, per_class=40)
    return tmp_path


def _make(tiny: Path, *args: str):
    return runner.invoke(app, ["make-dataset", "npz:tiny.npz", "--data-dir", str(tiny), "--out", str(tiny / "out"), *args])


def test_make_dataset_writes_the_manifest_training_uses(tiny):
    result = _make(tiny, "--imbalance-ratio", "8", "--no-plot")
    assert result.exit_code == 0, result.output
    path = tiny / "out" / "npz-tiny-exp-ir8-seed0.json"
    manifest = load_manifest(path)
    assert manifest.class_counts == [40, 20, 10, 5]
    # the same code path as training: load_longtailed gives the identical manifest
    data = load_longtailed(DatasetConfig(source="npz:tiny.npz", imbalance_ratio=8), data_dir=tiny)
    assert manifest == data.manifest
    raw = json.loads(path.read_text())
    assert list(raw) == sorted(raw) and raw["selected_indices"] == data.manifest.selected_indices
    for text in ("Head", "Body", "Tail", "class0", "75", "manifest:"):
        assert text in result.stdout
    assert not (tiny / "out" / "npz-tiny-exp-ir8-seed0.png").exists()


def test_make_dataset_is_byte_identical_on_rerun_and_seed_changes_it(tiny):
    assert _make(tiny, "--imbalance-ratio", "8", "--profile", "step", "--no-plot").exit_code == 0
    path = tiny / "out" / "npz-tiny-step-ir8-seed0.json"
    first = path.read_bytes()
    assert _make(tiny, "--imbalance-ratio", "8", "--profile", "step", "--no-plot").exit_code == 0
    assert path.read_bytes() == first
    assert _make(tiny, "--imbalance-ratio", "8", "--profile", "step", "--seed", "1", "--no-plot").exit_code == 0
    other = load_manifest(tiny / "out" / "npz-tiny-step-ir8-seed1.json")
    assert other.class_counts == [40, 40, 5, 5]
    assert other.selected_indices != load_manifest(path).selected_indices


def test_make_dataset_saves_a_chart_when_matplotlib_is_there(tiny):
    pytest.importorskip("matplotlib")
    result = _make(tiny, "--imbalance-ratio", "2", "--groups", "shots")
    assert result.exit_code == 0, result.output
    png = tiny / "out" / "npz-tiny-exp-ir2-seed0.png"
    first = png.read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Many" in result.stdout and "Few" in result.stdout
    # re-running rewrites a byte-identical chart (no timestamp or version in the PNG)
    assert _make(tiny, "--imbalance-ratio", "2", "--groups", "shots").exit_code == 0
    assert png.read_bytes() == first


def test_make_dataset_without_matplotlib_is_a_note_not_a_failure(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    result = _make(tiny, "--imbalance-ratio", "2")
    assert result.exit_code == 0, result.output
    assert "matplotlib is not installed" in result.stdout and "ltrank[plot]" in result.stdout
    assert (tiny / "out" / "npz-tiny-exp-ir2-seed0.json").exists()
    assert not (tiny / "out" / "npz-tiny-exp-ir2-seed0.png").exists()


def test_asking_for_more_than_a_class_holds_is_exit_2_with_one_line(tmp_path):
    np.savez(
        tmp_path / "pool.npz",
        train_images=np.zeros((13, 4, 4, 3), np.uint8),
        train_labels=np.repeat(np.arange(3), [8, 3, 2]),
        test_images=np.zeros((3, 4, 4, 3), np.uint8),
        test_labels=np.arange(3),
        class_names=np.asarray(["cat", "dog", "owl"]),
    )
    result = runner.invoke(app, ["make-dataset", f"npz:{tmp_path / 'pool.npz'}", "--imbalance-ratio", "2", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: class 1 ('dog') needs 5 training images but the source holds 3; "
        "use a larger imbalance ratio or a source with more images of this class"
    ]
    assert "Traceback" not in result.output
    # the advice holds: a larger ratio asks for fewer images and fits (8, 2, 1)
    result = runner.invoke(app, ["make-dataset", f"npz:{tmp_path / 'pool.npz'}", "--imbalance-ratio", "8",
                                 "--out", str(tmp_path), "--no-plot"])
    assert result.exit_code == 0, result.output


def test_unwritable_out_is_exit_2_with_one_line(tiny):
    (tiny / "taken").write_text("a file, not a folder")
    result = runner.invoke(app, ["make-dataset", "npz:tiny.npz", "--data-dir", str(tiny), "--imbalance-ratio", "2",
                                 "--out", str(tiny / "taken")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --out {tiny / 'taken'}: cannot write the manifest there")
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cifar-10"], "error: SOURCE: unknown data source 'cifar-10' (did you mean 'cifar10'"),
        (["cifar10", "--imbalance-ratio", "0.5"], "--imbalance-ratio: Input should be greater than or equal to 1"),
        (["cifar10", "--profile", "linear"], "--profile: Input should be 'exp', 'step' or 'asis'"),
        (["cifar10", "--groups", "quarters"], "unknown --groups"),
        (["cifar10", "--seed", str(2**32)], "--seed: Input should be less than or equal to 4294967295"),
    ],
)
def test_bad_arguments_are_exit_2(args, message, tmp_path):
    result = runner.invoke(app, ["make-dataset", *args, "--data-dir", str(tmp_path), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
