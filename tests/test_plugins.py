"""Plugin discovery and failure modes, with hand-built EntryPoint objects (nothing installed)."""

from __future__ import annotations

import sys
import types
from importlib.metadata import EntryPoint

import pytest
from typer.testing import CliRunner

from ltrank.errors import LtrankError
from ltrank.registry import Registry, Spec


@pytest.fixture
def plugin_module(monkeypatch):
    """A fake plugin module with one good Spec, one wrong object, one import failure."""
    mod = types.ModuleType("fake_ltrank_plugin")
    mod.good = Spec(lambda class_counts: ("good", tuple(class_counts)), "a good plugin loss")
    mod.wrong = object()
    monkeypatch.setitem(sys.modules, "fake_ltrank_plugin", mod)
    return mod


def _eps(*pairs: tuple[str, str]) -> list[EntryPoint]:
    return [EntryPoint(name, value, "ltrank.losses.v1") for name, value in pairs]


def _registry() -> Registry:
    reg = Registry("loss", "ltrank.losses.v1", context=("class_counts",))
    reg.register("ce", Spec(lambda class_counts: "ce", "built-in"))
    return reg


def test_discovery_imports_nothing(plugin_module):
    reg = _registry()
    reg.discover(_eps(("good", "fake_ltrank_plugin:good"), ("broken", "no_such_module_xyz:thing")))
    assert reg.names() == ["broken", "ce", "good"]  # listed from metadata, nothing imported yet
    assert all(not r.loaded and r.error is None for r in reg.plugins(load=False))


def test_good_plugin_builds(plugin_module):
    reg = _registry()
    reg.discover(_eps(("good", "fake_ltrank_plugin:good")))
    assert reg.build("good", class_counts=[2, 1]) == ("good", (2, 1))
    assert reg.origin("good").startswith("<unknown distribution>")


def test_failures_are_recorded_not_raised(plugin_module):
    reg = _registry()
    reg.discover(
        _eps(
            ("broken", "no_such_module_xyz:thing"),
            ("wrong", "fake_ltrank_plugin:wrong"),
            ("ce", "fake_ltrank_plugin:good"),
            ("good", "fake_ltrank_plugin:good"),
        )
    )
    records = {r.name: r for r in reg.plugins(load=True)}
    assert "ModuleNotFoundError" in records["broken"].error
    assert "expected an ltrank.registry.Spec" in records["wrong"].error
    assert "collides with the built-in loss 'ce'" in records["ce"].error
    assert records["good"].loaded and records["good"].error is None
    # the built-in keeps working; the failed names are not offered
    assert reg.build("ce", class_counts=[1]) == "ce"
    assert reg.names() == ["ce", "good"]


def test_needing_a_failed_plugin_is_one_line(plugin_module):
    reg = _registry()
    reg.discover(_eps(("broken", "no_such_module_xyz:thing")))
    with pytest.raises(LtrankError) as info:
        reg.get("broken")
    message = str(info.value)
    assert "\n" not in message and "failed" in message and "no_such_module_xyz:thing" in message


def test_env_switch_disables_discovery(monkeypatch):
    monkeypatch.setenv("LTRANK_NO_PLUGINS", "1")
    reg = _registry()
    reg.discover()
    assert reg.plugins() == []


def test_cli_lists_failed_plugins_and_keeps_working(plugin_module, monkeypatch):
    from ltrank.cli.app import app
    from ltrank.catalog import LOSSES

    saved = (LOSSES._plugins, dict(LOSSES._plugin_eps), dict(LOSSES._entries))
    try:
        LOSSES.discover(_eps(("broken", "no_such_module_xyz:thing"), ("good", "fake_ltrank_plugin:good")))
        runner = CliRunner()
        listed = runner.invoke(app, ["list", "losses"], env={"COLUMNS": "250"})
        assert listed.exit_code == 0, listed.output
        assert "1 failed plugin:" in listed.output and "no_such_module_xyz" in listed.output
        assert "good" in listed.output
        shown = runner.invoke(app, ["show", "loss", "broken"])
        assert shown.exit_code == 2
        assert "Traceback" not in shown.output
        version = runner.invoke(app, ["--version"])
        assert version.exit_code == 0 and "losses broken (failed" in version.output
    finally:
        LOSSES._plugins, LOSSES._plugin_eps, LOSSES._entries = saved[0], saved[1], saved[2]



def test_plugin_inside_a_builtin_namespace_collides(plugin_module):
    reg = Registry("backbone", "ltrank.backbones.v1", context=("num_classes",))
    reg.register("timm/", Spec(lambda num_classes, model_name: model_name, "timm"))
    reg.discover([EntryPoint("timm/resnet18", "fake_ltrank_plugin:good", "ltrank.backbones.v1")])
    (record,) = reg.plugins(load=True)
    assert record.error == "name collides with the built-in backbone namespace 'timm/*'"
    assert reg.build("timm/resnet18", num_classes=2) == "resnet18"  # the built-in still answers


def test_version_reports_broken_plugins_without_a_prior_listing(plugin_module):
    """--version alone must load the plugins: a broken one is 'failed', never 'ok'."""
    from ltrank.cli.app import app
    from ltrank.catalog import LOSSES

    saved = (LOSSES._plugins, dict(LOSSES._plugin_eps), dict(LOSSES._entries))
    try:
        LOSSES.discover(_eps(("broken", "no_such_module_xyz:thing"), ("wrong", "fake_ltrank_plugin:wrong"),
                             ("good", "fake_ltrank_plugin:good")))
        version = CliRunner().invoke(app, ["--version"])
        assert version.exit_code == 0, version.output
        lines = version.output.splitlines()
        assert any("losses broken (failed: ModuleNotFoundError" in line for line in lines), version.output
        assert any("losses wrong (failed: TypeError: exposes object" in line for line in lines), version.output
        assert any(line.endswith("losses good (ok)") for line in lines), version.output
    finally:
        LOSSES._plugins, LOSSES._plugin_eps, LOSSES._entries = saved[0], saved[1], saved[2]


def test_a_plugin_module_is_imported_only_when_its_name_is_needed(tmp_path, monkeypatch):
    (tmp_path / "lazy_ltrank_plugin.py").write_text(
        "from ltrank.registry import Spec\nSPEC = Spec(lambda class_counts: 'lazy', 'imported on demand')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_ltrank_plugin", raising=False)
    reg = _registry()
    reg.discover(_eps(("lazy", "lazy_ltrank_plugin:SPEC")))
    assert reg.names() == ["ce", "lazy"]
    assert reg.build("ce", class_counts=[1]) == "ce"
    assert reg.origin("lazy").startswith("<unknown distribution>")
    assert "lazy_ltrank_plugin" not in sys.modules  # listing names and using a built-in import nothing
    assert reg.build("lazy", class_counts=[1]) == "lazy"
    assert "lazy_ltrank_plugin" in sys.modules
