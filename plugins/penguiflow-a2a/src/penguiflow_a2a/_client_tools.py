"""Remote agents as planner tools: one catalog entry per skill of an agent card."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from contextlib import aclosing
from typing import Any

from pydantic import ValidationError

from penguiflow.catalog import NodeSpec
from penguiflow.errors import ConfigurationError, InvalidTypeError
from penguiflow.remote import RemoteCallRequest, RemoteCallResult
from penguiflow.types import Headers, Message

from ._client_transport import A2AHttpTransport
from ._wire import BINDING_HTTP_JSON, AgentCard, AgentSkill

__all__ = ["a2a_agent_tools"]

#: what the model fills in to call an agent's skill: the message to send it
_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "What to ask the agent, in words."}
    },
    "required": ["message"],
    "additionalProperties": False,
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "agent"


def _card(card: AgentCard | Mapping[str, Any]) -> AgentCard:
    if isinstance(card, AgentCard):
        return card
    if not isinstance(card, Mapping):
        raise InvalidTypeError(
            "a2a_agent_tools takes an agent URL (str), an AgentCard or the card's JSON "
            f"(a mapping); got {type(card).__name__}"
        )
    try:
        return AgentCard.model_validate(dict(card))
    except ValidationError as exc:
        raise ConfigurationError(
            f"the agent card given to a2a_agent_tools is not A2A 1.x's shape: {exc}"
        ) from None


def _describe(card: AgentCard, skill: AgentSkill) -> str:
    text = skill.description.strip() or skill.name
    lines = [f"{text} (skill {skill.id!r} of the remote agent {card.name!r})"]
    if skill.examples:
        lines.append("Examples: " + "; ".join(skill.examples))
    return "\n".join(lines)


class _SkillCall:
    """Calls one skill of one agent with the tool's `message` argument."""

    def __init__(
        self,
        *,
        transport: A2AHttpTransport,
        agent_url: str,
        skill: str,
        streaming: bool,
        tenant: str,
        timeout_s: float | None,
    ) -> None:
        self.transport = transport
        self.agent_url = agent_url
        self.skill = skill
        self.streaming = streaming
        self.tenant = tenant
        self.timeout_s = timeout_s

    async def __call__(self, arguments: Mapping[str, Any]) -> Any:
        request = RemoteCallRequest(
            message=Message(payload=str(arguments["message"]), headers=Headers(tenant=self.tenant)),
            skill=self.skill,
            agent_url=self.agent_url,
            timeout_s=self.timeout_s,
        )
        if not self.streaming:
            return _observation(await self.transport.send(request))
        # Streaming even though the planner wants one answer: the first event names the
        # remote task, so a cancelled tool call can cancel the work it started (PenguiFlow's
        # task-mode tools left it running).
        task_id: str | None = None
        try:
            async with aclosing(self.transport.stream(request)) as events:
                async for event in events:
                    task_id = event.task_id or task_id
                    if event.done:
                        return _observation(
                            RemoteCallResult(
                                result=event.result,
                                context_id=event.context_id,
                                task_id=event.task_id,
                                meta=event.meta,
                            )
                        )
        except asyncio.CancelledError:
            if task_id is not None:
                # shielded: the cancel must go out although this call is being cancelled
                await asyncio.shield(
                    self.transport.cancel(agent_url=self.agent_url, task_id=task_id)
                )
            raise
        return None  # unreachable: A2AHttpTransport raises when a stream ends unfinished


def _observation(result: RemoteCallResult) -> Any:
    state = (result.meta or {}).get("state")
    if state is None or state == "completed":
        return result.result
    # An agent waiting for input (or auth) says what it needs: the model must see that it
    # is a question, not an answer.
    return {"state": state, "message": result.result, "task_id": result.task_id}


async def a2a_agent_tools(
    card_or_url: str | AgentCard | Mapping[str, Any],
    *,
    transport: A2AHttpTransport,
    agent_url: str | None = None,
    prefix: str | None = None,
    tenant: str = "default",
    streaming: bool | None = None,
    timeout_s: float | None = None,
) -> list[NodeSpec]:
    """One `NodeSpec` per skill of an A2A agent, for `ReactPlanner(catalog=...)`.

    `card_or_url` is the agent's URL (its card is fetched through `transport`), or its card
    (an `AgentCard` or the card's JSON). Each tool is named `<prefix>.<skill id>` (`prefix`
    defaults to the card's name in snake case), takes one argument, `message` (text), and
    returns what the agent answered: its artifacts' text or data, or, when the agent asks for
    input, `{"state": "input-required", "message": ..., "task_id": ...}`. A failed, rejected
    or canceled remote task raises `A2ATaskFailedError`, which the planner reports as the
    tool's error.

    Calls go to `agent_url`, else the card's HTTP+JSON interface, else the URL given.
    `streaming` (default: what the card's capabilities say) makes each call stream, so a
    cancelled tool call cancels the remote task too."""
    url = agent_url
    if isinstance(card_or_url, str):
        card = await transport.get_agent_card(card_or_url)
        url = url or card_or_url
    else:
        card = _card(card_or_url)
    interface = card.interface(BINDING_HTTP_JSON)
    if url is None:
        if interface is None:
            raise ConfigurationError(
                f"the card of agent {card.name!r} lists no {BINDING_HTTP_JSON} interface; "
                "pass agent_url=... to say where to call it"
            )
        url = interface.url
    if not card.skills:
        raise ConfigurationError(
            f"the agent {card.name!r} at {url} declares no skills, so it offers no tools; "
            "a card lists what an agent can do under `skills`"
        )
    stream = bool(card.capabilities.streaming) if streaming is None else streaming
    namespace = prefix if prefix is not None else _slug(card.name)
    specs: list[NodeSpec] = []
    for skill in card.skills:
        specs.append(
            NodeSpec.from_schema(
                f"{namespace}.{skill.id}" if namespace else skill.id,
                desc=_describe(card, skill),
                input_schema=_INPUT_SCHEMA,
                call=_SkillCall(
                    transport=transport,
                    agent_url=url,
                    skill=skill.id,
                    streaming=stream,
                    tenant=tenant,
                    timeout_s=timeout_s,
                ),
                side_effects="external",
                tags=("a2a", *skill.tags),
                extra={"a2a_agent": card.name, "a2a_agent_url": url, "a2a_skill": skill.id},
            )
        )
    return specs
