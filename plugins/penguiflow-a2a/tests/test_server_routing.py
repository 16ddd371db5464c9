"""What reaches the flow and who reaches what: the skill and metadata in `Message.meta`, the
SDK's ``/{tenant}/...`` paths (and JSON-RPC's ``tenant``) bound to the caller's tenant, and
the extended agent card for authenticated callers only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.types import a2a_pb2 as pb
from penguiflow_a2a.server import (
    AgentCard,
    AgentSkill,
    BearerTokenAuthenticator,
    create_a2a_app,
)
from server_support import CARD, serve, shout_flow

from penguiflow import Message, Node, NodePolicy, create

BINDINGS = ["HTTP+JSON", "JSONRPC"]
TOKENS = {"t-acme": "acme", "t-globex": "globex"}
ACME = {"Authorization": "Bearer t-acme"}
EXTENDED = AgentCard(
    name="shouter (members)",
    description="Upper-cases text, and whispers for members",
    version="1.0.0",
    skills=[
        *CARD.skills,
        AgentSkill(id="whisper", name="whisper", description="Lower-case text"),
    ],
)


def _request(text: str, *, tenant: str = "", **metadata: Any) -> pb.SendMessageRequest:
    message = pb.Message(message_id="m-1", role=pb.ROLE_USER, parts=[pb.Part(text=text)])
    if metadata:
        message.metadata.update(metadata)
    return pb.SendMessageRequest(message=message, tenant=tenant)


async def _client(url: str, binding: str, http: httpx.AsyncClient) -> Any:
    config = ClientConfig(streaming=False, httpx_client=http, supported_protocol_bindings=[binding])
    return await create_client(url, client_config=config)


def _secured(url: str, **kw: Any) -> Any:
    return create_a2a_app(
        shout_flow(),
        agent_card=CARD,
        authenticator=BearerTokenAuthenticator(TOKENS),
        base_url=url,
        **kw,
    )


# --- the skill and metadata reach the flow ----------------------------------------------


def routing_flow() -> Any:
    async def route(message: Message, ctx: Any) -> Message:
        meta = message.meta
        answer = {
            "skill": meta["a2a_skill"],
            "caller": meta["a2a_metadata"].get("caller"),
            "request": meta["a2a_request_metadata"],
            "task": meta["a2a_task_id"],
        }
        return message.model_copy(update={"payload": answer})

    return create(Node(route, name="route", policy=NodePolicy(validate="none")).to())


@pytest.mark.parametrize("binding", BINDINGS)
async def test_the_flow_can_route_on_the_skill_and_read_the_metadata(binding: str) -> None:
    def build(url: str) -> Any:
        return create_a2a_app(routing_flow(), agent_card=CARD, base_url=url)

    async with serve(build) as url, httpx.AsyncClient(timeout=30, trust_env=False) as http:
        client = await _client(url, binding, http)
        request = _request("hi", skill="shout", caller="billing")
        request.metadata.update({"priority": "high"})
        [event] = [e async for e in client.send_message(request)]
        task = event.task
        assert task.status.state == pb.TASK_STATE_COMPLETED
        seen = dict(task.artifacts[0].parts[0].data.struct_value)
        assert seen["skill"] == "shout" and seen["caller"] == "billing"
        assert dict(seen["request"]) == {"priority": "high"}
        assert seen["task"] == task.id
        # Without a skill the flow sees None, not a missing key.
        [event] = [e async for e in client.send_message(_request("hi"))]
        assert event.task.artifacts[0].parts[0].data.struct_value["skill"] is None
        await client.close()


# --- tenants in the path ------------------------------------------------------------------


@pytest.mark.parametrize("binding", BINDINGS)
async def test_the_sdk_tenant_form_is_served_for_the_callers_own_tenant(binding: str) -> None:
    async with (
        serve(_secured) as url,
        httpx.AsyncClient(timeout=30, trust_env=False, headers=ACME) as http,
    ):
        client = await _client(url, binding, http)
        [event] = [e async for e in client.send_message(_request("hi", tenant="acme"))]
        task = event.task
        assert task.artifacts[0].parts[0].text == "HI"
        fetched = await client.get_task(pb.GetTaskRequest(id=task.id, tenant="acme"))
        assert fetched.id == task.id
        listed = await client.list_tasks(pb.ListTasksRequest(tenant="acme"))
        assert [t.id for t in listed.tasks] == [task.id]
        # Another tenant's name is "not found", whether or not it exists.
        for tenant in ("globex", "nobody"):
            with pytest.raises(Exception, match=r"not found|nothing under tenant") as caught:
                await client.get_task(pb.GetTaskRequest(id=task.id, tenant=tenant))
            assert type(caught.value).__name__ == "TaskNotFoundError"
            with pytest.raises(Exception, match="nothing under tenant"):
                [e async for e in client.send_message(_request("x", tenant=tenant))]
        await client.close()


async def test_tenant_paths_refuse_other_tenants_over_plain_http() -> None:
    async with serve(_secured) as url, httpx.AsyncClient(timeout=30, trust_env=False) as http:
        body = {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "a"}]}}
        r = await http.post(f"{url}/acme/message:send", json=body, headers=ACME)
        assert r.status_code == 200, r.text
        task_id = r.json()["task"]["id"]
        r = await http.get(f"{url}/acme/tasks/{task_id}", headers=ACME)
        assert r.status_code == 200 and r.json()["id"] == task_id
        globex = {"Authorization": "Bearer t-globex"}
        r = await http.get(f"{url}/acme/tasks/{task_id}", headers=globex)
        assert r.status_code == 404
        r = await http.post(f"{url}/acme/tasks/{task_id}:cancel", headers=globex)
        assert r.status_code == 404
        r = await http.get(f"{url}/acme/tasks", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = await http.get(f"{url}/tasks/{task_id}", headers=ACME)
        assert r.status_code == 200  # the plain form is unchanged


# --- the extended card --------------------------------------------------------------------


@pytest.mark.parametrize("binding", BINDINGS)
async def test_the_extended_card_goes_to_authenticated_callers(binding: str) -> None:
    def build(url: str) -> Any:
        return _secured(url, extended_agent_card=EXTENDED)

    async with (
        serve(build) as url,
        httpx.AsyncClient(timeout=30, trust_env=False, headers=ACME) as http,
    ):
        public = (await http.get(f"{url}/.well-known/agent-card.json")).json()
        assert public["capabilities"]["extendedAgentCard"] is True
        assert [s["id"] for s in public["skills"]] == ["shout"]
        client = await _client(url, binding, http)
        card = await client.get_extended_agent_card(pb.GetExtendedAgentCardRequest())
        assert card.name == "shouter (members)"
        assert [s.id for s in card.skills] == ["shout", "whisper"]
        await client.close()
        async with httpx.AsyncClient(timeout=30, trust_env=False) as anonymous:
            r = await anonymous.get(f"{url}/extendedAgentCard")
            assert r.status_code == 401
            rpc = {"jsonrpc": "2.0", "id": 1, "method": "GetExtendedAgentCard", "params": {}}
            r = await anonymous.post(f"{url}/", json=rpc)
            assert r.status_code == 401 and "error" in r.json()


async def test_without_an_extended_card_the_request_is_an_a2a_error() -> None:
    async with serve(_secured) as url, httpx.AsyncClient(timeout=30, trust_env=False) as http:
        public = (await http.get(f"{url}/.well-known/agent-card.json")).json()
        assert not public["capabilities"].get("extendedAgentCard")
        r = await http.get(f"{url}/extendedAgentCard", headers=ACME)
        assert r.status_code == 400
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "GetExtendedAgentCard", "params": {}}
        r = await http.post(f"{url}/", json=rpc, headers=ACME)
        assert r.json()["error"]["code"] == -32007
