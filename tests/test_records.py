"""Run records: validation, metrics/groups, atomic writing, loading errors, discovery."""

from __future__ import annotations

import json
import os

import pytest
from record_factory import CIFAR10_IR100, make_record

from ltrank.errors import LtrankError
from ltrank.metrics import make_metrics
from ltrank.records import Metrics, RunRecord, load_record, write_record
from ltrank.run_folder import find_records

PER_CLASS = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]


def test_make_metrics_groups_by_hand():
    m = make_metrics(3, PER_CLASS, CIFAR10_IR100)
    assert m.per_class == pytest.approx([90, 80, 70, 60, 50, 40, 30, 20, 10, 0])
    assert m.top1 == pytest.approx(45.0)
    thirds = m.groups["thirds"]  # 4/3/3 (docs/method.md section 2)
    assert thirds["Head"] == pytest.approx((90 + 80 + 70 + 60) / 4)
    assert thirds["Body"] == pytest.approx((50 + 40 + 30) / 3)
    assert thirds["Tail"] == pytest.approx((20 + 10 + 0) / 3)
    assert thirds["Average"] == pytest.approx(45.0)
    shots = m.groups["shots"]  # many > 100: 8 classes (down to 139); medium 20..100: 83, 50; few: none
    assert shots["Many"] == pytest.approx(sum([90, 80, 70, 60, 50, 40, 30, 20]) / 8)
    assert shots["Medium"] == pytest.approx((10 + 0) / 2)
    assert shots["Few"] is None


def test_groups_follow_counts_not_label_order():
    counts = list(reversed(CIFAR10_IR100))  # class 9 is now the head
    m = make_metrics(1, PER_CLASS, counts)
    assert m.groups["thirds"]["Head"] == pytest.approx((0 + 10 + 20 + 30) / 4)
    assert m.group("thirds", counts) == m.groups["thirds"]


def test_make_metrics_rejects_percentages_and_nan():
    with pytest.raises(ValueError, match="fractions"):
        make_metrics(1, [90.0] * 10, CIFAR10_IR100)
    with pytest.raises(ValueError, match="fractions"):
        make_metrics(1, [float("nan")] + [0.5] * 9, CIFAR10_IR100)


def test_make_metrics_measured_top1_and_length_mismatch():
    assert make_metrics(1, PER_CLASS, CIFAR10_IR100, top1=0.5).top1 == pytest.approx(50.0)
    with pytest.raises(LtrankError, match="9 per-class accuracies but 10 class counts"):
        make_metrics(1, PER_CLASS[:9], CIFAR10_IR100)


def test_schema_forbids_extra_keys_and_bad_status():
    data = make_record(PER_CLASS).model_dump()
    with pytest.raises(ValueError, match="extra"):
        RunRecord.model_validate({**data, "surprise": 1})
    with pytest.raises(ValueError, match="status"):
        RunRecord.model_validate({**data, "status": "done"})
    with pytest.raises(ValueError, match="percentages"):
        Metrics(epoch=1, top1=50, per_class=[101.0], groups={})


def test_write_then_load_roundtrip(tmp_path):
    rec = make_record(PER_CLASS, seed=2)
    path = write_record(tmp_path / "run" / "record.json", rec)
    assert load_record(path) == rec
    assert [p.name for p in tmp_path.joinpath("run").iterdir()] == ["record.json"]  # no temp left
    assert json.loads(path.read_text())["format_version"] == 1


def test_same_run_may_rewrite_its_record_but_not_another_runs(tmp_path):
    path = tmp_path / "record.json"
    running = make_record(PER_CLASS, status="running")
    write_record(path, running)
    finished = running.model_copy(update={"status": "finished", "final": make_metrics(2, PER_CLASS, CIFAR10_IR100)})
    write_record(path, finished)
    assert load_record(path).status == "finished"
    other = make_record(PER_CLASS, seed=1)
    with pytest.raises(LtrankError, match="another run"):
        write_record(path, other)
    assert load_record(path).seed == 0


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = write_record(tmp_path / "record.json", make_record(PER_CLASS, status="running"))
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_record(path, make_record(PER_CLASS))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_load_errors_are_one_line_and_name_the_file(tmp_path):
    bad_json = tmp_path / "a.json"
    bad_json.write_text("{not json")
    with pytest.raises(LtrankError) as err:
        load_record(bad_json)
    assert str(bad_json) in str(err.value) and "not valid JSON" in str(err.value) and "\n" not in str(err.value)

    wrong = tmp_path / "b.json"
    data = json.loads(make_record(PER_CLASS).model_dump_json())
    del data["seed"]
    wrong.write_text(json.dumps(data))
    with pytest.raises(LtrankError, match=r"b\.json: not a valid ltrank run record: seed: Field required") as err:
        load_record(wrong)
    assert "\n" not in str(err.value)

    future = tmp_path / "c.json"
    data = json.loads(make_record(PER_CLASS).model_dump_json())
    data["format_version"] = 2
    future.write_text(json.dumps(data))
    with pytest.raises(LtrankError, match="record format 2 is not supported"):
        load_record(future)

    with pytest.raises(LtrankError, match="no such run record"):
        load_record(tmp_path / "missing.json")


def test_find_records_files_dirs_recursive_dedup(tmp_path):
    a = write_record(tmp_path / "runs" / "x" / "seed-0" / "record.json", make_record(PER_CLASS, seed=0))
    b = write_record(tmp_path / "runs" / "y" / "record.json", make_record(PER_CLASS, seed=1))
    (tmp_path / "runs" / "y" / "other.json").write_text("{}")
    single = write_record(tmp_path / "lone.json", make_record(PER_CLASS, seed=3))
    found = find_records([tmp_path / "runs", a, single])
    assert found == [a, b, single]
    with pytest.raises(LtrankError, match="no such file or directory"):
        find_records([tmp_path / "nope"])
