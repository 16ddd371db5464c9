"""Node functions of the runtime conformance suite.

They live at module level (importable by name) and keep their bookkeeping in module globals, so
a runtime under test must run nodes in the test's own process (a distributed runtime: with its
workers embedded in the client). Each test resets what it uses with `reset()`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from ..types import WM, FinalAnswer, Message

__all__ = [
    "Hostile",
    "answer",
    "attempts",
    "blocking",
    "cancelled",
    "double",
    "fail_always",
    "fail_until",
    "hostile",
    "invoked",
    "loop_forever",
    "reset",
    "slow",
    "streamer",
    "tag",
]

#: how many times each node was invoked, by message payload
attempts: defaultdict[str, int] = defaultdict(int)
#: payloads a node started working on
invoked: list[Any] = []
#: payloads whose invocation was cancelled
cancelled: list[Any] = []
#: released by a test to let `blocking` finish
gates: dict[str, asyncio.Event] = {}
#: `fail_until` fails this many times per payload before it succeeds
failures_before_success = {"count": 2}


def reset() -> None:
    attempts.clear()
    invoked.clear()
    cancelled.clear()
    gates.clear()
    failures_before_success["count"] = 2


def _update(message: Message, payload: Any) -> Message:
    return message.model_copy(update={"payload": payload})


async def double(message: Message, ctx: Any) -> Message:
    return _update(message, message.payload * 2)


async def answer(message: Message, ctx: Any) -> Message:
    return _update(message, FinalAnswer(text=f"got {message.payload}"))


async def tag(message: Message, ctx: Any) -> Message:
    """Appends this node's name to a list payload (a path through the graph)."""
    return _update(message, [*message.payload, str(ctx.owner.name)])


async def fail_until(message: Message, ctx: Any) -> Message:
    key = f"fail_until:{message.payload}"
    attempts[key] += 1
    if attempts[key] <= failures_before_success["count"]:
        raise ValueError(f"attempt {attempts[key]} of {message.payload} fails")
    return _update(message, f"{message.payload} after {attempts[key]} attempts")


async def fail_always(message: Message, ctx: Any) -> Message:
    attempts[f"fail_always:{message.payload}"] += 1
    raise ValueError(f"cannot handle {message.payload}")


class Hostile(Exception):
    """An exception that cannot be printed."""

    def __str__(self) -> str:
        raise RuntimeError("this exception refuses to be printed")

    def __repr__(self) -> str:
        raise RuntimeError("and to be represented")


async def hostile(message: Message, ctx: Any) -> Message:
    if message.payload == "hostile":
        raise Hostile()
    return _update(message, f"fine {message.payload}")


async def slow(message: Message, ctx: Any) -> Message:
    invoked.append(message.payload)
    await asyncio.Event().wait()  # never set: only a timeout or a cancel ends it
    return message


async def blocking(message: Message, ctx: Any) -> Message:
    """Waits for `gates[payload]` when the test made one; records a cancellation."""
    invoked.append(message.payload)
    gate = gates.get(str(message.payload))
    try:
        if gate is not None:
            await gate.wait()
    except asyncio.CancelledError:
        cancelled.append(message.payload)
        raise
    return _update(message, f"done {message.payload}")


async def loop_forever(message: Message, ctx: Any) -> Message:
    """A controller that never finishes by itself: only its budgets stop it."""
    wm = message.payload
    assert isinstance(wm, WM)
    return _update(message, wm.model_copy(update={"tokens_used": wm.tokens_used + 10}))


async def streamer(message: Message, ctx: Any) -> Message:
    for index in range(3):
        await ctx.emit_chunk(parent=message, text=f"part{index}", done=index == 2)
    return _update(message, FinalAnswer(text="streamed"))
