"""Routing policies (spec §1.21)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from penguiflow.node import Node
from penguiflow.policies import DictRoutingPolicy, RoutingRequest, evaluate_policy


async def noop(message: Any, ctx: Any) -> Any:
    return message


def request(trace_id: str | None = "t1") -> RoutingRequest:
    router = Node(noop, name="router")
    proposed = (Node(noop, name="a"), Node(noop, name="b"))
    return RoutingRequest(
        message="m", context=None, node=router, proposed=proposed, trace_id=trace_id
    )  # type: ignore[arg-type]


def test_request_names() -> None:
    req = request()
    assert req.node_name == "router" and req.proposed_names == ("a", "b")


async def test_evaluate_sync_async_objects_and_callables() -> None:
    class Sync:
        def select(self, req: RoutingRequest) -> str:
            return "a"

    class Async:
        async def select(self, req: RoutingRequest) -> str:
            return "b"

    async def coro(req: RoutingRequest) -> list[str]:
        return ["a", "b"]

    assert await evaluate_policy(Sync(), request()) == "a"
    assert await evaluate_policy(Async(), request()) == "b"
    assert await evaluate_policy(lambda req: None, request()) is None
    assert await evaluate_policy(coro, request()) == ["a", "b"]


def test_dict_policy_lookup_default_and_updates() -> None:
    policy = DictRoutingPolicy({"t1": "a"}, default="b")
    assert policy.select(request("t1")) == "a"
    assert policy.select(request("zz")) == "b"
    assert policy.select(request(None)) == "b"
    policy.update_mapping({"t1": "b"})
    policy.set_default(None)
    assert policy._mapping == {"t1": "b"} and policy.select(request("zz")) is None


def test_dict_policy_loaders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DictRoutingPolicy.from_json('{"t1": "a"}').select(request()) == "a"
    with pytest.raises(TypeError, match="JSON payload must decode to a mapping"):
        DictRoutingPolicy.from_json("[1]")
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"t1": ["a", "b"]}))
    assert DictRoutingPolicy.from_json_file(path).select(request()) == ["a", "b"]
    with pytest.raises(KeyError, match="Environment variable 'ROUTES' not set"):
        DictRoutingPolicy.from_env("ROUTES")
    monkeypatch.setenv("ROUTES", '{"t1": "b"}')
    assert DictRoutingPolicy.from_env("ROUTES").select(request()) == "b"
    with pytest.raises(TypeError, match="Policy loader must return a mapping"):
        DictRoutingPolicy.from_env("ROUTES", loader=lambda raw: [raw])  # type: ignore[arg-type, return-value]
