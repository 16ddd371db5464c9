"""Remote nodes: a node whose work is done by a remote agent through a `RemoteTransport`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from .errors import InvalidTypeError, UsageError
from .node import Node, NodePolicy
from .observability import observe
from .state import RemoteBinding
from .types import Message

if TYPE_CHECKING:
    from ._context import Context
    from ._flow import PenguiFlow

__all__ = [
    "RemoteCallRequest",
    "RemoteCallResult",
    "RemoteNode",
    "RemoteStreamEvent",
    "RemoteTransport",
]


@dataclass(slots=True)
class RemoteCallRequest:
    message: Message
    skill: str
    agent_url: str
    agent_card: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None
    timeout_s: float | None = None
    context_id: str | None = None
    task_id: str | None = None


@dataclass(slots=True)
class RemoteCallResult:
    result: Any
    context_id: str | None = None
    task_id: str | None = None
    agent_url: str | None = None
    meta: Mapping[str, Any] | None = None


@dataclass(slots=True)
class RemoteStreamEvent:
    text: str | None = None
    done: bool = False
    meta: Mapping[str, Any] | None = None
    context_id: str | None = None
    task_id: str | None = None
    agent_url: str | None = None
    result: Any = None


@runtime_checkable
class RemoteTransport(Protocol):
    """How to reach a remote agent: unary call, streaming call, and cancellation."""

    async def send(self, request: RemoteCallRequest) -> RemoteCallResult: ...

    def stream(self, request: RemoteCallRequest) -> AsyncIterator[RemoteStreamEvent]: ...

    async def cancel(self, *, agent_url: str, task_id: str) -> None: ...


def _json_size(value: Any) -> int:
    try:
        if hasattr(value, "model_dump_json"):
            return len(value.model_dump_json().encode())
        return len(json.dumps(value, default=str).encode())
    except (TypeError, ValueError):
        return len(str(value).encode())


def _meta_text(meta: Mapping[str, Any], *keys: str) -> str | None:
    """The first of `keys` in `meta` holding a non-blank value, as stripped text.

    Routing context (`session_id`, `user_id`, a remote context id...) arrives in
    `Message.meta` from the caller, as strings or ids of other types: PenguiFlow 3.11 reads
    them this way, so a blank value counts as absent."""
    for key in keys:
        value = meta.get(key)
        if value is None:
            continue
        text = str(value).strip()
        if text:
            return text
    return None


class _RemoteCall:
    """State of one remote invocation: ids learnt from the agent, the cancel watcher."""

    def __init__(self, node: Node, message: Message, ctx: Context, runtime: PenguiFlow) -> None:
        self.node = node
        self.message = message
        self.ctx = ctx
        self.runtime = runtime
        self.context_id: str | None = None
        #: the context the request asked to continue (`meta["remote_context_id"]`)
        self.requested_context_id: str | None = None
        self.task_id: str | None = None
        self.agent_url: str | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.started = time.perf_counter()

    def latency(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def ids(self) -> dict[str, Any]:
        ids = {
            "remote_context_id": self.context_id,
            "remote_task_id": self.task_id,
            "remote_agent_url": self.agent_url,
        }
        return {key: value for key, value in ids.items() if value is not None}

    async def record(
        self, event: str, level: int, latency: float | None, extra: Mapping[str, Any]
    ) -> None:
        payload = {key: value for key, value in extra.items() if value is not None}
        payload.update(self.ids())
        await self.runtime.record_remote_event(
            event=event,
            node=self.node,
            context=self.ctx,
            trace_id=self.message.trace_id,
            latency_ms=latency,
            level=level,
            extra=payload,
        )


def RemoteNode(  # a factory named like the node kind it builds, as users know it
    *,
    transport: RemoteTransport,
    skill: str,
    agent_url: str,
    name: str,
    agent_card: Mapping[str, Any] | None = None,
    policy: NodePolicy | None = None,
    streaming: bool = False,
    record_binding: bool = True,
) -> Node:
    """A node that delegates each message to `skill` at `agent_url` and returns its result."""
    node_policy = policy or NodePolicy()
    node: Node

    async def bind(
        call: _RemoteCall, context_id: str | None, task_id: str | None, url: str | None
    ) -> None:
        if context_id is not None:
            call.context_id = context_id
        elif call.context_id is None:
            # the agent named no context: the call continued the one the request asked for
            call.context_id = call.requested_context_id
        if url is not None:
            call.agent_url = url
        if task_id is None or call.task_id is not None:
            return
        call.task_id = task_id
        target_url = call.agent_url or agent_url
        trace_id = call.message.trace_id
        if record_binding:
            meta = call.message.meta
            await call.runtime.save_remote_binding(
                RemoteBinding(
                    trace_id=trace_id,
                    context_id=call.context_id,
                    task_id=task_id,
                    agent_url=target_url,
                    # the caller's routing context, so a router can find this task again
                    router_session_id=_meta_text(meta, "session_id"),
                    remote_skill=skill,
                    tenant_id=_meta_text(meta, "tenant_id", "tenant")
                    or call.message.headers.tenant,
                    user_id=_meta_text(meta, "user_id"),
                    last_remote_task_id=task_id,
                    metadata={"source": "remote_node"},
                )
            )
        cancelled = call.runtime.ensure_trace_event(trace_id)
        if cancelled.is_set():
            await transport.cancel(agent_url=target_url, task_id=task_id)
            await call.record(
                "remote_call_cancelled",
                logging.INFO,
                call.latency(),
                {"remote_cancel_reason": "pre_cancelled", "remote_status": "cancelled"},
            )
            from .core import TraceCancelled

            raise TraceCancelled(trace_id)
        call.watcher = asyncio.get_running_loop().create_task(
            watch(call, cancelled, target_url, task_id)
        )
        call.runtime.register_external_task(trace_id, call.watcher)

    async def watch(call: _RemoteCall, cancelled: asyncio.Event, url: str, task_id: str) -> None:
        await cancelled.wait()
        try:
            await transport.cancel(agent_url=url, task_id=task_id)
        except Exception as exc:
            await call.record(
                "remote_cancel_error",
                logging.ERROR,
                call.latency(),
                {"remote_error": repr(exc), "remote_status": "cancel_error"},
            )
            return
        await call.record(
            "remote_call_cancelled",
            logging.INFO,
            call.latency(),
            {"remote_cancel_reason": "trace_cancel", "remote_status": "cancelled"},
        )

    async def invoke(message: Any, ctx: Context) -> Any:
        if not isinstance(message, Message):
            raise InvalidTypeError("Remote nodes require penguiflow.types.Message inputs")
        runtime = ctx.runtime
        if runtime is None:
            raise UsageError(
                f"RemoteNode '{name}' needs a running flow (ctx.runtime is None); "
                "run it inside a flow started with flow.run()"
            )
        call = _RemoteCall(node, message, ctx, cast("PenguiFlow", runtime))
        # A message may continue a remote conversation: its context (and task) ids go out
        # with the request, as PenguiFlow 3.11 sends them.
        call.requested_context_id = _meta_text(message.meta, "remote_context_id", "context_id")
        request = RemoteCallRequest(
            message=message,
            skill=skill,
            agent_url=agent_url,
            agent_card=agent_card,
            metadata=message.meta,
            timeout_s=node_policy.timeout_s,
            context_id=call.requested_context_id,
            task_id=_meta_text(message.meta, "remote_task_id"),
        )
        await call.record(
            "remote_call_start",
            logging.DEBUG,
            0.0,
            {
                "remote_skill": skill,
                "remote_transport": type(transport).__name__,
                "remote_streaming": streaming,
                "remote_request_bytes": _json_size(message),
                "remote_agent_url": agent_url,
            },
        )
        attributes = {
            "side": "client",
            "agent_url": agent_url,
            "skill": skill,
            "streaming": streaming,
            "node": name,
        }
        # One remote.call unit of work: its span is current while the transport runs, so the
        # request carries it (`traceparent`) and the remote agent's work joins this trace.
        async with observe(
            "remote",
            "call",
            trace_id=message.trace_id,
            tenant=message.headers.tenant,
            attributes=attributes,
        ) as unit:
            events = 0
            try:
                if streaming:
                    result: Any = None
                    async for event in transport.stream(request):
                        await bind(call, event.context_id, event.task_id, event.agent_url)
                        if event.text is not None:
                            meta = dict(event.meta) if event.meta else None
                            await ctx.emit_chunk(
                                parent=message, text=event.text, done=event.done, meta=meta
                            )
                            chunk_meta = sorted(event.meta) if event.meta else None
                            await call.record(
                                "remote_stream_event",
                                logging.DEBUG,
                                None,
                                {
                                    "remote_stream_seq": events,
                                    "remote_chunk_bytes": len(event.text.encode()) or None,
                                    "remote_chunk_done": event.done,
                                    "remote_chunk_meta_keys": chunk_meta,
                                },
                            )
                        if event.result is not None:
                            result = event.result
                        events += 1
                else:
                    response = await transport.send(request)
                    await bind(call, response.context_id, response.task_id, response.agent_url)
                    result = response.result
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                from .core import TraceCancelled

                if not isinstance(exc, TraceCancelled):
                    await call.record(
                        "remote_call_error",
                        logging.ERROR,
                        call.latency(),
                        {"remote_error": repr(exc), "remote_status": "error"},
                    )
                raise
            finally:
                watcher = call.watcher
                if watcher is not None:
                    if runtime.ensure_trace_event(message.trace_id).is_set():
                        with contextlib.suppress(Exception, asyncio.CancelledError):
                            await asyncio.shield(watcher)
                    else:
                        watcher.cancel()
            await call.record(
                "remote_call_success",
                logging.INFO,
                call.latency(),
                {
                    "remote_response_bytes": _json_size(result),
                    "remote_stream_events": events,
                    "remote_status": "success",
                },
            )
            if unit.active:
                unit.attributes.update(call.ids())
                unit.measurements["stream_events"] = float(events)
        return result

    node = Node(invoke, name=name, policy=node_policy)
    return node
