"""PenguiFlow's sessions and steering import paths (`penguiflow.sessions`, its submodules,
`penguiflow.steering` and its two submodules) resolve to the sessions plugin, and say how to
install it when it is missing.

As in test_planner_import_paths.py, each check runs in a fresh interpreter; the plugin (and
the planner plugin it builds on) count as installed when the checkout's `src` folders are on
`PYTHONPATH`, and as missing when `sys.modules['penguiflow_sessions'] = None`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    ROOT / "plugins" / "penguiflow-sessions" / "src",
    ROOT / "plugins" / "penguiflow-planner" / "src",
]
SESSION_SUBMODULES = [
    "broker", "models", "persistence", "planner", "policy", "projections", "registry",
    "session", "task_service", "task_tools", "telemetry", "transport",
]  # fmt: skip
INSTALL = "`pip install penguiflow-sessions`"
FROM_CHECKOUT = "`pip install ./plugins/penguiflow-sessions`"

OUTCOME = """
import importlib, json, sys
def outcome(thunk):
    try:
        value = thunk()
    except Exception as exc:
        return [type(exc).__name__, str(exc)]
    return ["ok", getattr(value, "__name__", type(value).__name__)]
"""


def run(code: str, *, block_plugin: bool = False) -> Any:
    """Run `code` in a fresh interpreter with the plugins' sources on its path; it prints
    one JSON value as its last line, which is returned."""
    blocked = "sys.modules['penguiflow_sessions'] = None\n" if block_plugin else ""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PENGUIFLOW_")}
    entries = [*(str(p) for p in SOURCES), environ.get("PYTHONPATH", "")]
    environ["PYTHONPATH"] = os.pathsep.join(e for e in entries if e)
    done = subprocess.run(
        [sys.executable, "-c", OUTCOME + blocked + textwrap.dedent(code)],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_penguiflow_does_not_import_sessions() -> None:
    found = run(
        """
        import penguiflow
        print(json.dumps(sorted(m for m in sys.modules
                                if m.startswith(("penguiflow.sessions", "penguiflow.steering",
                                                 "penguiflow_sessions")))))
        """
    )
    assert found == []


def test_the_sessions_path_gives_the_plugins_names_and_modules() -> None:
    found = run(
        f"""
        import penguiflow.sessions as facade, penguiflow_sessions as plugin
        from penguiflow.sessions import StateUpdate, UpdateBroker, ControlPolicy, TaskStateModel
        from penguiflow_sessions import models, broker, policy
        modules = {{}}
        for name in {SESSION_SUBMODULES!r}:
            theirs = outcome(lambda: importlib.import_module(f"penguiflow_sessions.{{name}}"))
            ours = outcome(lambda: importlib.import_module(f"penguiflow.sessions.{{name}}"))
            same = ours[0] == "ok" and sys.modules[f"penguiflow.sessions.{{name}}"] is (
                sys.modules.get(f"penguiflow_sessions.{{name}}"))
            modules[name] = [theirs, ours, same]
        print(json.dumps({{
            "all": facade.__all__ == plugin.__all__,
            "same": [StateUpdate is models.StateUpdate, UpdateBroker is broker.UpdateBroker,
                     ControlPolicy is policy.ControlPolicy, TaskStateModel is models.TaskState],
            "modules": modules,
            "scheduler": outcome(lambda: exec("from penguiflow.sessions import JobScheduler")),
            "unknown": outcome(lambda: facade.Nope),
        }}))
        """
    )
    assert found["all"] and found["same"] == [True, True, True, True]
    for name in ("models", "broker", "policy", "telemetry"):  # written; the rest may be too
        assert found["modules"][name][0][0] == "ok", name
    for name, (theirs, ours, same) in found["modules"].items():
        if theirs[0] == "ok":
            assert same, (name, ours)
        elif theirs == ["ModuleNotFoundError", f"No module named 'penguiflow_sessions.{name}'"]:
            assert ours[0] == "MissingPluginError" and "upgrade it" in ours[1], (name, ours)
        else:  # the plugin's module fails on its own import: ours fails alike
            assert ours == theirs, (name, ours, theirs)
    kind, message = found["scheduler"]
    assert kind == "UnsupportedFeatureError" and "spawn_task" in message
    assert found["unknown"] == [
        "AttributeError", "module 'penguiflow.sessions' has no attribute 'Nope'"
    ]  # fmt: skip


def test_the_steering_path_is_the_plugins_steering_module() -> None:
    found = run(
        """
        import penguiflow.steering as facade
        import penguiflow.steering.steering, penguiflow.steering.guard_inbox
        import penguiflow_sessions.steering as plugin, penguiflow_planner
        from penguiflow.steering import SteeringEvent, SteeringInbox, SteeringCancelled
        from penguiflow.steering import sanitize_payload, MAX_STEERING_PAYLOAD_BYTES
        from penguiflow.steering.guard_inbox import InMemoryGuardInbox
        print(json.dumps([
            facade.__all__ == plugin.__all__,
            sys.modules["penguiflow.steering.steering"] is plugin,
            sys.modules["penguiflow.steering.guard_inbox"] is plugin,
            SteeringEvent is plugin.SteeringEvent, SteeringInbox is plugin.SteeringInbox,
            SteeringCancelled is penguiflow_planner.SteeringCancelled,
            sanitize_payload is plugin.sanitize_payload, MAX_STEERING_PAYLOAD_BYTES,
            InMemoryGuardInbox is plugin.InMemoryGuardInbox,
        ]))
        """
    )
    assert found == [True, True, True, True, True, True, True, 16384, True]


def test_without_the_plugin_every_path_says_how_to_install_it() -> None:
    paths = [
        "penguiflow.sessions", "penguiflow.sessions.models", "penguiflow.sessions.session",
        "penguiflow.steering", "penguiflow.steering.steering", "penguiflow.steering.guard_inbox",
    ]  # fmt: skip
    found = run(
        f"""
        results = [outcome(lambda p=p: importlib.import_module(p)) for p in {paths!r}]
        results.append(outcome(lambda: exec("from penguiflow.sessions import StreamingSession")))
        results.append(outcome(lambda: exec("from penguiflow.steering import SteeringEvent")))
        print(json.dumps(results))
        """,
        block_plugin=True,
    )
    assert len(found) == len(paths) + 2
    for kind, message in found:
        assert kind == "MissingPluginError", message
        assert "provided by the plugin penguiflow-sessions" in message, message
        assert INSTALL in message and FROM_CHECKOUT in message, message
