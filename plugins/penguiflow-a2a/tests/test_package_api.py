"""`penguiflow_a2a`'s facade: a tested `__all__`, names loaded lazily, nothing heavy at import."""

from __future__ import annotations

import subprocess
import sys

import penguiflow_a2a
import pytest
from penguiflow_a2a import client, push, server

from penguiflow.errors import PenguiFlowError


def test_all_is_sorted_and_every_name_resolves() -> None:
    names = penguiflow_a2a.__all__
    assert names == sorted(names) and len(set(names)) == len(names)
    assert set(names) == set(penguiflow_a2a._HOMES)
    for name in names:
        assert getattr(penguiflow_a2a, name) is not None
    assert set(names) <= set(dir(penguiflow_a2a))


def test_the_facade_gives_the_public_modules_objects() -> None:
    assert penguiflow_a2a.create_a2a_app is server.create_a2a_app
    assert penguiflow_a2a.PlannerExecutor is server.PlannerExecutor
    assert penguiflow_a2a.AgentCard is server.AgentCard
    assert penguiflow_a2a.BearerTokenAuthenticator is server.BearerTokenAuthenticator
    assert penguiflow_a2a.A2AHttpTransport is client.A2AHttpTransport
    assert penguiflow_a2a.a2a_agent_tools is client.a2a_agent_tools
    assert penguiflow_a2a.PushSender is push.PushSender
    for name in ("A2AError", "A2AClientError", "TaskNotFoundError", "PushURLError"):
        assert issubclass(getattr(penguiflow_a2a, name), PenguiFlowError)
    assert "PlannerExecutor" in server.__all__


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        penguiflow_a2a.nope  # noqa: B018


def _loaded_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_importing_loads_nothing_heavy() -> None:
    loaded = _loaded_after("import penguiflow_a2a")
    assert not {"starlette", "httpx", "pydantic", "penguiflow_a2a._wire"} & loaded
    # The card models and the authenticators work without Starlette (a client-only process).
    loaded = _loaded_after(
        "from penguiflow_a2a import AgentCard, BearerTokenAuthenticator, A2AHttpTransport"
    )
    assert "penguiflow_a2a._wire" in loaded and "starlette" not in loaded
    loaded = _loaded_after("from penguiflow_a2a import create_a2a_app")
    assert "starlette" in loaded
