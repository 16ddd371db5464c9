"""A PenguiFlow 3.11 planner program that runs unchanged on PenguiFlow 4 (this project).

It uses only PenguiFlow 3.11's public planner API: a hand-written JSON LLM client, `@tool` and
`build_catalog`, a tool that pauses for approval and a resume with `tool_context`, short-term
memory (`ShortTermMemoryConfig`), a `ToolPolicy`, reflection and `final_response_model`.

    pip install ./core ./plugins/penguiflow-planner
    python examples/penguiflow_planner_program.py

The same file runs on `pip install penguiflow==3.11.2` (docs/migration.md, "The planner").
The client is a small rule-based stand-in for a model, so the program needs no network.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from penguiflow import ModelRegistry, Node
from penguiflow.catalog import build_catalog, tool
from penguiflow.planner import (
    PlannerFinish,
    PlannerPause,
    ReactPlanner,
    ReflectionConfig,
    ToolPolicy,
)
from penguiflow.planner.memory import ShortTermMemoryConfig


class FlightQuery(BaseModel):
    origin: str
    destination: str


class FlightOptions(BaseModel):
    flights: list[dict[str, Any]]


class BookingRequest(BaseModel):
    flight_id: str


class BookingResult(BaseModel):
    confirmation: str
    flight_id: str


class ResetRequest(BaseModel):
    confirm: bool


class ResetResult(BaseModel):
    done: bool


class Itinerary(BaseModel):
    """The structured answer the program asks for (`final_response_model`)."""

    confirmation: str
    flight_id: str
    destination: str


@tool(desc="Find flights between two cities.", tags=["travel", "read"], side_effects="read")
async def search_flights(args: FlightQuery, ctx: Any) -> FlightOptions:
    airline = ctx.tool_context.get("preferred_airline", "Penguin Air")
    flights = [{"flight_id": "PA-101", "airline": airline, "to": args.destination, "price": 420}]
    return FlightOptions(flights=flights)


@tool(desc="Book a flight; a human must approve first.", tags=["travel"], side_effects="write")
async def book_flight(args: BookingRequest, ctx: Any) -> BookingResult:
    if not ctx.tool_context.get("approved"):
        await ctx.pause("approval_required", {"flight_id": args.flight_id, "price": 420})
    return BookingResult(confirmation=f"CONF-{args.flight_id}", flight_id=args.flight_id)


@tool(desc="Delete every booking (administrators only).", tags=["admin"], side_effects="write")
async def reset_bookings(args: ResetRequest, ctx: Any) -> ResetResult:
    return ResetResult(done=args.confirm)


def _action(next_node: str, args: Mapping[str, Any]) -> str:
    return json.dumps({"next_node": next_node, "args": dict(args)})


class RuleBasedClient:
    """A hand-written JSON LLM client (PenguiFlow's `JSONLLMClient` protocol): it receives
    plain `{"role", "content"}` messages and returns the reply text and its cost."""

    def __init__(self) -> None:
        self.calls = 0

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Callable[[str, bool], None] | None = None,
    ) -> tuple[str, float]:
        self.calls += 1
        schema = json.dumps(response_format or {})
        if '"score"' in schema and '"passed"' in schema:  # reflection asks for a critique
            return json.dumps({"score": 0.95, "passed": True, "feedback": "Clear and complete.",
                               "issues": [], "suggestions": []}), 0.0001  # fmt: skip
        conversation = "\n".join(m["content"] for m in messages if m["role"] != "system")
        memory = "\n".join(m["content"] for m in messages[1:] if m["role"] == "system")
        if "What did I book" in conversation:
            found = "CONF-PA-101" in memory
            answer = "You booked flight PA-101 (CONF-PA-101)." if found else "I do not know."
            return _action("final_response", {"answer": answer}), 0.0001
        if "CONF-PA-101" in conversation:
            itinerary = {"confirmation": "CONF-PA-101", "flight_id": "PA-101",
                         "destination": "Lisbon"}  # fmt: skip
            answer = "Booked flight PA-101 to Lisbon, confirmation CONF-PA-101."
            return _action("final_response", {"answer": answer, "structured": itinerary}), 0.0002
        if "PA-101" in conversation:
            return _action("book_flight", {"flight_id": "PA-101"}), 0.0001
        return _action("search_flights", {"origin": "Paris", "destination": "Lisbon"}), 0.0001


def build_planner(client: RuleBasedClient) -> ReactPlanner:
    registry = ModelRegistry()
    registry.register("search_flights", FlightQuery, FlightOptions)
    registry.register("book_flight", BookingRequest, BookingResult)
    registry.register("reset_bookings", ResetRequest, ResetResult)
    nodes = [
        Node(search_flights, name="search_flights"),
        Node(book_flight, name="book_flight"),
        Node(reset_bookings, name="reset_bookings"),
    ]
    return ReactPlanner(
        llm_client=client,
        catalog=build_catalog(nodes, registry),
        tool_policy=ToolPolicy(denied_tools={"reset_bookings"}),
        reflection_config=ReflectionConfig(enabled=True, quality_threshold=0.8),
        final_response_model=Itinerary,
        short_term_memory=ShortTermMemoryConfig(strategy="truncation"),
        max_iters=6,
    )


async def main() -> dict[str, Any]:
    client = RuleBasedClient()
    planner = build_planner(client)
    session = {"tenant_id": "acme", "user_id": "ada", "session_id": "trip-42"}

    first = await planner.run(
        "Book me a flight from Paris to Lisbon.",
        llm_context={"traveller": "Ada"},
        tool_context={**session, "preferred_airline": "Penguin Air"},
    )
    assert isinstance(first, PlannerPause), first
    print(f"paused: {first.reason} {first.payload}")

    # The human approves; the tool context says so, and the run goes on.
    done = await planner.resume(
        first.resume_token, "yes, book it", tool_context={**session, "approved": True}
    )
    assert isinstance(done, PlannerFinish), done
    print(f"finished: {done.reason}: {done.payload['raw_answer']}")
    print(f"structured: {done.payload['structured']}")

    # The next turn of the same session remembers the booking.
    again = await planner.run("What did I book?", tool_context=session)
    assert isinstance(again, PlannerFinish), again
    print(f"remembered: {again.payload['raw_answer']}")
    return {
        "pause_reason": first.reason,
        "answer": done.payload["raw_answer"],
        "structured": done.payload["structured"],
        "remembered": again.payload["raw_answer"],
        "steps": done.metadata["step_count"],
        "model_calls": client.calls,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
