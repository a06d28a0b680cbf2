"""Command-line mistakes: one line on stderr, exit code 2, no usage box, no traceback."""

from __future__ import annotations

from typer.testing import CliRunner

from ltrank.cli.app import app


def test_command_line_mistakes_are_one_line_with_exit_2():
    runner = CliRunner()
    for args, expected in (
        (["lst"], "No such command 'lst'. Did you mean 'list'?"),
        (["train", "--bogus"], "No such option: --bogus"),
        (["show", "loss"], "Missing argument"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.output
        assert "--help" in lines[0]


def test_a_group_without_its_command_shows_help_and_one_error_line():
    runner = CliRunner()
    for args in ([], ["list"], ["show"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Usage:" in result.stdout  # the help of that group
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: missing command (see '"), (args, result.stderr)
