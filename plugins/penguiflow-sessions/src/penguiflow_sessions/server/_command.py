"""`penguiflow serve-session TARGET`: serve a planner's sessions over HTTP, SSE and WebSocket.

This module is the `penguiflow.commands` entry point, so it imports only click at module
level; Starlette, uvicorn and the user's module load when the command runs."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import secrets
import signal
import socket
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

__all__ = ["serve_session"]

TOKENS_ENV = "PENGUIFLOW_SESSION_TOKENS"


def _load_target(target: str) -> Any:
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise click.UsageError(
            f"TARGET must read 'module:attribute' (e.g. myapp:build_planner), got {target!r}"
        )
    # Like `python -m`, let a module in the current directory be found.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise click.UsageError(
                f"cannot import {module_name!r}: run from the folder that holds it or install it"
            ) from None
        raise
    except AttributeError:
        raise click.UsageError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return value


async def _build(target: str) -> tuple[Any, bool]:
    """What TARGET names, called when it is a factory; the flag says we made it (and close it)."""
    from penguiflow_planner import ReactPlanner
    from starlette.applications import Starlette

    from ..manager import SessionManager

    value = _load_target(target)
    made = False
    if not isinstance(value, ReactPlanner | SessionManager | Starlette) and callable(value):
        value = value()
        if inspect.isawaitable(value):
            value = await value
        made = True
    if not isinstance(value, ReactPlanner | SessionManager | Starlette):
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


def _server_class() -> Any:
    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn's server without its own signal handling: uvicorn re-raises SIGTERM once
        it has stopped, which would kill the process before the planner is closed; we
        handle the signals ourselves and exit 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        def request_exit(self) -> None:
            # A second signal stops at once, without waiting for open streams.
            self.force_exit = self.should_exit
            self.should_exit = True

    return QuietServer


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket handed to uvicorn."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. Without it, on a socket handed to uvicorn, small
    # responses wait on Nagle's algorithm and the client's delayed ACK: about 40 ms a request
    # on Linux loopback (uvicorn sets it only on sockets it binds itself).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.UsageError(f"cannot bind {host}:{port}: {exc.strerror}") from None
    return sock


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
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
)
def serve_session(
    target: str, host: str, port: int, token_file: str | None, no_auth: bool, log_level: str
) -> None:
    """Serve sessions over HTTP, Server-Sent Events and WebSocket (docs/sessions-server.md).

    TARGET is 'module:attribute': a ReactPlanner, a SessionManager, an app made by
    penguiflow_sessions.server.create_app, or a function (sync or async, no arguments)
    returning one. With a planner, every session's turns run a fork of it.
    """
    try:
        import uvicorn
    except ImportError:
        raise click.UsageError(
            "serve-session needs uvicorn and starlette: pip install 'penguiflow-sessions[server]'"
        ) from None
    authenticator, generated = _authenticator(token_file, no_auth)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]

    async def serve() -> None:
        from starlette.applications import Starlette

        from penguiflow.errors import describe_exception
        from penguiflow.resources import aclose_resource

        from ..manager import SessionManager
        from ._app import create_app

        try:
            value, made = await _build(target)
        except click.UsageError:
            raise
        except Exception as exc:  # the user's module or factory failed
            where = traceback.extract_tb(exc.__traceback__)[-1]
            raise click.UsageError(
                f"building {target!r} failed: {type(exc).__name__}: {describe_exception(exc)} "
                f"(at {where.filename}:{where.lineno})"
            ) from None
        if isinstance(value, Starlette):
            app = value
            if token_file or no_auth:
                click.echo("note: TARGET is an app; it keeps its own authentication", err=True)
        elif isinstance(value, SessionManager):
            app = create_app(manager=value, authenticator=authenticator)
        else:
            app = create_app(planner=value, authenticator=authenticator)
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"penguiflow serve-session: serving http://{shown}:{bound_port}")
        if generated is not None and not isinstance(value, Starlette):
            click.echo(f"token: {generated}  (send 'Authorization: Bearer <token>')")
        sys.stdout.flush()
        config = uvicorn.Config(
            app,
            log_level=log_level.lower(),
            lifespan="on",
            # Open SSE streams would otherwise hold a shutdown for as long as clients stay.
            timeout_graceful_shutdown=3,
        )
        server = _server_class()(config)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.request_exit)
        try:
            await server.serve(sockets=[sock])
        finally:
            if made:
                await aclose_resource(value)
        click.echo("penguiflow serve-session stopped", err=True)

    asyncio.run(serve())
