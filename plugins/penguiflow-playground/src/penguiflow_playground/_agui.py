"""AG-UI (the open agent-to-UI event protocol) on `POST /ag-ui`: a client sends a
`RunAgentInput`, the agent runs one session turn, and the turn's updates come back as AG-UI
events over Server-Sent Events (`data: {"type": ..., ...}`), field names in camelCase.

`AgUiTranslator` is the mapping, one session update in, AG-UI events out, kept pure so it is
tested on its own; docs/playground.md has the table."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from penguiflow.errors import describe_exception

from ._api import ApiError, PlaygroundApi, sse

__all__ = ["AgUiTranslator", "RunAgentInput", "agui_endpoint"]

_TERMINAL = {"COMPLETE", "FAILED", "CANCELLED"}


class RunAgentInput(BaseModel):
    """AG-UI's run request. Unknown fields are kept (the protocol grows)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    thread_id: str = Field(alias="threadId", min_length=1)
    run_id: str = Field(alias="runId", min_length=1)
    parent_run_id: str | None = Field(default=None, alias="parentRunId")
    state: Any = None
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    context: list[dict[str, Any]] = Field(default_factory=list)
    forwarded_props: Any = Field(default=None, alias="forwardedProps")

    def query(self) -> str:
        """The text of the last user message: what the turn answers."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):  # multimodal parts: their text
                    return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        raise ApiError(
            422,
            "invalid_request",
            'RunAgentInput.messages has no user message; add {"role": "user", "content": ...}',
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


class AgUiTranslator:
    """One run's session updates (as the session server's JSON views) to AG-UI events.

    It keeps what the protocol needs across updates: the assistant message being streamed
    (started once, ended once) and the tool calls whose start was sent."""

    def __init__(self, thread_id: str, run_id: str) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self.message_id: str | None = None
        self.text_sent = False
        self.finished = False
        self._open_tools: set[str] = set()

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "timestamp": _now_ms(), **fields}

    def started(self, state: Any = None) -> list[dict[str, Any]]:
        events = [self._event("RUN_STARTED", threadId=self.thread_id, runId=self.run_id)]
        if state is not None:
            events.append(self._event("STATE_SNAPSHOT", snapshot=state))
        return events

    def _text(self, delta: str) -> list[dict[str, Any]]:
        events = []
        if self.message_id is None:
            self.message_id = f"msg-{secrets.token_hex(8)}"
            events.append(
                self._event("TEXT_MESSAGE_START", messageId=self.message_id, role="assistant")
            )
        if delta:
            self.text_sent = True
            events.append(
                self._event("TEXT_MESSAGE_CONTENT", messageId=self.message_id, delta=delta)
            )
        return events

    def _end_text(self) -> list[dict[str, Any]]:
        if self.message_id is None:
            return []
        message_id, self.message_id = self.message_id, None
        return [self._event("TEXT_MESSAGE_END", messageId=message_id)]

    def translate(self, update: dict[str, Any]) -> list[dict[str, Any]]:
        """The AG-UI events for one update (`update_type`, `content`, `step_index`)."""
        kind = str(update.get("update_type"))
        content = update.get("content")
        body: dict[str, Any] = content if isinstance(content, dict) else {}
        if kind == "RESULT" and body.get("channel") in ("answer", "revision"):
            events = self._text(str(body.get("text") or ""))
            if body.get("done"):
                events += self._end_text()
            return events
        if kind == "THINKING":
            return [self._event("CUSTOM", name="penguiflow.thinking", value=body)]
        if kind == "TOOL_CALL":
            return self._tool(body)
        if kind == "PROGRESS" and body.get("label") in ("step_start", "step_complete"):
            name = f"step {body.get('current')}"
            started = body.get("label") == "step_start"
            return [self._event("STEP_STARTED" if started else "STEP_FINISHED", stepName=name)]
        if kind == "CHECKPOINT" and body.get("ref"):
            pause = {
                "ref": body.get("ref"),
                "reason": body.get("reason"),
                "payload": body.get("payload"),
                "options": body.get("options"),
                "taskId": update.get("task_id"),
            }
            return [*self._end_text(), self._event("CUSTOM", name="penguiflow.pause", value=pause)]
        if kind == "ERROR":
            return [self._event("CUSTOM", name="penguiflow.error", value=body)]
        return []

    def _tool(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        call_id = str(body.get("tool_call_id") or body.get("tool_name") or "call")
        phase = body.get("phase")
        events = []
        if phase == "start":
            events += self._end_text()
            self._open_tools.add(call_id)
            events.append(
                self._event(
                    "TOOL_CALL_START", toolCallId=call_id, toolCallName=str(body.get("tool_name"))
                )
            )
            args = body.get("args_json")
            if args:
                text = args if isinstance(args, str) else json.dumps(args)
                events.append(self._event("TOOL_CALL_ARGS", toolCallId=call_id, delta=text))
        elif phase == "end":
            if call_id in self._open_tools:
                self._open_tools.discard(call_id)
                events.append(self._event("TOOL_CALL_END", toolCallId=call_id))
        elif phase == "result":
            result = body.get("result_json")
            events.append(
                self._event(
                    "TOOL_CALL_RESULT",
                    messageId=f"tool-{call_id}",
                    toolCallId=call_id,
                    content=result if isinstance(result, str) else json.dumps(result),
                    role="tool",
                )
            )
        return events

    def finish(self, answer: str | None, result: Any = None) -> list[dict[str, Any]]:
        """The run ended well: the answer (when nothing streamed it), then RUN_FINISHED."""
        events = []
        if answer and not self.text_sent:
            events += self._text(answer)
        events += self._end_text()
        for call_id in sorted(self._open_tools):
            events.append(self._event("TOOL_CALL_END", toolCallId=call_id))
        self._open_tools.clear()
        self.finished = True
        events.append(
            self._event("RUN_FINISHED", threadId=self.thread_id, runId=self.run_id, result=result)
        )
        return events

    def error(self, message: str, code: str) -> list[dict[str, Any]]:
        self.finished = True
        return [*self._end_text(), self._event("RUN_ERROR", message=message, code=code)]


def _answer(task: Any) -> str | None:
    from penguiflow_sessions.planner import answer_text

    return answer_text(getattr(task, "result", None))


async def agui_endpoint(api: PlaygroundApi, request: Request) -> Response:
    """`POST /ag-ui`: run one turn of the agent and stream it as AG-UI events."""
    principal = await api.principal(request)
    run = RunAgentInput.model_validate(await api.body(request))
    query = run.query()
    session_id = run.thread_id if _safe(run.thread_id) else f"agui-{secrets.token_hex(6)}"
    session = await api.host.open(principal, session_id)
    # Subscribed before the turn starts, so its first update cannot be missed.
    subscription = await session.subscribe()
    try:
        task_id, trace_id, _ = await api.start_run(principal, session_id, query, kind="ag-ui")
    except BaseException:
        await _close(subscription)
        raise
    translator = AgUiTranslator(run.thread_id, run.run_id)

    async def stream() -> AsyncIterator[bytes]:
        from penguiflow_sessions.server import encode_sse

        try:
            _llm_context, _ = session.get_context()
            snapshot = {
                "sessionId": session_id,
                "taskId": task_id,
                "traceId": trace_id,
                "contextVersion": session.context_version,
            }
            for event in translator.started(snapshot):
                yield encode_sse(data=event)
            async for update in subscription:
                if update.task_id != task_id:
                    continue
                view = update.model_dump(mode="json", fallback=lambda v: f"<{type(v).__name__}>")
                events = translator.translate(view)
                ended = _ending(view)
                if view["update_type"] == "CHECKPOINT" and view["content"].get("ref"):
                    # The run waits for a person: this stream ends, the run stays paused in
                    # the session; approve it in the playground (or POST .../pauses/...).
                    events += translator.finish(
                        None, {"status": "paused", "pause": events[-1]["value"]}
                    )
                elif ended is not None:
                    task = await session.get_task(task_id)
                    if ended == "COMPLETE":
                        events += translator.finish(
                            _answer(task), {"status": "complete", "traceId": trace_id}
                        )
                    else:
                        error = (getattr(task, "error", None) or ended.lower()) if task else ended
                        events += translator.error(str(error), f"task_{ended.lower()}")
                for event in events:
                    yield encode_sse(data=event)
                if translator.finished:
                    return
            for event in translator.error("the session closed before the run ended", "closed"):
                yield encode_sse(data=event)
        except Exception as exc:
            yield sse({"type": "RUN_ERROR", "message": describe_exception(exc), "code": "error"})
        finally:
            await _close(subscription)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _ending(view: dict[str, Any]) -> str | None:
    if view.get("update_type") != "STATUS_CHANGE":
        return None
    content = view.get("content")
    status = str(content.get("status", "")).upper() if isinstance(content, dict) else ""
    return status if status in _TERMINAL else None


def _safe(thread_id: str) -> bool:
    import re

    return re.match(r"^[A-Za-z0-9_.~-]{1,128}$", thread_id) is not None


async def _close(subscription: Any) -> None:
    close = getattr(subscription, "aclose", None)
    if close is not None:
        await close()
