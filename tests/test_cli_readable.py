"""`ltrank list` / `ltrank show` / `ltrank make-dataset` read well: at 80 columns (piped with
COLUMNS=80 and in a forced terminal) no line is longer than 80 and no word is broken; piped output
without COLUMNS is not padded; patterns without wildcards match substrings; a Spec's label shows."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _datafakes import write_npz  # noqa: E402

from ltrank.cli.app import app  # noqa: E402
from ltrank.data.longtail import class_counts  # noqa: E402
from ltrank.recipe import read_toml, recipes_dir, shipped_recipes  # noqa: E402
from ltrank.catalog import LOSSES, REGISTRIES  # noqa: E402
from ltrank.registry import NoParams, Spec  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
KINDS = {"losses": "loss", "backbones": "backbone", "schedules": "schedule"}


def _invoke(*args: str, terminal: bool = False, columns: int | None = 80):
    env = {"COLUMNS": None if columns is None else str(columns), "TTY_COMPATIBLE": "1" if terminal else None}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return ANSI.sub("", result.stdout)


def _concrete(name: str) -> str:
    return name.replace("*", "resnet18")  # 'timm/*' is shown as one model of the namespace


def _table_rows(output: str) -> dict[str, list[str]]:
    """Each row's cells with wrapped lines joined by a space, keyed by the (never wrapped) name."""
    rows: dict[str, list[str]] = {}
    current: list[str] = []
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0]:
            current = rows[cells[0]] = cells
        else:
            current[:] = [f"{a} {b}".strip() for a, b in zip(current, cells)]
    return rows


def _assert_intact(shown: str, full: str, where: str) -> None:
    """``shown`` is ``full`` word for word, or its first words followed by one ``…``."""
    got, want = shown.split(), full.split()
    if got and got[-1].endswith("…"):
        kept, stem = got[:-1], got[-1][:-1]
        assert kept == want[: len(kept)], f"{where}: {shown!r} is not the start of {full!r}"
        assert len(kept) < len(want) and want[len(kept)].startswith(stem), f"{where}: word broken in {shown!r}"
    else:
        assert got == want, f"{where}: {shown!r} != {full!r}"


def _assert_fits(output: str, width: int = 80) -> None:
    long = [line for line in output.splitlines() if len(line) > width]
    assert not long, f"{len(long)} lines longer than {width}:\n" + "\n".join(long)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _described(spec: Spec) -> str:
    return spec.description if not spec.label or spec.description.startswith(spec.label) else f"{spec.label}: {spec.description}"


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize("plural", sorted(KINDS))
def test_list_fits_80_columns_without_breaking_words(plural, terminal):
    registry = REGISTRIES[plural]
    output = _invoke("list", plural, terminal=terminal)
    _assert_fits(output)
    rows = _table_rows(output)
    assert sorted(rows) == sorted(registry.names()), output
    origins = {r.name: f"{r.distribution} {r.version}" for r in registry.plugins(load=False) if not r.error}
    for name, (shown_name, description, origin) in rows.items():
        assert shown_name == name
        _assert_intact(description, _described(registry.get(_concrete(name))), name)
        assert origin == origins.get(name, "built-in")  # distribution and version, no entry point


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
def test_list_recipes_fits_80_columns_without_breaking_words(terminal):
    output = _invoke("list", "recipes", terminal=terminal)
    _assert_fits(output)
    rows = _table_rows(output)
    assert sorted(rows) == sorted(shipped_recipes())
    for name, (_, description) in rows.items():
        _assert_intact(description, str(read_toml(recipes_dir() / f"{name}.toml")["description"]), name)


def test_long_descriptions_are_shortened_in_lists_and_whole_in_show():
    spec = LOSSES.get("ap_cb_delta")
    listed = _table_rows(_invoke("list", "losses", "ap_cb_delta"))["ap_cb_delta"][1]
    assert listed.endswith("…") and len(listed) < len(spec.description) / 2
    assert _flat(spec.description) in _flat(_invoke("show", "loss", "ap_cb_delta"))


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize("plural", sorted(KINDS))
def test_show_fits_80_columns_without_breaking_words(plural, terminal):
    registry = REGISTRIES[plural]
    for name in registry.names():
        concrete = _concrete(name)
        spec = registry.get(concrete)
        output = _invoke("show", KINDS[plural], concrete, terminal=terminal)
        _assert_fits(output)
        flat = _flat(output)  # wrapping changes only whitespace: every text must be found whole
        texts = [spec.description, spec.paper, ", ".join(sorted(spec.capabilities))]
        texts += [f.description or "" for f in spec.params.model_fields.values()]
        for text in texts:
            assert _flat(text) in flat, (name, text)
        assert NoParams.__doc__.strip() not in output  # internal docstrings are never shown


def test_show_schedule_without_parameters_says_so_plainly():
    output = _invoke("show", "schedule", "progressive")
    assert output.splitlines()[0] == "progressive (schedule)"
    assert "parameters: none" in output and "Params schema" not in output


def test_piped_output_is_not_padded():
    listed = _invoke("list", "schedules", columns=None)
    lines = listed.splitlines()
    assert all(line == line.rstrip() for line in lines), "trailing padding"
    assert lines[0] == "4 schedules"
    table = [line for line in lines if line.startswith(("┏", "│", "└"))]
    assert len({len(line) for line in table}) == 1  # one natural width, not a terminal's
    assert len(table[0]) < 120
    spec = LOSSES.get("ap_cb_delta")
    shown = _invoke("show", "loss", "ap_cb_delta", columns=None).splitlines()
    assert _flat(spec.description) in shown  # prose is one line: nothing to pad, nothing wrapped
    assert all(line == line.rstrip() for line in shown)


@pytest.mark.parametrize("plural, pattern, expected", [
    ("recipes", "cbdelta", sorted(n for n in shipped_recipes() if "cbdelta" in n)),
    ("recipes", "CIFAR10-IR100-CB", sorted(n for n in shipped_recipes() if n.startswith("cifar10-ir100-cb"))),
    ("losses", "cb_", ["ap_cb_delta", "ap_cb_primary", "cb_focal"]),
    ("losses", "cb_*", ["cb_focal"]),  # a wildcard matches the whole name
    ("schedules", "gress", ["progressive"]),
    ("backbones", "timm", ["timm/*"]),
    ("backbones", "res?et32", ["resnet32"]),
])
def test_a_pattern_without_wildcards_is_a_substring(plural, pattern, expected):
    assert len(expected) > 0
    output = _invoke("list", plural, pattern, columns=250)
    assert sorted(_table_rows(output)) == sorted(expected)
    assert output.splitlines()[0].endswith(f"matching {pattern!r}")


def test_counts_in_titles_agree_with_their_noun():
    assert _invoke("list", "losses", "ap_cb_delta").splitlines()[0] == "1 loss matching 'ap_cb_delta'"
    assert _invoke("list", "recipes", "quickstart").splitlines()[0] == "1 recipe matching 'quickstart'"
    assert _invoke("list", "losses", "no_such").splitlines() == ["0 losses matching 'no_such'"]


class _FakeEntryPoint:
    """Just enough of importlib.metadata.EntryPoint, with a distribution and a version."""

    def __init__(self, name: str, value: str, dist_name: str, version: str) -> None:
        self.name, self.value = name, value
        self.dist = types.SimpleNamespace(metadata={"Name": dist_name}, version=version)

    def load(self):
        module, attr = self.value.split(":")
        return getattr(__import__(module), attr)


@pytest.fixture
def fake_plugins(monkeypatch):
    """Two plugin losses (one with a label, one that fails to import) in the real LOSSES."""
    mod = types.ModuleType("fake_readable_plugin")
    mod.SPEC = Spec(lambda class_counts: None, "cross-entropy with label smoothing; the target mixes in a uniform "
                    "distribution [0.1] over the classes", label="Smoothed CE", paper="Szegedy et al., CVPR 2016")
    monkeypatch.setitem(sys.modules, "fake_readable_plugin", mod)
    saved = (LOSSES._plugins, dict(LOSSES._plugin_eps), dict(LOSSES._entries))
    LOSSES.discover([
        _FakeEntryPoint("smoothed_ce", "fake_readable_plugin:SPEC", "my-ltrank-loss", "0.1.0"),
        _FakeEntryPoint("broken_loss_with_a_long_name", "no_such_module_for_ltrank_tests:SPEC", "broken-dist", "2.3"),
    ])
    yield mod.SPEC
    LOSSES._plugins, LOSSES._plugin_eps, LOSSES._entries = saved


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
def test_plugin_label_origin_and_failures_at_80_columns(fake_plugins, terminal):
    listed = _invoke("list", "losses", terminal=terminal)
    _assert_fits(listed)
    row = _table_rows(listed)["smoothed_ce"]
    assert row[1] == "Smoothed CE: cross-entropy with label smoothing…"  # the [0.1] is not markup either
    assert row[2] == "my-ltrank-loss 0.1.0"
    failed = listed[listed.index("1 failed plugin:"):]
    assert _flat("broken_loss_with_a_long_name: broken-dist 2.3, entry point broken_loss_with_a_long_name = "
                 "no_such_module_for_ltrank_tests:SPEC") in _flat(failed)
    assert "ModuleNotFoundError: No module named 'no_such_module_for_ltrank_tests'" in _flat(failed)

    shown = _invoke("show", "loss", "smoothed_ce", terminal=terminal)
    _assert_fits(shown)
    assert shown.splitlines()[0] == "smoothed_ce (loss): Smoothed CE"
    assert _flat(fake_plugins.description) in _flat(shown)  # markup-looking text survives whole
    assert "from: my-ltrank-loss 0.1.0 (entry point smoothed_ce = fake_readable_plugin:SPEC)" in _flat(shown)


def test_readme_plugin_example_declares_label_and_paper():
    """The README's plugin guide builds a Spec with label= and paper=, and list/show show them."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(\s*# my_ltrank_loss/__init__.py\n.*?)```", readme, re.S)
    assert block is not None
    namespace: dict = {}
    exec(compile("\n".join(line[3:] for line in block[1].splitlines()), "README.md", "exec"), namespace)
    spec = namespace["SPEC"]
    assert isinstance(spec, Spec) and spec.label and spec.paper
    for field in ("label=", "paper=", "capabilities="):
        assert f"`{field}`" in readme


def test_make_dataset_writes_to_datasets_by_default(tmp_path, monkeypatch):
    write_npz(tmp_path / "tiny.npz", num_classes=4, per_class=1200)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["make-dataset", "npz:tiny.npz", "--data-dir", str(tmp_path),
                                      "--imbalance-ratio", "2", "--no-plot"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "datasets" / "npz-tiny-exp-ir2-seed0.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["datasets", "tiny.npz"]  # nothing else in the cwd
    _assert_fits(result.stdout)
    total = sum(class_counts(1200, 4, 2.0, "exp"))
    assert "1,200" in result.stdout and f"{total:,}" in result.stdout and total > 1000  # separators as everywhere
    assert "source: npz" in result.stdout and "manifest: datasets" in _flat(result.stdout)
    help_text = CliRunner().invoke(app, ["make-dataset", "--help"], env={"COLUMNS": "200"}).stdout
    assert "[default: datasets]" in help_text
