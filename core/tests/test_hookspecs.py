"""Every hookspec is documented in docs/plugins.md, typed, and has a docstring: the kernel's
and the ones first-party plugins declare from their own packages (the planner's)."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import penguiflow.hookspecs as hookspecs

ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
#: hookspec modules of first-party plugins, read from source so the check never depends on
#: what is installed
PLUGIN_HOOKSPECS = {
    "penguiflow_planner.hookspecs": ROOT
    / "plugins/penguiflow-planner/src/penguiflow_planner/hookspecs.py",
}


def _from_source(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("_hookspec_check_" + name.replace(".", "_"), path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_hookspec_modules() -> list[ModuleType]:
    return [hookspecs, *(_from_source(n, p) for n, p in PLUGIN_HOOKSPECS.items())]


def hook_functions(module: ModuleType) -> list[tuple[str, object]]:
    return [(n, f) for n, f in vars(module).items() if n.startswith("penguiflow_")]


def test_hookspecs_exist_and_are_marked() -> None:
    names = {name for name, _ in hook_functions(hookspecs)}
    assert names == {"penguiflow_addhooks", "penguiflow_configure",
                     "penguiflow_register_connectors", "penguiflow_observability_sinks",
                     "penguiflow_event_sinks", "penguiflow_flow_startup",
                     "penguiflow_flow_shutdown"}  # fmt: skip
    for module in all_hookspec_modules():
        for _, function in hook_functions(module):
            assert hasattr(function, "penguiflow_spec")


def test_things_chosen_by_name_are_drivers_never_hooks() -> None:
    """One kind, one mechanism: the hooks that duplicated driver groups are gone."""
    names = {name for module in all_hookspec_modules() for name, _ in hook_functions(module)}
    assert not names & {"penguiflow_register_join_strategies",
                        "penguiflow_register_memory_strategies",
                        "penguiflow_register_llm_adapters"}  # fmt: skip
    assert "penguiflow_planner_sinks" in names  # declared by the planner, not the kernel
    assert not hasattr(hookspecs, "penguiflow_planner_sinks")


def test_lifecycle_hooks_take_the_role() -> None:
    for name in ("penguiflow_observability_sinks", "penguiflow_flow_startup",
                 "penguiflow_flow_shutdown"):  # fmt: skip
        assert list(inspect.signature(getattr(hookspecs, name)).parameters) == ["flow", "role"]
    assert hookspecs.FlowRole.__args__ == ("local", "client", "worker")  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", all_hookspec_modules(), ids=lambda m: m.__name__)
def test_every_hookspec_is_documented_typed_and_explained(module: ModuleType) -> None:
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    functions = hook_functions(module)
    assert functions, f"{module.__name__} declares no hook"
    for name, function in functions:
        assert f"`{name}(" in text, f"{name} is missing from docs/plugins.md"
        assert inspect.getdoc(function), f"{name} has no docstring"
        signature = inspect.signature(function)  # type: ignore[arg-type]
        assert signature.return_annotation is not inspect.Signature.empty
        assert all(
            p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()
        )
