"""`penguiflow dev TARGET`: the playground for a planner or a flow, in the browser.

This module is the `penguiflow.commands` entry point, so it imports only click and the
kernel's `penguiflow.logging` at module level; Starlette, uvicorn and the user's module load
when the command runs."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

import click

from penguiflow.logging import log_options

__all__ = ["DEFAULT_STATE_STORE", "dev"]

#: where the sessions and the traces of the History view are kept unless --state-store says
DEFAULT_STATE_STORE = "sqlite:///.penguiflow/playground.db"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _open_state_store(url: str) -> Any:
    """The state store `url` names; a `click.UsageError` names the URL and the fix."""
    from penguiflow.errors import describe_exception
    from penguiflow.plugins import resolve_driver

    if url.startswith("sqlite:///") and url not in ("sqlite:///:memory:",):
        folder = Path(url.removeprefix("sqlite:///").split("?", 1)[0]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.UsageError(
                f"cannot open the state store {url!r}: cannot create the folder {str(folder)!r} "
                f"({exc.strerror or exc}); pass --state-store with a writable path, e.g. "
                "sqlite:///./playground.db"
            ) from None
    try:
        return resolve_driver("state_store", url)
    except Exception as exc:
        raise click.UsageError(
            f"cannot open the state store {url!r}: {describe_exception(exc)}; fix the URL or "
            "pass --state-store sqlite:///./playground.db (a file) or memory:// (nothing kept)"
        ) from None


@click.command("dev")
@click.argument("target")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback needs --token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to bind; 0 picks a free one (printed).",
)
@click.option(
    "--token",
    default=None,
    envvar="PENGUIFLOW_PLAYGROUND_TOKEN",
    help="Require this token on every API request (the printed URL carries it). Needed with "
    "a --host other than loopback.",
)
@click.option(
    "--state-store",
    default=DEFAULT_STATE_STORE,
    show_default=True,
    help="State-store URL for sessions and the trace history (sqlite://, redis://, "
    "postgresql://, memory://).",
)
@click.option(
    "--capture-content/--no-capture-content",
    default=True,
    show_default=True,
    help="Show thoughts, tool arguments and observations in the live view and the history "
    "(sets PENGUIFLOW_CAPTURE_CONTENT for this process).",
)
@log_options(default_level="warning", level_help="What the server logs to stderr.")
def dev(
    target: str,
    host: str,
    port: int,
    token: str | None,
    state_store: str,
    capture_content: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Open a playground in the browser for a planner or a flow (docs/playground.md).

    TARGET is 'module:attribute': a ReactPlanner, a flow built with penguiflow.create, or a
    function (sync or async, no arguments) returning one. Chat with it, approve its pauses,
    watch its steps and graph live, steer its tasks, replay past traces.
    """
    try:
        import penguiflow_serve
    except ImportError:  # pragma: no cover - a dependency of this package
        raise click.UsageError(
            "penguiflow dev needs penguiflow-serve: pip install penguiflow-serve"
        ) from None
    if not _is_loopback(host) and not token:
        raise click.UsageError(
            f"--host {host} lets other machines reach the playground, which runs your agent "
            "and its tools: pass --token <a secret> (or set PENGUIFLOW_PLAYGROUND_TOKEN), or "
            "keep the default --host 127.0.0.1"
        )
    if capture_content:
        from penguiflow.observability import CAPTURE_CONTENT_ENV

        os.environ.setdefault(CAPTURE_CONTENT_ENV, "1")
    penguiflow_serve.configure_logging(log_level, log_format)
    store = _open_state_store(state_store)
    sock = penguiflow_serve.bind_socket(host, port)
    url = penguiflow_serve.display_url(host, sock.getsockname()[1])

    async def serve() -> None:
        from penguiflow.errors import ConfigurationError, describe_exception
        from penguiflow.resources import aclose_resource

        from ._agent import agent_of, is_servable
        from ._app import create_playground_app

        value: Any = None
        made = False
        try:
            value, made = await penguiflow_serve.resolve_target(
                target, is_served=is_servable, example="myapp:build"
            )
            try:
                agent = agent_of(value, target)
                app = create_playground_app(agent, state_store=store, token=token)
            except ConfigurationError as exc:  # not an agent, a token too short
                raise click.UsageError(describe_exception(exc)) from None
            page = f"{url}/?token={token}" if token else f"{url}/"
            click.echo(f"penguiflow dev: serving {agent.kind} {target} at {url}")
            click.echo(f"open {page}")
            click.echo(f"state store: {_redacted(state_store)}")
            sys.stdout.flush()
            await penguiflow_serve.serve_app(app, sock, log_level=log_level)
        finally:
            if made:
                await aclose_resource(value)
            await aclose_resource(store)
        click.echo("penguiflow dev stopped", err=True)

    try:
        asyncio.run(serve())
    finally:
        sock.close()


def _redacted(url: str) -> str:
    from penguiflow.resources import redact_url

    return redact_url(url)
