"""Sessions over the network: an ASGI app (Starlette) serving HTTP, Server-Sent Events and
WebSocket, its JSON wire format, and authentication. Needs the `server` extra
(`pip install 'penguiflow-sessions[server]'`). See docs/sessions-server.md."""

from __future__ import annotations

try:
    import penguiflow_serve  # noqa: F401  (the health routes)
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on what is installed
    from penguiflow.errors import MissingPluginError

    raise MissingPluginError(
        "penguiflow_sessions.server needs Starlette and penguiflow-serve: pip install "
        "'penguiflow-sessions[server]' "
        "(from a checkout: pip install './plugins/penguiflow-sessions[server]')"
    ) from exc

from ._app import create_app
from ._auth import (
    AnonymousAuthenticator,
    AuthenticationError,
    Authenticator,
    BearerTokenAuthenticator,
    PermissionDeniedError,
    Principal,
    parse_token_spec,
)
from ._errors import ServerError
from ._host import ServerLimits, SessionHost, ToolContextFactory
from ._wire import (
    ClientFrame,
    CreateSessionRequest,
    MessageFrame,
    MessageRequest,
    PingFrame,
    SteerFrame,
    SteerRequest,
    encode_sse,
)

__all__ = [
    "AnonymousAuthenticator",
    "AuthenticationError",
    "Authenticator",
    "BearerTokenAuthenticator",
    "ClientFrame",
    "CreateSessionRequest",
    "MessageFrame",
    "MessageRequest",
    "PermissionDeniedError",
    "PingFrame",
    "Principal",
    "ServerError",
    "ServerLimits",
    "SessionHost",
    "SteerFrame",
    "SteerRequest",
    "ToolContextFactory",
    "create_app",
    "encode_sse",
    "parse_token_spec",
]
