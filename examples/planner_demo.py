"""ReactPlanner demo: typed tools, a parallel plan with a failing branch, a pause for a human.

    pip install ./core ./plugins/penguiflow-planner
    python examples/planner_demo.py                       # a scripted model, no network
    python examples/planner_demo.py --openai-model gpt-4o-mini    # a real model (penguiflow-openai)
    python examples/planner_demo.py --openai-model llama3.1 --base-url http://127.0.0.1:11434/v1

The scripted model replays what a model would answer, so the demo runs anywhere; with a real
model the same tools, budgets and pause work unchanged. The planner speaks PenguiFlow 3.11's
API: the model replies `{"next_node": "<tool>", "args": {...}}`, runs tools at once with
`"next_node": "parallel"` and answers with `"next_node": "final_response"`; after a pause,
`resume(token, user_input)` lets the model plan again with the human's answer in view.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from penguiflow_planner import PlannerEvent, PlannerFinish, PlannerPause, ReactPlanner
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog, tool
from penguiflow.llm import JSONLLMClient, ScriptedLLMClient


class City(BaseModel):
    city: str


class Forecast(BaseModel):
    city: str
    celsius: float
    sky: str


class Booking(BaseModel):
    city: str
    nights: int


class Confirmation(BaseModel):
    reference: str


FORECASTS = {"Lisbon": (24.0, "sunny"), "Oslo": (9.5, "rain")}


@tool(desc="Weather forecast for a city.", side_effects="read", tags=["weather"])
async def forecast(message: City, ctx: Any) -> Forecast:
    if message.city not in FORECASTS:
        raise LookupError(f"no forecast for {message.city}")
    celsius, sky = FORECASTS[message.city]
    return Forecast(city=message.city, celsius=celsius, sky=sky)


@tool(desc="Book a hotel. A human approves every booking.", side_effects="write")
async def book_hotel(message: Booking, ctx: Any) -> Confirmation:
    await ctx.pause("approval_required", {"city": message.city, "nights": message.nights})
    # The pause ends the tool: on resume the model plans again, seeing the human's answer.
    raise AssertionError("not reached: the decision comes back through resume()")


def catalog() -> list[Any]:
    registry = ModelRegistry()
    registry.register("forecast", City, Forecast)
    registry.register("book_hotel", Booking, Confirmation)
    nodes = [
        Node(forecast, name="forecast", policy=NodePolicy(validate="both", timeout_s=5)),
        Node(book_hotel, name="book_hotel", policy=NodePolicy(validate="none")),
    ]
    return build_catalog(nodes, registry)


def scripted_model() -> ScriptedLLMClient:
    def say(**action: Any) -> str:
        return json.dumps(action)

    return ScriptedLLMClient(
        [
            # A weak model's first reply: prose around broken JSON. The planner asks again.
            'Let me check {"next_node": "forecast", "args": {"city": ',
            say(
                thought="Compare three cities at once.",
                next_node="parallel",
                args={
                    "steps": [
                        {"node": "forecast", "args": {"city": c}}
                        for c in ("Lisbon", "Oslo", "Atlantis")
                    ]
                },
            ),
            say(
                thought="Lisbon is warmest; book it.",
                next_node="book_hotel",
                args={"city": "Lisbon", "nights": 2},
            ),
            say(
                thought="Approved.",
                next_node="final_response",
                args={
                    "answer": "Lisbon (24C, sunny) is booked for 2 nights. "
                    "No forecast for Atlantis."
                },
            ),
        ]
    )


def real_model(model: str, base_url: str | None) -> JSONLLMClient:
    from penguiflow_openai import OpenAIClient

    return OpenAIClient(model, base_url=base_url) if base_url else OpenAIClient(model)


async def main(llm: JSONLLMClient) -> None:
    repairs: list[PlannerEvent] = []

    def observe(event: PlannerEvent) -> None:
        if event.event_type == "planner_repair_attempt":
            repairs.append(event)

    async with ReactPlanner(
        llm_client=llm, catalog=catalog(), max_iters=8, deadline_s=120, event_callback=observe
    ) as planner:
        result = await planner.run(
            "Where is it warmest: Lisbon, Oslo or Atlantis? Book 2 nights there."
        )
        while isinstance(result, PlannerPause):
            print(f"paused: {result.reason} {result.payload} -> approving")
            result = await planner.resume(
                result.resume_token, "Approved. The booking reference is BK-1042."
            )
    assert isinstance(result, PlannerFinish)
    print(f"repair rounds: {len(repairs)}")
    for step in result.metadata["steps"]:
        action = step["action"]
        if action.get("plan"):  # a parallel step (stored in PenguiFlow's on-disk form)
            for branch in step["observation"]["branches"]:
                print(
                    f"- parallel {branch['node']}: {branch.get('observation') or branch['error']}"
                )
            continue
        shown = step["error"] or json.dumps(step["observation"])[:100]
        print(f"- {action['next_node']}: {shown}")
    text = result.payload["raw_answer"] if result.ok else result.payload
    print(f"{result.reason}: {text}")
    print(f"used: {result.metadata['usage']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--openai-model", help="use a real model through penguiflow-openai")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: OpenAI)")
    args = parser.parse_args()
    client = real_model(args.openai_model, args.base_url) if args.openai_model else scripted_model()
    asyncio.run(main(client))
