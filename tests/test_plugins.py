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


class _FakeDist:
    """Just enough of importlib.metadata.Distribution for discovery to name it."""

    metadata = {"Name": "ltrank-evil"}
    version = "6.6.6"


def _write_module(tmp_path, monkeypatch, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


@pytest.mark.parametrize("body,error", [
    ("import sys\nsys.exit(3)\n", "SystemExit: called sys.exit(3)"),
    ("import sys\nsys.exit('bye')\n", "SystemExit: called sys.exit('bye')"),
    ("class Boom(BaseException):\n    pass\nraise Boom('not an Exception')\n", "Boom: not an Exception"),
    ("import os\nraise GeneratorExit('odd')\n", "GeneratorExit: odd"),
])
def test_a_plugin_that_exits_or_raises_baseexception_at_import_is_a_failed_record(tmp_path, monkeypatch, body, error):
    _write_module(tmp_path, monkeypatch, "exiting_ltrank_plugin", body)
    reg = _registry()
    reg.discover(_eps(("evil", "exiting_ltrank_plugin:SPEC")))
    (record,) = reg.plugins(load=True)
    assert record.error == error and not record.loaded
    assert reg.names() == ["ce"] and reg.build("ce", class_counts=[1]) == "ce"
    with pytest.raises(LtrankError, match="which failed: " + error.replace("(", r"\(").replace(")", r"\)")):
        reg.get("evil")


def test_keyboard_interrupt_during_a_plugin_import_still_interrupts(tmp_path, monkeypatch):
    _write_module(tmp_path, monkeypatch, "interrupted_ltrank_plugin", "raise KeyboardInterrupt\n")
    reg = _registry()
    reg.discover(_eps(("slow", "interrupted_ltrank_plugin:SPEC")))
    with pytest.raises(KeyboardInterrupt):
        reg.plugins(load=True)


def test_cli_survives_a_plugin_calling_sys_exit(tmp_path, monkeypatch):
    from ltrank.cli.app import app
    from ltrank.catalog import LOSSES

    _write_module(tmp_path, monkeypatch, "exiting_ltrank_plugin", "import sys\nsys.exit(1)\n")
    saved = (LOSSES._plugins, dict(LOSSES._plugin_eps), dict(LOSSES._entries))
    try:
        LOSSES.discover([EntryPoint("evil", "exiting_ltrank_plugin:SPEC", "ltrank.losses.v1")._for(_FakeDist())])
        runner = CliRunner()
        listed = runner.invoke(app, ["list", "losses"], env={"COLUMNS": "250"})
        assert listed.exit_code == 0, listed.output
        assert "1 failed plugin:" in listed.output and "called sys.exit(1)" in listed.output and "ltrank-evil" in listed.output
        assert "ap_cb_delta" in listed.output  # the built-ins are all still listed
        version = runner.invoke(app, ["--version"])
        assert version.exit_code == 0, version.output
        assert "plugin ltrank-evil 6.6.6: losses evil (failed: SystemExit: called sys.exit(1))" in version.output
        trained = runner.invoke(app, ["train", "--dry-run", "--recipe", "quickstart", "--set", "loss.name=evil"])
        assert trained.exit_code == 2 and "Traceback" not in trained.output
        (line,) = trained.stderr.strip().splitlines()
        assert "loss.name: loss 'evil' comes from the plugin ltrank-evil 6.6.6 (entry point evil = " in line
    finally:
        LOSSES._plugins, LOSSES._plugin_eps, LOSSES._entries = saved[0], saved[1], saved[2]


def _raising_factory(exc: BaseException):
    def factory(class_counts, **params):
        raise exc

    return factory


@pytest.mark.parametrize("exc,shown", [
    (ValueError("class_counts must be positive\nsecond line"), "ValueError: class_counts must be positive"),
    (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
    (SystemExit(2), "SystemExit: called sys.exit(2)"),
])
def test_a_plugin_constructor_that_raises_is_one_line_naming_the_distribution(monkeypatch, exc, shown):
    mod = types.ModuleType("raising_ltrank_plugin")
    mod.SPEC = Spec(_raising_factory(exc), "raises when built")
    monkeypatch.setitem(sys.modules, "raising_ltrank_plugin", mod)
    reg = _registry()
    reg.discover([EntryPoint("fragile", "raising_ltrank_plugin:SPEC", "ltrank.losses.v1")._for(_FakeDist())])
    with pytest.raises(LtrankError) as info:
        reg.build("fragile", class_counts=[3, 1])
    message = str(info.value)
    assert message == (
        f"loss 'fragile' from the plugin ltrank-evil 6.6.6 (entry point fragile = raising_ltrank_plugin:SPEC) "
        f"failed to build ({shown}); fix or uninstall that package, or pick another loss"
    )


def test_a_plugin_constructor_raising_ltrank_error_keeps_its_message(monkeypatch):
    mod = types.ModuleType("raising_ltrank_plugin")
    mod.SPEC = Spec(_raising_factory(LtrankError("fragile: needs at least 3 classes")), "raises when built")
    monkeypatch.setitem(sys.modules, "raising_ltrank_plugin", mod)
    reg = _registry()
    reg.discover(_eps(("fragile", "raising_ltrank_plugin:SPEC")))
    with pytest.raises(LtrankError, match=r"^fragile: needs at least 3 classes$"):
        reg.build("fragile", class_counts=[3, 1])


def test_a_builtin_constructor_error_is_not_blamed_on_a_plugin():
    reg = _registry()
    reg.register("buggy", Spec(_raising_factory(ValueError("a bug in ltrank")), "built-in"))
    with pytest.raises(ValueError, match="a bug in ltrank"):
        reg.build("buggy", class_counts=[1])


def test_a_plugin_validator_raising_a_non_validation_error_is_one_line(monkeypatch):
    from pydantic import BaseModel, ConfigDict, field_validator

    class _Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        width: int = 1

        @field_validator("width")
        @classmethod
        def _boom(cls, value: int) -> int:
            raise TypeError("validator bug")

    mod = types.ModuleType("validating_ltrank_plugin")
    mod.SPEC = Spec(lambda class_counts, width=1: width, "buggy validator", params=_Params)
    monkeypatch.setitem(sys.modules, "validating_ltrank_plugin", mod)
    reg = _registry()
    reg.discover([EntryPoint("buggy", "validating_ltrank_plugin:SPEC", "ltrank.losses.v1")._for(_FakeDist())])
    with pytest.raises(LtrankError) as info:
        reg.validate("buggy", {"width": 2}, where="loss.params")
    assert str(info.value) == (
        "loss.params: the plugin ltrank-evil 6.6.6 (entry point buggy = validating_ltrank_plugin:SPEC) failed to "
        "validate them (TypeError: validator bug); fix or uninstall that package, or pick another loss"
    )
