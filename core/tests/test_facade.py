"""The public facade: every advertised name resolves, and importing it stays light."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import penguiflow

CORE_NAMES = {
    "create", "PenguiFlow", "Context", "CycleError", "call_playbook", "DEFAULT_QUEUE_MAXSIZE",
    "Node", "NodePolicy", "Headers", "Message", "StreamChunk", "PlanStep", "Thought", "WM",
    "FinalAnswer", "map_concurrent", "join_k", "predicate_router", "union_router",
    "DictRoutingPolicy", "RoutingPolicy", "RoutingRequest", "ModelRegistry", "FlowError",
    "FlowErrorCode", "FlowEvent", "format_flow_event", "Middleware", "log_flow_events",
    "LatencyCallback", "MessageBus", "BusEnvelope", "StateStore", "StoredEvent", "RemoteBinding",
    "RemoteNode", "RemoteTransport", "RemoteCallRequest", "RemoteCallResult",
    "RemoteStreamEvent", "format_sse_event", "chunk_to_ws_json", "stream_flow",
    "emit_stream_events", "flow_to_mermaid", "flow_to_dot", "configure_logging",
    "StructuredFormatter", "ExtraFormatter", "testkit", "__version__",
}  # fmt: skip
#: Names PenguiFlow exports for its catalog, which lives in our kernel too (connectors and the
#: planner plugin share it).
CATALOG_NAMES = {"NodeSpec", "SideEffect", "ToolInputExample", "ToolLoadingMode", "build_catalog",
                 "tool"}  # fmt: skip


def test_all_lists_every_compatible_name() -> None:
    assert set(penguiflow.__all__) >= CORE_NAMES
    extra = {"CircuitBreakerPolicy", "PenguiFlowError", *CATALOG_NAMES}
    assert set(penguiflow.__all__) - CORE_NAMES == extra
    assert len(penguiflow.__all__) == len(set(penguiflow.__all__))


@pytest.mark.parametrize("name", sorted(CORE_NAMES | CATALOG_NAMES))
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(penguiflow, name) is not None


def test_core_module_names() -> None:
    core = importlib.import_module("penguiflow.core")
    for name in ("Endpoint", "ROOKERY", "OPEN_SEA", "TraceCancelled", "Floe", "PlaybookFactory"):
        assert hasattr(core, name)
    assert core.BUDGET_EXCEEDED_TEXT == "Hop budget exhausted"
    assert core.DEADLINE_EXCEEDED_TEXT == "Deadline exceeded"
    assert core.TOKEN_BUDGET_EXCEEDED_TEXT == "Token budget exhausted"
    assert core.DEFAULT_QUEUE_MAXSIZE == 64


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        penguiflow.Nope  # noqa: B018


def test_import_penguiflow_pulls_in_nothing_heavy() -> None:
    """`import penguiflow` loads our package only; `create` adds pydantic, nothing else."""
    probe = (
        "import sys, json; before = set(sys.modules); import penguiflow; "
        "bare = sorted(set(sys.modules) - before); from penguiflow import create; "
        "full = sorted({m.split('.')[0] for m in set(sys.modules) - before}); "
        "planner = [m for m in sys.modules if m.startswith(('penguiflow.planner', "
        "'penguiflow_planner'))]; "
        "print(json.dumps([bare, full, planner]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    bare, full, planner = json.loads(out)
    assert planner == []  # PenguiFlow's planner path is imported only when asked for

    def third_party(modules: list[str]) -> set[str]:
        tops = {m.split(".")[0] for m in modules}
        return {m for m in tops if m not in sys.stdlib_module_names and not m.startswith("_")}

    assert third_party(bare) == {"penguiflow"}
    allowed = {"penguiflow", "pydantic", "pydantic_core", "typing_extensions"}
    allowed |= {"annotated_types", "typing_inspection"}
    assert third_party(full) <= allowed, third_party(full)


def test_pytest_plugin_import_is_light() -> None:
    """pytest loads our pytest11 plugin in every run; it must not pull in the suites."""
    probe = (
        "import sys, json; import penguiflow.testing.pytest_plugin; "
        "names = [m for m in sys.modules if m.startswith(('pydantic', 'penguiflow.'))]; "
        "print(json.dumps(sorted(names)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == [
        "penguiflow._version",
        "penguiflow.testing",
        "penguiflow.testing.pytest_plugin",
    ]


def test_planner_names_say_how_to_install_the_plugin_when_it_is_missing() -> None:
    code = (
        "import sys; sys.modules['penguiflow_planner'] = None\n"
        "try:\n"
        "    from penguiflow import ReactPlanner\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install penguiflow-planner" in done.stdout


def test_the_planner_path_says_how_to_install_the_plugin_when_it_is_missing() -> None:
    code = (
        "import sys; sys.modules['penguiflow_planner'] = None\n"
        "from penguiflow.errors import MissingPluginError\n"
        "for path in ('penguiflow.planner', 'penguiflow.planner.memory'):\n"
        "    try:\n"
        "        __import__(path)\n"
        "    except MissingPluginError as exc:\n"
        "        print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout + done.stderr
    for line in lines:
        assert line.startswith("penguiflow.planner is provided by the plugin penguiflow-planner")
        assert "`pip install penguiflow-planner`" in line
        assert "`pip install ./plugins/penguiflow-planner`" in line
