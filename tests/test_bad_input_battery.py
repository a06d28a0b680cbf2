"""A battery of bad inputs across recipes, the command line, data, eval and compare (issue 9.11).

Every one must end the same way: exit code 2, exactly one line on stderr that starts with
``error:`` and names the problem, no traceback anywhere, and nothing written (the folder the
command runs in is compared before and after). Each case builds what it needs in a fresh folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from _datafakes import write_npz
from _tiny_recipe import tiny_recipe
from record_factory import make_record
from typer.testing import CliRunner

from ltrank.cli.app import app
from ltrank.records import write_record

Case = Callable[[Path], list[str]]


def _recipe(tmp: Path, text: str = "", name: str = "r") -> str:
    path = tiny_recipe(tmp, name, epochs=2)
    if text:
        path.write_text(path.read_text() + "\n" + text + "\n")
    return str(path)


def _train(*extra: str) -> Case:
    return lambda tmp: ["train", "--device", "cpu", "--recipe", _recipe(tmp), "--out", "runs", *extra]


def _dry(*extra: str) -> Case:
    return lambda tmp: ["train", "--dry-run", "--recipe", "quickstart", *extra]


def _non_utf8(tmp: Path) -> list[str]:
    path = tmp / "latin.toml"
    path.write_bytes(Path(_recipe(tmp)).read_bytes() + b"\n# caf\xe9\n")
    return ["train", "--dry-run", "--recipe", str(path)]


def _toml_syntax(tmp: Path) -> list[str]:
    path = tmp / "broken.toml"
    path.write_text("[loss\nname = 'ap'\n")
    return ["train", "--dry-run", "--recipe", str(path)]


def _dots(tmp: Path) -> list[str]:
    path = tmp / "...toml"
    path.write_text(Path(_recipe(tmp)).read_text())
    return ["train", "--device", "cpu", "--recipe", str(path), "--out", "runs"]


def _out_is_file(tmp: Path) -> list[str]:
    (tmp / "taken").write_text("x")
    return ["train", "--device", "cpu", "--recipe", _recipe(tmp), "--out", "taken"]


def _npz(tmp: Path, **arrays) -> str:
    path = tmp / "bad.npz"
    np.savez(path, **arrays)
    return str(path)


def _npz_missing_key(tmp: Path) -> list[str]:
    return ["make-dataset", f"npz:{_npz(tmp, train_images=np.zeros((4, 8, 8, 3), np.uint8))}"]


def _npz_bad_labels(tmp: Path) -> list[str]:
    data = write_npz(tmp / "ok.npz")
    data["train_labels"] = data["train_labels"] + 10
    return ["make-dataset", f"npz:{_npz(tmp, **data)}", "--profile", "asis"]


def _folder(tmp: Path, empty_class: bool = False, no_test: bool = False) -> str:
    from PIL import Image

    root = tmp / "imgs"
    for split in ("train",) if no_test else ("train", "test"):
        for cls in ("cat", "dog"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            if empty_class and split == "train" and cls == "dog":
                continue
            for i in range(3):
                Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"{i}.png")
    return str(root)


def _record_file(tmp: Path, text: str) -> list[str]:
    path = tmp / "runs" / "x" / "record.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return ["compare", str(tmp / "runs")]


def _mixed(tmp: Path) -> list[str]:
    write_record(tmp / "runs" / "a" / "record.json", make_record([0.5] * 10))
    write_record(tmp / "runs" / "b" / "record.json", make_record([0.5] * 10, source="cifar100", config_hash="h2",
                                                               recipe_name="cifar100-ir100-cbdelta"))
    return ["compare", "runs"]


def _eval_file(content: bytes, name: str = "checkpoint.pt") -> Case:
    def case(tmp: Path) -> list[str]:
        (tmp / name).write_bytes(content)
        return ["eval", name]
    return case


def _write(path: Path, text: str, args: list[str]) -> list[str]:
    path.write_text(text)
    return args


def _eval_no_record(tmp: Path) -> list[str]:
    import torch

    torch.save({"format_version": 1, "model": {}}, tmp / "checkpoint.pt")
    return ["eval", "checkpoint.pt"]


CASES: dict[str, tuple[Case, str]] = {
    # ---- recipes (validated before anything runs; --dry-run refuses what a run would refuse)
    "unknown key": (_dry("--set", "train.lrr=0.1"), "train.lrr: unknown key"),
    "unknown nested key": (_dry("--set", "loss.params.betta=0.9"), "did you mean 'beta'"),
    "wrong type": (_dry("--set", 'train.epochs="many"'), "train.epochs"),
    "infinite lr": (_dry("--set", "train.lr=inf"), "train.lr"),
    "nan weight decay": (_dry("--set", "train.weight_decay=nan"), "train.weight_decay"),
    "infinite imbalance ratio": (_dry("--set", "data.imbalance_ratio=inf"), "data.imbalance_ratio"),
    "infinite loss param": (_dry("--set", "loss.params.delta=inf"), "loss.params.delta"),
    "out of range": (_dry("--set", "loss.params.beta=1.5"), "loss.params.beta"),
    "unknown loss": (_dry("--set", "loss.name=ap_cb_delt"), "did you mean 'ap_cb_delta'"),
    "unknown schedule": (_dry("--set", "schedule.name=progresive"), "did you mean 'progressive'"),
    "unknown backbone": (_dry("--set", "model.backbone=resnet23"), "did you mean 'resnet32'"),
    "unknown timm model": (_dry("--set", 'model.backbone="timm/resnet181"'), "timm"),
    "milestone after the last epoch": (_dry("--set", "train.epochs=30", "--set", "train.milestones=[160, 180]"),
                                       "train.milestones"),
    "weighted ce without a schedule": (
        lambda tmp: ["train", "--dry-run", "--recipe", "cifar10-ir100-ce", "--set", "loss.params.weighted=true"],
        "weighted"),
    "drw after the last epoch": (
        lambda tmp: ["train", "--dry-run", "--recipe", "cifar10-ir100-ldam-drw", "--set", "train.epochs=30",
                     "--set", "train.milestones=[20, 25]"], "start_epoch"),
    "unknown stage key": (
        lambda tmp: ["train", "--dry-run", "--recipe", "cifar10-ir100-drolt", "--set", "train.stages=[{epochs=1, lr=0.1, weight_decay=0, lrr=1}]"],
        "train.stages[0].lrr: unknown key"),
    "bad override syntax": (_dry("--set", "train.lr"), "expected dotted.key=value"),
    "override through a value": (_dry("--set", "train.lr.x=1"), "is a value, not a table"),
    "cosine head missing": (
        lambda tmp: ["train", "--dry-run", "--recipe", "cifar10-ir100-ldam", "--set", "model.params.head=linear"],
        "needs a cosine classifier head"),
    "class-balanced loss unweighted": (_dry("--set", "schedule.name=none"), "class-balanced"),
    "drolt without a pretrained model": (
        lambda tmp: ["train", "--dry-run", "--recipe", "cifar10-ir100-drolt", "--set", 'train.init_from=""'],
        "train.init_from"),
    "recipe not utf-8": (_non_utf8, "UTF-8"),
    "recipe toml syntax": (_toml_syntax, "TOML syntax error"),
    "missing recipe file": (lambda tmp: ["train", "--dry-run", "--recipe", "nothere.toml"], "not found"),
    "unknown recipe name": (lambda tmp: ["train", "--dry-run", "--recipe", "cifar10-ir100-cbdelt"], "did you mean"),
    # ---- the train command line
    "device mps": (_train("--device", "mps"), "--device 'mps'"),
    "device cuda:x": (_train("--device", "cuda:x"), "not a device"),
    "seeds malformed": (_train("--seeds", "0,x"), "comma-separated integers"),
    "seeds repeated": (_train("--seeds", "1,1"), "distinct"),
    "seed and seeds": (_train("--seed", "0", "--seeds", "1"), "either --seed"),
    "negative seed": (_train("--seed", "-1"), "from 0 to 2**32 - 1"),
    "recipe name escaping --out": (_dots, "cannot name a run folder"),
    "out is a file": (_out_is_file, "is a file, not a folder"),
    "training set smaller than a batch": (_train("--set", "train.batch_size=64"), "fewer than one batch"),
    "missing data file": (lambda tmp: ["train", "--device", "cpu", "--recipe", _recipe(tmp), "--out", "runs",
                                       "--set", 'data.source="npz:missing.npz"'], "missing.npz"),
    # ---- general command line
    "unknown command": (lambda tmp: ["lst"], "No such command"),
    "unknown option": (lambda tmp: ["train", "--bogus"], "No such option"),
    "missing argument": (lambda tmp: ["show", "loss"], "Missing argument"),
    "show unknown loss": (lambda tmp: ["show", "loss", "focl"], "did you mean 'focal'"),
    # ---- data
    "npz missing keys": (_npz_missing_key, "missing key(s)"),
    "npz labels out of range": (_npz_bad_labels, "train_labels must lie in"),
    "not an npz": (lambda tmp: _write(tmp / "x.npz", "hello", ["make-dataset", "npz:x.npz"]), "not an .npz archive"),
    "empty class folder": (lambda tmp: ["make-dataset", f"folder:{_folder(tmp, empty_class=True)}", "--profile",
                                        "asis"], "dog"),
    "folder without test": (lambda tmp: ["make-dataset", f"folder:{_folder(tmp, no_test=True)}"], "test"),
    "unknown source": (lambda tmp: ["make-dataset", "cifar11"], "did you mean 'cifar10'"),
    "ratio below 1": (lambda tmp: ["make-dataset", "cifar10", "--imbalance-ratio", "0.5"], "--imbalance-ratio"),
    "unknown groups": (lambda tmp: ["make-dataset", "cifar10", "--groups", "quarters"], "unknown --groups"),
    "no pools in data dir": (lambda tmp: ["make-dataset", "cifar10", "--data-dir", str(tmp / "empty")],
                             "cifar10 not found"),
    # ---- eval
    "eval missing checkpoint": (lambda tmp: ["eval", "nothere.pt"], "no such checkpoint"),
    "eval not a checkpoint": (_eval_file(b"just some text, not a checkpoint"), "not a checkpoint"),
    "eval truncated checkpoint": (_eval_file(b"PK\x03\x04 truncated zip"), "checkpoint"),
    "eval checkpoint without record": (_eval_no_record, "no record.json beside it"),
    "eval folder without checkpoint": (lambda tmp: (tmp / "run").mkdir() or ["eval", "run"], "no such checkpoint"),
    # ---- compare
    "compare no records": (lambda tmp: (tmp / "runs").mkdir() or ["compare", "runs"], "no run records"),
    "compare missing path": (lambda tmp: ["compare", "nothere"], "no such file or directory"),
    "compare bad json": (lambda tmp: _record_file(tmp, "{not json"), "record.json: not valid JSON"),
    "compare not a record": (lambda tmp: _record_file(tmp, json.dumps({"status": "finished"})),
                             "record.json: not a valid ltrank run record"),
    "compare unknown reference": (lambda tmp: _mixed(tmp)[:1] + ["runs", "--reference", "thesys"],
                                  "did you mean 'thesis'"),
    "compare mixed datasets": (_mixed, "--allow-mixed"),
    "compare unknown groups": (lambda tmp: ["compare", "runs", "--groups", "quarters"], "quarters"),
}


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, name):
    build, fragment = CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = build(work)
    before = _tree(work)
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200", "LTRANK_NO_PLUGINS": "1",
                                                "LTRANK_DATA_DIR": os.environ["LTRANK_DATA_DIR"]})
    assert result.exit_code == 2, (name, result.output)
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (name, result.stderr)
    assert lines[0].startswith("error: ") and fragment in lines[0], (name, lines[0])
    assert _tree(work) == before, f"{name}: something was written"


def test_the_battery_is_wide():
    assert len(CASES) >= 40
