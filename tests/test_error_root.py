"""One error root: every error class the project defines derives from `PenguiFlowError`, and
no source raises a bare built-in error (only Python's own protocols keep theirs)."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

from penguiflow.errors import PenguiFlowError

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    path
    for folder in (ROOT / "core" / "src", *ROOT.glob("plugins/*/src"), *ROOT.glob("contrib/*/src"))
    for path in folder.rglob("*.py")
)
#: built-in errors that mean "this Python protocol": a module __getattr__, an abstract method,
#: a conformance suite's failed check
PROTOCOL_ERRORS = {"AttributeError", "NotImplementedError", "AssertionError"}
BUILTIN_ERRORS = (
    {
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    - PROTOCOL_ERRORS
    - {"StopIteration", "StopAsyncIteration", "KeyboardInterrupt", "SystemExit"}
)
#: node functions of the runtime suite: they play user code, which raises what it likes
USER_CODE = {Path("core/src/penguiflow/testing/_runtime_nodes.py")}


def _raised_builtins(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in BUILTIN_ERRORS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} raises {target.id}")
    return found


def test_no_source_raises_a_bare_builtin_error() -> None:
    problems = [
        problem
        for path in SOURCES
        if path.relative_to(ROOT) not in USER_CODE
        for problem in _raised_builtins(path)
    ]
    assert not problems, (
        "raise a PenguiFlowError subclass instead (penguiflow.errors: ConfigurationError, "
        "InvalidTypeError, UnknownNameError, UsageError, or one of your own):\n"
        + "\n".join(problems)
    )


def _installed_modules() -> list[str]:
    names = []
    for top in ("penguiflow", "penguiflow_redis", "penguiflow_postgres", "penguiflow_planner",
                "penguiflow_sessions", "penguiflow_a2a", "penguiflow_mcp", "penguiflow_utcp",
                "penguiflow_openai", "penguiflow_anthropic", "penguiflow_llm_http",
                "penguiflow_plugin_template"):  # fmt: skip
        try:
            package = importlib.import_module(top)
        except ImportError:
            continue
        names.append(top)
        for info in pkgutil.walk_packages(package.__path__, f"{top}."):
            # penguiflow.planner.*, .artifacts, .sessions.* and .steering.* are the plugins'
            # modules under PenguiFlow's import paths: checked as penguiflow_planner.* and
            # penguiflow_sessions.*
            forwarded = ("penguiflow.planner", "penguiflow.artifacts", "penguiflow.sessions",
                         "penguiflow.steering")  # fmt: skip
            if info.name.startswith(forwarded):
                continue
            names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", _installed_modules())
def test_every_error_class_derives_from_the_root(module_name: str) -> None:
    if module_name.endswith("pytest_plugin") or ".testing._runtime_nodes" in module_name:
        pytest.skip("pytest's plugin module and the suite's stand-in user code")
    module = importlib.import_module(module_name)
    for name, value in vars(module).items():
        if (
            inspect.isclass(value)
            and issubclass(value, Exception)
            and value.__module__ == module_name
        ):
            assert issubclass(value, PenguiFlowError), f"{module_name}.{name}"
