"""`penguiflow serve-session TARGET`: serve a planner's sessions over HTTP, SSE and WebSocket.

This module is the `penguiflow.commands` entry point, so it imports only click at module
level; Starlette, uvicorn and the user's module load when the command runs."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from penguiflow.logging import log_options

__all__ = ["serve_session"]

TOKENS_ENV = "PENGUIFLOW_SESSION_TOKENS"


async def _build(target: str) -> tuple[Any, bool]:
    """What TARGET names, called when it is a factory; the flag says we made it (and close it)."""
    from penguiflow_planner import ReactPlanner
    from penguiflow_serve import resolve_target
    from starlette.applications import Starlette

    from ..manager import SessionManager

    served = (ReactPlanner, SessionManager, Starlette)
    value, made = await resolve_target(
        target, is_served=lambda v: isinstance(v, served), example="myapp:build_planner"
    )
    if not isinstance(value, served):
        raise click.UsageError(
            f"{target} gave a {type(value).__name__}; it must be (or return) a ReactPlanner, a "
            "SessionManager, or a Starlette app from penguiflow_sessions.server.create_app"
        )
    return value, made


def _authenticator(token_file: str | None, no_auth: bool) -> tuple[Any, str | None]:
    """The authenticator, and the token to print when we generated one."""
    from ._auth import (
        AnonymousAuthenticator,
        BearerTokenAuthenticator,
        Principal,
        parse_token_spec,
    )

    if no_auth:
        if token_file:
            raise click.UsageError("--no-auth and --token-file contradict each other; pick one")
        return AnonymousAuthenticator(), None
    if token_file:
        return BearerTokenAuthenticator(parse_token_spec(Path(token_file).read_text())), None
    if os.environ.get(TOKENS_ENV):
        return BearerTokenAuthenticator(parse_token_spec(os.environ[TOKENS_ENV])), None
    # Secure by default: a fresh token for this run, printed once for the local user.
    token = secrets.token_urlsafe(24)
    return BearerTokenAuthenticator({token: Principal("local", "local")}), token


@click.command("serve-session")
@click.argument("target")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to bind; 0 picks a free one (printed).",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False),
    help=f"Bearer tokens, one 'TOKEN TENANT/USER' per line (or set {TOKENS_ENV}, entries "
    "separated by ';'). Without either, a token is generated and printed.",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="Accept every request as one anonymous user (only for a server nobody else reaches).",
)
@log_options(
    default_level="warning",
    level_help="What the server logs to stderr: PenguiFlow's records, the plugins' and uvicorn's "
    "(its access lines at info and below).",
)
def serve_session(
    target: str,
    host: str,
    port: int,
    token_file: str | None,
    no_auth: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Serve sessions over HTTP, Server-Sent Events and WebSocket (docs/sessions-server.md).

    TARGET is 'module:attribute': a ReactPlanner, a SessionManager, an app made by
    penguiflow_sessions.server.create_app, or a function (sync or async, no arguments)
    returning one. With a planner, every session's turns run a fork of it.
    """
    try:
        import penguiflow_serve
        import starlette  # noqa: F401  (the app is Starlette's)
    except ImportError:
        raise click.UsageError(
            "serve-session needs penguiflow-serve, uvicorn and starlette: pip install "
            "'penguiflow-sessions[server]'"
        ) from None
    penguiflow_serve.configure_logging(log_level, log_format)
    authenticator, generated = _authenticator(token_file, no_auth)
    sock = penguiflow_serve.bind_socket(host, port)
    url = penguiflow_serve.display_url(host, sock.getsockname()[1])

    async def serve() -> None:
        from starlette.applications import Starlette

        from penguiflow.resources import aclose_resource

        from ..manager import SessionManager
        from ._app import create_app

        value, made = await _build(target)
        if isinstance(value, Starlette):
            app = value
            if token_file or no_auth:
                click.echo("note: TARGET is an app; it keeps its own authentication", err=True)
        elif isinstance(value, SessionManager):
            app = create_app(manager=value, authenticator=authenticator)
        else:
            app = create_app(planner=value, authenticator=authenticator)
        click.echo(f"penguiflow serve-session: serving {url}")
        if generated is not None and not isinstance(value, Starlette):
            click.echo(f"token: {generated}  (send 'Authorization: Bearer <token>')")
        sys.stdout.flush()
        try:
            await penguiflow_serve.serve_app(app, sock, log_level=log_level)
        finally:
            if made:
                await aclose_resource(value)
        click.echo("penguiflow serve-session stopped", err=True)

    try:
        asyncio.run(serve())
    finally:
        sock.close()
