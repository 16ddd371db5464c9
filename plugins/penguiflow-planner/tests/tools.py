"""Tools the planner tests give the model."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog, tool


class Query(BaseModel):
    text: str


class Hits(BaseModel):
    titles: list[str]


class City(BaseModel):
    city: str


class Weather(BaseModel):
    city: str
    celsius: float


class Approval(BaseModel):
    amount: float


class Receipt(BaseModel):
    status: str


@tool(desc="Search documents by text.", side_effects="read")
async def search(message: Query, ctx: Any) -> Hits:
    return Hits(titles=[f"doc about {message.text}"])


@tool(desc="Current weather in a city.", side_effects="read")
async def weather(message: City, ctx: Any) -> Weather:
    if message.city == "Atlantis":
        raise ValueError("no weather station in Atlantis")
    return Weather(city=message.city, celsius=21.5)


@tool(desc="Refund money; needs a human's approval.", side_effects="write")
async def refund(message: Approval, ctx: Any) -> Receipt:
    await ctx.pause("approval_required", {"amount": message.amount})
    return Receipt(status="unreachable")


@tool(desc="A tool that never answers in time.")
async def stall(message: Query, ctx: Any) -> Hits:
    await asyncio.sleep(5)
    return Hits(titles=[])


def catalog() -> list[Any]:
    registry = ModelRegistry()
    nodes = []
    for func, models in (
        (search, (Query, Hits)),
        (weather, (City, Weather)),
        (refund, (Approval, Receipt)),
        (stall, (Query, Hits)),
    ):
        name = func.__name__
        policy = NodePolicy(validate="none", timeout_s=0.2 if name == "stall" else None)
        nodes.append(Node(func, name=name, policy=policy))
        registry.register(name, *models)
    return build_catalog(nodes, registry)
