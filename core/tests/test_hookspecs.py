"""Every hookspec is documented in docs/plugins.md, typed, and has a docstring."""

from __future__ import annotations

import inspect
from pathlib import Path

import penguiflow.hookspecs as hookspecs

PLUGINS_DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def hook_functions() -> list[tuple[str, object]]:
    return [(n, f) for n, f in vars(hookspecs).items() if n.startswith("penguiflow_")]


def test_hookspecs_exist_and_are_marked() -> None:
    names = [name for name, _ in hook_functions()]
    assert {"penguiflow_register_connectors", "penguiflow_register_join_strategies",
            "penguiflow_register_memory_strategies", "penguiflow_observability_sinks",
            "penguiflow_register_llm_adapters", "penguiflow_configure",
            "penguiflow_flow_startup", "penguiflow_flow_shutdown"} <= set(names)  # fmt: skip
    for _, function in hook_functions():
        assert hasattr(function, "penguiflow_spec")


def test_every_hookspec_is_documented_typed_and_explained() -> None:
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    for name, function in hook_functions():
        assert f"`{name}(" in text, f"{name} is missing from docs/plugins.md"
        assert inspect.getdoc(function), f"{name} has no docstring"
        signature = inspect.signature(function)  # type: ignore[arg-type]
        assert signature.return_annotation is not inspect.Signature.empty
        assert all(
            p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()
        )
