"""`penguiflow.logging.log_options`: the `--log-level` and `--log-format` pair every
long-running command declares through it, as click parses and shows them."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from penguiflow.cli import cli
from penguiflow.errors import ConfigurationError
from penguiflow.logging import LOG_FORMATS, log_options

_FORMAT_HELP = "Readable lines, or one JSON object per line; both carry trace and span ids."


def _command(**options: str) -> tuple[click.Command, list[tuple[str, str]]]:
    """A command with the two options that records what it was called with."""
    seen: list[tuple[str, str]] = []

    @click.command()
    @log_options(**{"level_help": "How much to say.", **options})
    def command(log_level: str, log_format: str) -> None:
        seen.append((log_level, log_format))

    return command, seen


def test_adds_both_options_with_the_commands_parameter_names() -> None:
    command, _ = _command()
    params = {param.name: param for param in command.params}
    assert list(params) == ["log_level", "log_format"]
    level, fmt = params["log_level"], params["log_format"]
    assert isinstance(level, click.Option) and isinstance(fmt, click.Option)
    assert level.opts == ["--log-level"] and fmt.opts == ["--log-format"]
    assert level.default == "WARNING" and fmt.default == "text"
    assert isinstance(level.type, click.Choice) and isinstance(fmt.type, click.Choice)
    assert tuple(level.type.choices) == ("DEBUG", "INFO", "WARNING", "ERROR")
    assert tuple(fmt.type.choices) == LOG_FORMATS


def test_help_shows_choices_defaults_and_texts() -> None:
    command, _ = _command()
    result = CliRunner().invoke(command, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the help as one line, whatever the wrapping
    # click 8.2+ shows a case-insensitive choice's metavar case-folded, 8.1 as declared.
    assert "--log-level [debug|info|warning|error] how much to say." in text.lower()
    assert f"How much to say. [default: WARNING] --log-format [text|json] {_FORMAT_HELP}" in text
    assert f"{_FORMAT_HELP} [default: text]" in text


def test_choices_take_the_case_of_the_default_level() -> None:
    command, seen = _command(default_level="warning", format_help="Pick one.")
    help_text = CliRunner().invoke(command, ["--help"], terminal_width=200).output
    assert "[debug|info|warning|error]" in help_text
    assert "[default: warning]" in help_text and "Pick one." in help_text
    assert CliRunner().invoke(command, []).exit_code == 0
    assert seen == [("warning", "text")]


def test_the_command_receives_the_values_whatever_their_case() -> None:
    command, seen = _command()
    runner = CliRunner()
    assert runner.invoke(command, []).exit_code == 0
    assert runner.invoke(command, ["--log-level", "info", "--log-format", "JSON"]).exit_code == 0
    assert runner.invoke(command, ["--log-level", "Error", "--log-format", "Text"]).exit_code == 0
    # click hands over the choice as declared, so the command never lower/upper-cases it.
    assert seen == [("WARNING", "text"), ("INFO", "json"), ("ERROR", "text")]

    lower, seen_lower = _command(default_level="warning")
    assert runner.invoke(lower, ["--log-level", "DEBUG"]).exit_code == 0
    assert seen_lower == [("debug", "text")]


def test_a_bad_format_or_level_is_refused_with_the_choices() -> None:
    command, seen = _command()
    bad_format = CliRunner().invoke(command, ["--log-format", "xml"])
    assert bad_format.exit_code == 2
    assert "Invalid value for '--log-format'" in bad_format.output
    assert "'xml'" in bad_format.output
    assert "'text'" in bad_format.output and "'json'" in bad_format.output
    bad_level = CliRunner().invoke(command, ["--log-level", "loud"])
    assert bad_level.exit_code == 2
    assert "Invalid value for '--log-level'" in bad_level.output
    assert "'debug'" in bad_level.output.lower() and "'error'" in bad_level.output.lower()
    assert seen == []


@pytest.mark.parametrize("default_level", ["verbose", "Warning", ""])
def test_a_default_level_outside_the_choices_is_a_configuration_error(
    default_level: str,
) -> None:
    with pytest.raises(ConfigurationError, match="default_level") as caught:
        log_options(level_help="x", default_level=default_level)
    assert isinstance(caught.value, ValueError)
    assert "pass one of" in str(caught.value) and "warning" in str(caught.value).lower()


def test_worker_declares_them_through_log_options() -> None:
    result = CliRunner().invoke(cli, ["worker", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "--log-level [debug|info|warning|error]" in result.output.lower()
    assert "dead letters are WARNING" in result.output
    assert "--log-format [text|json]" in result.output and _FORMAT_HELP in result.output


def test_importing_the_logging_module_does_not_import_click() -> None:
    # `import penguiflow` imports penguiflow.logging: click loads only when a command is built.
    code = "import sys, penguiflow.logging; print('click' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "False"
