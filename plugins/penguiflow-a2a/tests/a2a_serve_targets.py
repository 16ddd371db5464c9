"""Targets for `penguiflow a2a serve` tests (imported by name, in-process and in a subprocess)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from penguiflow import Message, Node, NodePolicy, PenguiFlow, create


async def _shout(message: Message, ctx: Any) -> Message:
    return message.model_copy(update={"payload": str(message.payload).upper()})


def build_flow() -> PenguiFlow:
    return create(Node(_shout, name="shout", policy=NodePolicy(validate="none")).to())


async def build_flow_async() -> PenguiFlow:
    return build_flow()


def build_flow_with_card() -> tuple[PenguiFlow, dict[str, Any]]:
    card = {"name": "Shouter", "description": "Upper-cases text.", "version": "1.0.0"}
    return build_flow(), card


def build_flow_with_bad_card() -> tuple[PenguiFlow, dict[str, Any]]:
    return build_flow(), {"name": "no description or version"}


def build_flow_with_odd_card() -> tuple[PenguiFlow, int]:
    return build_flow(), 42


async def _ping(request: Request) -> JSONResponse:
    return JSONResponse({"pong": True})


def build_app() -> Starlette:
    return Starlette(routes=[Route("/ping", _ping)])


def build_nothing() -> int:
    return 7


def build_broken() -> PenguiFlow:
    raise RuntimeError("no database configured")


NOT_CALLABLE = "just a string"
