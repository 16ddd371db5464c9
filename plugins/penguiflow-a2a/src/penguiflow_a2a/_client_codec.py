"""The client's side of A2A 1.x's JSON: request bodies out, results and stream events in.

Bodies are the wire models of `_wire` (the protobuf JSON mapping the official SDK speaks);
this module turns a `RemoteCallRequest` into a `SendMessageRequest` and folds the agent's
replies (a task, a message, status and artifact updates) into one result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from penguiflow.remote import RemoteCallRequest

from ._client_errors import A2AProtocolError
from ._wire import (
    Artifact,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    SendMessageResponse,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
    to_wire,
)

__all__ = [
    "FINAL_FAILURES",
    "INTERRUPTED",
    "ResultBuilder",
    "build_send_body",
    "parse_body",
    "parts_text",
    "parts_value",
    "state_name",
]

#: states in which a task ended without an answer: the client raises for these
FINAL_FAILURES = frozenset({TaskState.FAILED, TaskState.REJECTED, TaskState.CANCELED})
#: states in which the task waits for the caller: the call returns what the agent said
INTERRUPTED = frozenset({TaskState.INPUT_REQUIRED, TaskState.AUTH_REQUIRED})

_Model = TypeVar("_Model", bound=BaseModel)


def state_name(state: TaskState) -> str:
    """`TaskState.INPUT_REQUIRED` as `input-required`, the spelling people read."""
    return state.value.removeprefix("TASK_STATE_").lower().replace("_", "-")


def parse_body(model: type[_Model], body: Any, *, what: str, agent_url: str) -> _Model:
    """`body` (decoded JSON) as `model`, or an `A2AProtocolError` saying what did not fit."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(body)'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_context=False, include_input=False)
        )
        raise A2AProtocolError(
            f"the agent at {agent_url} sent {what} that is not A2A 1.x's shape ({problems}); "
            "is the URL an A2A 1.x HTTP+JSON endpoint?",
            agent_url=agent_url,
        ) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    # A round trip through json with default=str keeps what JSON can hold and turns the
    # rest (datetimes, ids) into text instead of failing the whole call.
    return json.loads(json.dumps(value, default=str))


def _payload_parts(payload: Any) -> list[Part]:
    if isinstance(payload, str):
        return [Part(text=payload)]
    return [Part(data=_jsonable(payload), media_type="application/json")]


def build_send_body(
    request: RemoteCallRequest, *, history_length: int | None, tenant: str | None = None
) -> dict[str, Any]:
    """The `SendMessageRequest` for `request`: the payload as one part (text, or JSON data),
    the skill and the caller's metadata in the message's metadata, and the context and task
    ids the caller continues."""
    metadata: dict[str, Any] = {}
    if request.metadata:
        metadata.update(_jsonable(dict(request.metadata)))
    # A2A has no field naming the skill; agents built on PenguiFlow read it from here.
    metadata["skill"] = request.skill
    message = Message(
        role=Role.USER,
        parts=_payload_parts(request.message.payload),
        metadata=metadata,
        context_id=request.context_id or None,
        task_id=request.task_id or None,
    )
    body = SendMessageRequest(
        tenant=tenant,
        message=message,
        configuration=SendMessageConfiguration(
            return_immediately=False, history_length=history_length
        ),
    )
    return to_wire(body)


def parts_text(parts: Sequence[Part]) -> str:
    """The text parts, joined: what a person would read of them."""
    return "".join(part.text for part in parts if part.text is not None)


def parts_value(parts: Sequence[Part]) -> Any:
    """The result a node returns for `parts`: one data part's value, the joined text of text
    parts, or the parts as wire dicts when they mix kinds (files, several data parts)."""
    if not parts:
        return None
    if all(part.text is not None for part in parts):
        return parts_text(parts)
    if len(parts) == 1 and parts[0].data is not None:
        return parts[0].data
    return [to_wire(part) for part in parts]


@dataclass(slots=True)
class ResultBuilder:
    """Collects a task's artifacts, ids and state from a reply or a stream of updates."""

    agent_url: str
    task_id: str | None = None
    context_id: str | None = None
    state: TaskState | None = None
    status_parts: list[Part] = field(default_factory=list)
    #: artifact id -> parts, in the order artifacts first appeared
    artifacts: dict[str, list[Part]] = field(default_factory=dict)
    message_parts: list[Part] | None = None

    def _ids(self, task_id: str | None, context_id: str | None) -> None:
        if task_id:
            self.task_id = task_id
        if context_id:
            self.context_id = context_id

    def _status(self, status: TaskStatus) -> None:
        self.state = status.state
        self.status_parts = list(status.message.parts) if status.message else []

    @property
    def status_text(self) -> str:
        return parts_text(self.status_parts)

    def add_artifact(self, artifact: Artifact, *, append: bool) -> list[Part]:
        """Records an artifact (or a chunk of one, when `append`); returns its new parts."""
        if append and artifact.artifact_id in self.artifacts:
            self.artifacts[artifact.artifact_id].extend(artifact.parts)
        else:
            self.artifacts[artifact.artifact_id] = list(artifact.parts)
        return list(artifact.parts)

    def add_task(self, task: Task) -> None:
        self._ids(task.id, task.context_id)
        self._status(task.status)
        if task.artifacts:
            self.artifacts.clear()
            for artifact in task.artifacts:
                self.add_artifact(artifact, append=False)

    def add_message(self, message: Message) -> None:
        self._ids(message.task_id, message.context_id)
        self.message_parts = list(message.parts)

    def add_status_update(self, update: TaskStatusUpdateEvent) -> None:
        self._ids(update.task_id, update.context_id)
        self._status(update.status)

    def add_artifact_update(self, update: TaskArtifactUpdateEvent) -> list[Part]:
        self._ids(update.task_id, update.context_id)
        return self.add_artifact(update.artifact, append=bool(update.append))

    def add_send_response(self, body: Any) -> None:
        """A `SendMessageResponse` body: `{"task": ...}` or `{"message": ...}`."""
        response = parse_body(
            SendMessageResponse, body, what="a message:send reply", agent_url=self.agent_url
        )
        if response.task is not None:
            self.add_task(response.task)
        elif response.message is not None:
            self.add_message(response.message)
        else:
            raise A2AProtocolError(
                f"the agent at {self.agent_url} answered message:send with neither a task "
                "nor a message",
                agent_url=self.agent_url,
            )

    def add_stream_response(self, body: Any) -> StreamResponse:
        """One stream event's body, folded in; returned parsed for the caller to relay."""
        event = parse_body(StreamResponse, body, what="a stream event", agent_url=self.agent_url)
        if event.task is not None:
            self.add_task(event.task)
        elif event.message is not None:
            self.add_message(event.message)
        elif event.status_update is not None:
            self.add_status_update(event.status_update)
        elif event.artifact_update is not None:
            self.add_artifact_update(event.artifact_update)
        return event

    @property
    def finished(self) -> bool:
        """Whether the reply holds an answer: a direct message, or a task that completed,
        failed or waits for input."""
        if self.message_parts is not None:
            return True
        return self.state is not None and (
            self.state == TaskState.COMPLETED
            or self.state in FINAL_FAILURES
            or self.state in INTERRUPTED
        )

    def failure(self) -> str | None:
        """Why the task failed, if it ended failed, rejected or canceled."""
        if self.state not in FINAL_FAILURES or self.state is None:
            return None
        said = f": {self.status_text}" if self.status_text else ""
        return (
            f"the remote task {self.task_id} at {self.agent_url} ended "
            f"{state_name(self.state)}{said}"
        )

    def result(self) -> Any:
        """The call's result: a direct message's parts, else the artifact that appeared last,
        else the status message (an agent asking for input says what it needs there).

        The last artifact, not all of them: agents (PenguiFlow's among them) stream progress
        as one artifact and publish the answer as the next, so joining them would repeat the
        streamed text before the answer. Every artifact's id is in `meta()`."""
        if self.message_parts is not None:
            return parts_value(self.message_parts)
        if self.artifacts:
            return parts_value(list(self.artifacts.values())[-1])
        return parts_value(self.status_parts)

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if self.state is not None:
            meta["state"] = state_name(self.state)
        if self.artifacts:
            meta["artifact_ids"] = list(self.artifacts)
        return meta
