"""`penguiflow a2a serve TARGET`: serve a flow or a planner as an A2A agent.

This module is the `penguiflow.commands` entry point (`a2a`, a click group), so it imports
only click at module level: Starlette, uvicorn, the server and the user's module load when
`serve` runs, and `penguiflow --help` stays fast."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from penguiflow.logging import log_options

__all__ = ["a2a", "serve"]

TOKENS_ENV = "PENGUIFLOW_A2A_TOKENS"

_KINDS = "a flow (PenguiFlow), a ReactPlanner, or a Starlette app made by create_a2a_app"


def _kind(value: Any) -> str | None:
    """'flow', 'planner' or 'app' for what the server can serve; None for anything else.

    Checked by class, never by calling: the planner and Starlette are optional, so each is
    looked up only when its package is importable."""
    from penguiflow.runtime import Flow

    if isinstance(value, Flow):  # every runtime's flow, the in-process PenguiFlow included
        return "flow"
    with contextlib.suppress(ImportError):
        from starlette.applications import Starlette

        if isinstance(value, Starlette):
            return "app"
    with contextlib.suppress(ImportError):
        from penguiflow_planner import ReactPlanner

        if isinstance(value, ReactPlanner):
            return "planner"
    return None


async def _build(target: str) -> tuple[Any, str, Any, bool]:
    """(what TARGET gives, its kind, the card it gives or None, whether we made it).

    TARGET names a flow, planner or app, or a function (sync or async, no arguments) that
    returns one, or returns `(thing, agent_card)` to give the card from code."""
    from penguiflow_serve import resolve_target

    value, made = await resolve_target(
        target, is_served=lambda v: _kind(v) is not None, example="myapp.agent:build"
    )
    card: Any = None
    if isinstance(value, tuple) and len(value) == 2:
        value, card = value
    kind = _kind(value)
    if kind is None:
        raise click.UsageError(
            f"{target} gave a {type(value).__name__}; it must be (or return) {_KINDS}, "
            "optionally paired with an AgentCard: (flow, card)"
        )
    return value, kind, card, made


def _read_card(path: str | None, from_code: Any) -> Any:
    """The agent card: `--card FILE` wins over one given by code; None lets the server make
    one from the flow. Validated here, so a typo fails before the port is bound."""
    from pydantic import ValidationError

    from ._wire import AgentCard

    if path is not None:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise click.UsageError(f"cannot read the agent card {path}: {exc}") from None
        source = path
    elif from_code is None or isinstance(from_code, AgentCard):
        return from_code
    elif isinstance(from_code, Mapping):
        data, source = dict(from_code), "the card TARGET returned"
    else:
        raise click.UsageError(
            f"TARGET returned a {type(from_code).__name__} as its agent card; return an "
            "AgentCard (penguiflow_a2a) or a dict in the agent card's JSON shape"
        )
    try:
        return AgentCard.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise click.UsageError(f"{source} is not a valid A2A agent card: {problems}") from None


def _tokens(token_file: str | None, no_auth: bool) -> dict[str, str] | None:
    """Bearer tokens mapped to their tenant, or None to accept every caller.

    Read from --token-file (one 'TOKEN TENANT' per line, '#' comments) or the environment
    (entries separated by ';'); with neither and no --no-auth, the server makes a token."""
    if no_auth:
        if token_file:
            raise click.UsageError("--no-auth and --token-file contradict each other; pick one")
        return None
    if token_file:
        text, source = Path(token_file).read_text(encoding="utf-8"), token_file
        entries = text.splitlines()
    elif os.environ.get(TOKENS_ENV):
        source = TOKENS_ENV
        entries = os.environ[TOKENS_ENV].split(";")
    else:
        return {}
    tokens: dict[str, str] = {}
    for number, raw in enumerate(entries, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2:
            # Never echo the entry: it holds a secret.
            raise click.UsageError(
                f"entry {number} of {source} must read 'TOKEN TENANT' (two fields, got "
                f"{len(fields)})"
            )
        tokens[fields[0]] = fields[1]
    if not tokens:
        raise click.UsageError(f"{source} holds no tokens; add 'TOKEN TENANT' lines")
    return tokens


@click.group("a2a")
def a2a() -> None:
    """Serve flows and planners as A2A (Agent-to-Agent) agents (docs/a2a.md)."""


@a2a.command("serve")
@click.argument("target")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to bind; 0 picks a free one. The URL is printed either way.",
)
@click.option(
    "--card",
    "card_file",
    type=click.Path(exists=True, dir_okay=False),
    help="The agent card as a JSON file (A2A 1.x shape); wins over a card TARGET returns.",
)
@click.option(
    "--public-url",
    help="The URL clients reach this agent at, written into the card (default: the bound "
    "address; set it behind a proxy).",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False),
    help=f"Bearer tokens, one 'TOKEN TENANT' per line (or set {TOKENS_ENV}, entries separated "
    "by ';'). Without either, a token is generated and printed.",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="Accept every request as one anonymous tenant (only for a server nobody else reaches).",
)
@click.option(
    "--allow-private-push",
    is_flag=True,
    help="Let push-notification URLs target loopback and private networks (trusted callers).",
)
@log_options(
    default_level="warning",
    level_help="What the server logs to stderr: PenguiFlow's records, the plugins' and uvicorn's "
    "(its access lines at info and below).",
)
def serve(
    target: str,
    host: str,
    port: int,
    card_file: str | None,
    public_url: str | None,
    token_file: str | None,
    no_auth: bool,
    allow_private_push: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Serve TARGET as an A2A agent over HTTP+JSON and JSON-RPC.

    TARGET is 'module:attribute': a flow, a ReactPlanner, an app made by
    penguiflow_a2a.create_a2a_app, or a function (sync or async, no arguments) returning one,
    or returning (thing, agent_card). Stops cleanly on SIGINT or SIGTERM.
    """
    try:
        import penguiflow_serve
        import starlette  # noqa: F401  (the app is Starlette's)
    except ImportError:
        raise click.UsageError(
            "a2a serve needs penguiflow-serve, uvicorn and starlette: pip install "
            "'penguiflow-a2a[server]'"
        ) from None
    penguiflow_serve.configure_logging(log_level, log_format)
    tokens = _tokens(token_file, no_auth)
    sock = penguiflow_serve.bind_socket(host, port)
    url = penguiflow_serve.display_url(host, sock.getsockname()[1])

    async def run() -> None:
        from penguiflow.resources import aclose_resource

        from ._serve_app import build_app

        value, kind, card_from_code, made = await _build(target)
        resources: list[Any] = []
        try:
            if kind == "app":
                if card_file or token_file or no_auth or allow_private_push or public_url:
                    click.echo(
                        "note: TARGET is a ready app; it keeps its own card and security "
                        "settings (the card, token and push options are ignored)",
                        err=True,
                    )
                app, generated = value, None
            else:
                card = _read_card(card_file, card_from_code)
                app, generated, push = build_app(
                    value,
                    kind=kind,
                    name=target.rpartition(":")[2].rpartition(".")[2],
                    card=card,
                    url=public_url or url,
                    tokens=tokens,
                    allow_private_push=allow_private_push,
                )
                resources.append(push)
            click.echo(f"penguiflow a2a serve: serving {url}")
            if generated is not None:
                click.echo(f"token: {generated}  (send 'Authorization: Bearer <token>')")
            sys.stdout.flush()
            await penguiflow_serve.serve_app(app, sock, log_level=log_level)
        finally:
            # The server has stopped: no task produces updates any more.
            for resource in resources:
                await aclose_resource(resource)
            if made:
                await aclose_resource(value)
        click.echo("penguiflow a2a serve stopped", err=True)

    try:
        asyncio.run(run())
    finally:
        sock.close()
