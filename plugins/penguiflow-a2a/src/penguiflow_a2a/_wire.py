"""The A2A 1.x wire shapes, as pydantic models.

A2A 1.0 defines its messages in protobuf and maps them to JSON with the canonical protobuf JSON
mapping: lowerCamelCase field names, enums as their value names (``TASK_STATE_COMPLETED``),
``bytes`` as base64 strings, timestamps as RFC 3339 strings with a ``Z`` suffix. Fields at
their default value may be left out, and readers ignore fields they do not know. The models
here follow that mapping, so a body produced with `to_wire` is what the official SDK expects,
and a body the SDK sends validates here.

We model only what PenguiFlow's server and client use; unknown fields are ignored on input
(``extra="ignore"``) for forward compatibility, as the protocol asks of every reader.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from penguiflow.errors import ConfigurationError

__all__ = [
    "A2A_JSON_MEDIA_TYPE",
    "AGENT_CARD_PATH",
    "BINDING_HTTP_JSON",
    "BINDING_JSONRPC",
    "EXTENDED_CARD_PATH",
    "JSONRPC_METHODS",
    "PROTOCOL_VERSION",
    "STREAMING_JSONRPC_METHODS",
    "SUPPORTED_VERSIONS",
    "TERMINAL_STATES",
    "VERSION_HEADER",
    "APIKeySecurityScheme",
    "AgentCapabilities",
    "AgentCard",
    "AgentExtension",
    "AgentInterface",
    "AgentProvider",
    "AgentSkill",
    "Artifact",
    "AuthenticationInfo",
    "CancelTaskRequest",
    "DeleteTaskPushNotificationConfigRequest",
    "GetTaskPushNotificationConfigRequest",
    "GetTaskRequest",
    "HTTPAuthSecurityScheme",
    "JSONRPCError",
    "JSONRPCErrorResponse",
    "JSONRPCRequest",
    "JSONRPCSuccessResponse",
    "ListTaskPushNotificationConfigsRequest",
    "ListTaskPushNotificationConfigsResponse",
    "ListTasksRequest",
    "ListTasksResponse",
    "Message",
    "Part",
    "Role",
    "SecurityRequirement",
    "SecurityScheme",
    "SendMessageConfiguration",
    "SendMessageRequest",
    "SendMessageResponse",
    "StreamResponse",
    "StringList",
    "SubscribeToTaskRequest",
    "Task",
    "TaskArtifactUpdateEvent",
    "TaskPushNotificationConfig",
    "TaskState",
    "TaskStatus",
    "TaskStatusUpdateEvent",
    "WireModel",
    "new_id",
    "now_timestamp",
    "to_wire",
]

# -- constants -------------------------------------------------------------------------------

PROTOCOL_VERSION = "1.0"
"""The A2A protocol version this package speaks (the official SDK 1.x speaks it too)."""

SUPPORTED_VERSIONS: tuple[str, ...] = ("1.0",)
"""Versions the server accepts in the version header; a request without one is answered too
(the server then assumes `PROTOCOL_VERSION`, see `penguiflow_a2a` server docs for why)."""

VERSION_HEADER = "A2A-Version"
A2A_JSON_MEDIA_TYPE = "application/a2a+json"
AGENT_CARD_PATH = "/.well-known/agent-card.json"
EXTENDED_CARD_PATH = "/extendedAgentCard"
BINDING_JSONRPC = "JSONRPC"
BINDING_HTTP_JSON = "HTTP+JSON"

JSONRPC_METHODS: tuple[str, ...] = (
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "ListTasks",
    "CancelTask",
    "SubscribeToTask",
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
    "GetExtendedAgentCard",
)
"""The JSON-RPC binding's method names (they are the gRPC service's method names)."""

STREAMING_JSONRPC_METHODS: frozenset[str] = frozenset({"SendStreamingMessage", "SubscribeToTask"})


def new_id() -> str:
    """A fresh identifier for a task, context, message or artifact."""
    return uuid.uuid4().hex


def now_timestamp() -> str:
    """The current time in the RFC 3339 form protobuf's JSON mapping writes (``...Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- base ------------------------------------------------------------------------------------


class WireModel(BaseModel):
    """Base of every wire model: camelCase on the wire, snake_case in Python, unknown fields
    ignored (the protocol's forward-compatibility rule)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=False,
    )


def to_wire(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a wire model: camelCase names, unset optional fields left out."""
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


# -- enums -----------------------------------------------------------------------------------


class _ProtoEnum(str, Enum):
    """An enum written as its protobuf value name; also reads the numeric form, which protobuf's
    JSON mapping allows a writer to use."""

    @classmethod
    def _missing_(cls, value: object) -> _ProtoEnum | None:
        if isinstance(value, int) and not isinstance(value, bool):
            members = list(cls)
            if 0 <= value < len(members):
                return members[value]
        if isinstance(value, str):
            # A short form ("completed", "input-required") is what 0.3 wrote; accept it as
            # input so a hand-written request is not refused over spelling.
            wanted = value.replace("-", "_").upper()
            for member in cls:
                if member.value.endswith("_" + wanted) or member.value == wanted:
                    return member
        return None


class TaskState(_ProtoEnum):
    """A task's lifecycle state. Declared in protobuf order: the numeric form is the index."""

    UNSPECIFIED = "TASK_STATE_UNSPECIFIED"
    SUBMITTED = "TASK_STATE_SUBMITTED"
    WORKING = "TASK_STATE_WORKING"
    COMPLETED = "TASK_STATE_COMPLETED"
    FAILED = "TASK_STATE_FAILED"
    CANCELED = "TASK_STATE_CANCELED"
    INPUT_REQUIRED = "TASK_STATE_INPUT_REQUIRED"
    REJECTED = "TASK_STATE_REJECTED"
    AUTH_REQUIRED = "TASK_STATE_AUTH_REQUIRED"


TERMINAL_STATES: frozenset[TaskState] = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED}
)
"""States a task never leaves."""


class Role(_ProtoEnum):
    """Who wrote a message."""

    UNSPECIFIED = "ROLE_UNSPECIFIED"
    USER = "ROLE_USER"
    AGENT = "ROLE_AGENT"


# -- content ---------------------------------------------------------------------------------


class Part(WireModel):
    """One piece of content: exactly one of ``text``, ``raw`` (base64 on the wire), ``url`` or
    ``data`` (any JSON value), with optional metadata, file name and media type."""

    text: str | None = None
    raw: str | None = None
    url: str | None = None
    data: Any = None
    metadata: dict[str, Any] | None = None
    filename: str | None = None
    media_type: str | None = None

    @model_validator(mode="after")
    def _one_content(self) -> Part:
        given = [name for name in ("text", "raw", "url", "data") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ConfigurationError(
                "a part carries exactly one of text, raw, url or data; "
                f"got {', '.join(given) if given else 'none'}"
            )
        return self

    @classmethod
    def from_bytes(cls, content: bytes, *, media_type: str | None = None) -> Part:
        """A ``raw`` part holding ``content`` (encoded as base64 for the wire)."""
        return cls(raw=base64.b64encode(content).decode("ascii"), media_type=media_type)

    def raw_bytes(self) -> bytes:
        """The decoded bytes of a ``raw`` part (empty for other kinds)."""
        return base64.b64decode(self.raw) if self.raw is not None else b""


class Message(WireModel):
    """One message of a conversation between a user (client) and an agent."""

    message_id: str = Field(default_factory=new_id)
    context_id: str | None = None
    task_id: str | None = None
    role: Role = Role.USER
    parts: list[Part] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    extensions: list[str] | None = None
    reference_task_ids: list[str] | None = None


class Artifact(WireModel):
    """An output of a task."""

    artifact_id: str = Field(default_factory=new_id)
    name: str | None = None
    description: str | None = None
    parts: list[Part] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    extensions: list[str] | None = None


class TaskStatus(WireModel):
    state: TaskState
    message: Message | None = None
    timestamp: str | None = None


class Task(WireModel):
    id: str
    context_id: str
    status: TaskStatus
    artifacts: list[Artifact] = Field(default_factory=list)
    history: list[Message] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None


class TaskStatusUpdateEvent(WireModel):
    task_id: str
    context_id: str
    status: TaskStatus
    metadata: dict[str, Any] | None = None


class TaskArtifactUpdateEvent(WireModel):
    task_id: str
    context_id: str
    artifact: Artifact
    append: bool | None = None
    last_chunk: bool | None = None
    metadata: dict[str, Any] | None = None


class StreamResponse(WireModel):
    """One event of a stream: exactly one of the four kinds is set."""

    task: Task | None = None
    message: Message | None = None
    status_update: TaskStatusUpdateEvent | None = None
    artifact_update: TaskArtifactUpdateEvent | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> StreamResponse:
        given = [
            name
            for name in ("task", "message", "status_update", "artifact_update")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ConfigurationError(
                "a stream event carries exactly one of task, message, statusUpdate or "
                f"artifactUpdate; got {', '.join(given) if given else 'none'}"
            )
        return self


# -- push notifications ----------------------------------------------------------------------


class AuthenticationInfo(WireModel):
    """How the server authenticates to a push-notification receiver (``Authorization`` header
    built from ``scheme`` and ``credentials``)."""

    scheme: str
    credentials: str | None = None


class TaskPushNotificationConfig(WireModel):
    tenant: str | None = None
    id: str | None = None
    task_id: str | None = None
    url: str
    token: str | None = None
    authentication: AuthenticationInfo | None = None


class GetTaskPushNotificationConfigRequest(WireModel):
    tenant: str | None = None
    task_id: str
    id: str


class DeleteTaskPushNotificationConfigRequest(WireModel):
    tenant: str | None = None
    task_id: str
    id: str


class ListTaskPushNotificationConfigsRequest(WireModel):
    tenant: str | None = None
    task_id: str
    page_size: int | None = None
    page_token: str | None = None


class ListTaskPushNotificationConfigsResponse(WireModel):
    configs: list[TaskPushNotificationConfig] = Field(default_factory=list)
    next_page_token: str = ""


# -- requests and responses ------------------------------------------------------------------


class SendMessageConfiguration(WireModel):
    accepted_output_modes: list[str] | None = None
    task_push_notification_config: TaskPushNotificationConfig | None = None
    history_length: int | None = None
    return_immediately: bool | None = None


class SendMessageRequest(WireModel):
    tenant: str | None = None
    message: Message
    configuration: SendMessageConfiguration | None = None
    metadata: dict[str, Any] | None = None


class SendMessageResponse(WireModel):
    """The answer to ``message:send``: the task (or, for a stateless agent, a message)."""

    task: Task | None = None
    message: Message | None = None


class GetTaskRequest(WireModel):
    tenant: str | None = None
    id: str
    history_length: int | None = None


class ListTasksRequest(WireModel):
    tenant: str | None = None
    context_id: str | None = None
    status: TaskState | None = None
    page_size: int | None = None
    page_token: str | None = None
    history_length: int | None = None
    status_timestamp_after: str | None = None
    include_artifacts: bool | None = None


class ListTasksResponse(WireModel):
    tasks: list[Task] = Field(default_factory=list)
    next_page_token: str = ""
    page_size: int = 0
    total_size: int = 0


class CancelTaskRequest(WireModel):
    tenant: str | None = None
    id: str
    metadata: dict[str, Any] | None = None


class SubscribeToTaskRequest(WireModel):
    tenant: str | None = None
    id: str


# -- agent card ------------------------------------------------------------------------------


class AgentInterface(WireModel):
    """Where and how an agent is reached: a URL, a binding (``JSONRPC``, ``HTTP+JSON``) and
    the protocol version spoken there."""

    url: str
    protocol_binding: str
    tenant: str | None = None
    protocol_version: str = PROTOCOL_VERSION


class AgentProvider(WireModel):
    url: str
    organization: str


class AgentExtension(WireModel):
    uri: str
    description: str | None = None
    required: bool | None = None
    params: dict[str, Any] | None = None


class AgentCapabilities(WireModel):
    streaming: bool | None = None
    push_notifications: bool | None = None
    extensions: list[AgentExtension] | None = None
    extended_agent_card: bool | None = None


class StringList(WireModel):
    # The wire name is "list"; a Python field named so would shadow the builtin in this class.
    values: list[str] = Field(default_factory=list, alias="list")


class SecurityRequirement(WireModel):
    schemes: dict[str, StringList] = Field(default_factory=dict)


class APIKeySecurityScheme(WireModel):
    description: str | None = None
    location: str
    name: str


class HTTPAuthSecurityScheme(WireModel):
    description: str | None = None
    scheme: str
    bearer_format: str | None = None


class SecurityScheme(WireModel):
    """One way to authenticate; exactly one field is set. OAuth 2, OpenID Connect and mutual
    TLS schemes are carried as plain dicts: PenguiFlow passes them through untouched."""

    api_key_security_scheme: APIKeySecurityScheme | None = None
    http_auth_security_scheme: HTTPAuthSecurityScheme | None = None
    oauth2_security_scheme: dict[str, Any] | None = None
    open_id_connect_security_scheme: dict[str, Any] | None = None
    mtls_security_scheme: dict[str, Any] | None = None


class AgentSkill(WireModel):
    """One thing an agent can do; a client planner gets one tool per skill."""

    id: str
    name: str
    description: str
    tags: list[str] = Field(default_factory=list)
    examples: list[str] | None = None
    input_modes: list[str] | None = None
    output_modes: list[str] | None = None
    security_requirements: list[SecurityRequirement] | None = None


class AgentCard(WireModel):
    """What an agent publishes at `AGENT_CARD_PATH`: who it is, where to reach it, what it can
    do and how to authenticate."""

    name: str
    description: str
    supported_interfaces: list[AgentInterface] = Field(default_factory=list)
    provider: AgentProvider | None = None
    version: str
    documentation_url: str | None = None
    capabilities: AgentCapabilities = Field(default_factory=AgentCapabilities)
    security_schemes: dict[str, SecurityScheme] | None = None
    security_requirements: list[SecurityRequirement] | None = None
    default_input_modes: list[str] = Field(default_factory=lambda: ["text/plain"])
    default_output_modes: list[str] = Field(default_factory=lambda: ["text/plain"])
    skills: list[AgentSkill] = Field(default_factory=list)
    signatures: list[dict[str, Any]] | None = None
    icon_url: str | None = None

    def interface(self, binding: str) -> AgentInterface | None:
        """The first interface offering ``binding`` (``JSONRPC`` or ``HTTP+JSON``), if any."""
        for item in self.supported_interfaces:
            if item.protocol_binding.upper() == binding.upper():
                return item
        return None


# -- JSON-RPC envelope -----------------------------------------------------------------------


class JSONRPCRequest(BaseModel):
    """A JSON-RPC 2.0 request (the envelope's names are not camelCased)."""

    model_config = ConfigDict(extra="ignore")

    jsonrpc: str
    method: str
    id: str | int | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_not_bool(cls, value: Any) -> Any:
        # bool is an int in Python, but JSON-RPC ids are strings, numbers or null.
        if isinstance(value, bool):
            raise ConfigurationError("a JSON-RPC id is a string, an integer or null, not a boolean")
        return value


class JSONRPCError(BaseModel):
    code: int
    message: str
    data: Any = None


class JSONRPCSuccessResponse(BaseModel):
    jsonrpc: str = "2.0"
    id: str | int | None = None
    result: Any = None


class JSONRPCErrorResponse(BaseModel):
    jsonrpc: str = "2.0"
    id: str | int | None = None
    error: JSONRPCError
