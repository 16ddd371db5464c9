"""What PenguiFlow's serving commands share: the target, the socket, the server.

A library for plugins that add a command serving an ASGI app (`penguiflow a2a serve`,
`penguiflow serve-session`). Import it when the command runs, not at module level of the
command's entry point: it imports click at once, uvicorn only when serving."""

from __future__ import annotations

from ._server import serve_app
from ._socket import bind_socket, display_url
from ._target import load_target, resolve_target

__all__ = ["bind_socket", "display_url", "load_target", "resolve_target", "serve_app"]
