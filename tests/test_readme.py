"""The README keeps exactly two set-up commands at its top, and CI runs the second."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert first_block is not None, "README.md has no code block"
    lines = [line.strip() for line in first_block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_two_setup_commands() -> None:
    commands = setup_commands()
    assert len(commands) == 2, commands
    assert "examples/demo.py" in commands[0]
    assert commands[1] == "bash scripts/test.sh"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert setup_commands()[1] in ci
