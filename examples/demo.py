"""PenguiFlow demo: fan-out and join, a router, streamed chunks and a controller loop.

Runs on the embedded defaults (in-process runtime, in-memory queues): `python examples/demo.py`.
With `--state-store sqlite:///demo.db` every runtime event is also recorded durably.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from penguiflow import (
    WM,
    FinalAnswer,
    Headers,
    Message,
    Node,
    NodePolicy,
    StreamChunk,
    create,
    join_k,
    predicate_router,
)

FREE = NodePolicy(validate="none")


def header(title: str) -> None:
    print(f"\n== {title}")


STORE: Any = None  # a state store shared by every flow of the demo, when one is given


async def fan_out_and_join() -> None:
    """One question goes to three specialists; join_k collects their three answers."""
    header("fan-out to 3 workers, join_k")

    async def split(message: Message, ctx: Any) -> Message:
        return message

    def specialist(name: str) -> Node:
        async def answer(message: Message, ctx: Any) -> Message:
            await asyncio.sleep(0.01)
            return message.model_copy(update={"payload": f"{name} on {message.payload!r}"})

        return Node(answer, name=name, policy=FREE)

    source = Node(split, name="split", policy=FREE)
    workers = [specialist(name) for name in ("search", "sql", "docs")]
    join = join_k("join", len(workers))
    flow = create(source.to(*workers), *(w.to(join) for w in workers), join.to(), state_store=STORE)
    flow.run()
    try:
        await flow.emit(Message(payload="penguin diets", headers=Headers(tenant="demo")))
        joined = await asyncio.wait_for(flow.fetch(), 2)
        for line in sorted(joined.payload):
            print("  joined:", line)
    finally:
        await flow.stop()


async def router() -> None:
    """A predicate router sends each ticket to the queue that should handle it."""
    header("predicate router")

    def handler(name: str) -> Node:
        async def handle(message: Message, ctx: Any) -> Message:
            return message.model_copy(update={"payload": f"{name} handled {message.payload!r}"})

        return Node(handle, name=name, policy=FREE)

    billing, support = handler("billing"), handler("support")
    route = predicate_router(
        "triage", lambda msg: "billing" if "invoice" in msg.payload else "support"
    )
    flow = create(route.to(billing, support), billing.to(), support.to(), state_store=STORE)
    flow.run()
    try:
        for ticket in ("invoice is wrong", "app crashes on start"):
            await flow.emit(Message(payload=ticket, headers=Headers(tenant="demo")))
            print("  routed:", (await asyncio.wait_for(flow.fetch(), 2)).payload)
    finally:
        await flow.stop()


async def streaming() -> None:
    """A node streams its reply word by word; the caller prints chunks as they arrive."""
    header("streaming chunks")

    async def writer(message: Message, ctx: Any) -> None:
        words = ["penguins", "huddle", "to", "keep", "warm"]
        for index, word in enumerate(words):
            await ctx.emit_chunk(parent=message, text=word, done=index == len(words) - 1)

    flow = create(Node(writer, name="writer", policy=FREE).to(), state_store=STORE)
    flow.run()
    try:
        await flow.emit(Message(payload="tell me", headers=Headers(tenant="demo")))
        text = []
        while True:
            chunk = (await asyncio.wait_for(flow.fetch(), 2)).payload
            assert isinstance(chunk, StreamChunk)
            text.append(chunk.text)
            print(f"  chunk #{chunk.seq}: {chunk.text}")
            if chunk.done:
                break
        print("  streamed:", " ".join(text))
    finally:
        await flow.stop()


async def controller_loop() -> None:
    """A controller gathers facts hop by hop until it can answer (hop budget 8)."""
    header("controller loop")

    async def controller(message: Message, ctx: Any) -> Message:
        wm = message.payload
        assert isinstance(wm, WM)
        if len(wm.facts) >= 3:
            answer = FinalAnswer(text=f"answered after {wm.hops} hops: {', '.join(wm.facts)}")
            return message.model_copy(update={"payload": answer})
        facts = [*wm.facts, f"fact{len(wm.facts) + 1}"]
        return message.model_copy(update={"payload": wm.model_copy(update={"facts": facts})})

    ctrl = Node(controller, name="controller", policy=FREE, allow_cycle=True)
    flow = create(ctrl.to(ctrl), state_store=STORE)
    flow.run()
    try:
        question = Message(payload=WM(query="why huddle?"), headers=Headers(tenant="demo"))
        LAST_TRACE.append(question.trace_id)
        await flow.emit(question)
        final = await asyncio.wait_for(flow.fetch(), 2)
        print("  final:", final.payload.text)
    finally:
        await flow.stop()


async def main(state_store: str | None = None) -> None:
    global STORE
    if state_store:
        from penguiflow.plugins import resolve_driver

        STORE = resolve_driver("state_store", state_store)
    await fan_out_and_join()
    await router()
    await streaming()
    await controller_loop()
    if STORE is not None:
        history = await STORE.load_history(LAST_TRACE[0]) if LAST_TRACE else []
        print(f"\nrecorded {len(history)} events of the last trace in {state_store}")
        close = getattr(STORE, "close", None)
        if close is not None:
            await close()
    print("\ndemo finished")


LAST_TRACE: list[str] = []


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="PenguiFlow demo")
    parser.add_argument("--state-store", help="e.g. sqlite:///demo.db or memory://")
    asyncio.run(main(parser.parse_args().state_store))
