"""Live: a real small model behind llama.cpp's grammar-constrained OpenAI-compatible server.

With the action schema (`json_schema_mode`), every reply of the model is a valid action:
the server turns the schema into a grammar, so even a 135M-parameter model cannot answer
with prose, an unknown tool or a half-finished object. Without it, the same conversations
mostly end in replies the planner cannot read. The numbers of both are recorded (`-rP` shows
them; the junit report keeps them as properties).

The server is started by `bash scripts/services/llamacpp.sh run -- pytest ...`, which sets
`PENGUIFLOW_LLAMACPP_URL`; `tox -e planner-live` does that. Without the variable these tests
skip, except when that env asked for them in CI (`PENGUIFLOW_PLANNER_LIVE=1` with `CI`):
there a missing server is a failure.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from penguiflow_planner._action_schema import action_response_format
from penguiflow_planner._llm_calls import call_client, resolve_llm
from penguiflow_planner._parsing import ActionError, parse_action
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog, tool
from penguiflow.catalog import NodeSpec

pytestmark = pytest.mark.live

#: Caps that let a grammar close every reply well within MAX_TOKENS (a small model at
#: temperature 0 may otherwise repeat itself inside a string until the token limit).
MAX_STRING = 120
MAX_PARALLEL = 2
MAX_TOKENS = 512


class SearchArgs(BaseModel):
    query: str


class Found(BaseModel):
    titles: list[str]


class CityArgs(BaseModel):
    city: str


class Weather(BaseModel):
    summary: str


@tool(desc="Search the documentation; returns the titles of matching pages.")
async def search(args: SearchArgs, ctx: Any) -> Found:
    return Found(titles=["Installation guide", "Quickstart"])


@tool(desc="The current weather in a city.")
async def get_weather(args: CityArgs, ctx: Any) -> Weather:
    return Weather(summary="sunny, 21 C")


def catalog() -> list[NodeSpec]:
    registry = ModelRegistry()
    registry.register("search", SearchArgs, Found)
    registry.register("get_weather", CityArgs, Weather)
    return build_catalog(
        [Node(search, name="search"), Node(get_weather, name="get_weather")], registry
    )


SPECS = {spec.name: spec for spec in catalog()}
SYSTEM = (
    "You are a planner that uses tools. Reply with one JSON object and nothing else: "
    '{"thought": "...", "next_node": "<tool name or final_response>", "args": {...}}.\n'
    "Tools:\n"
    "- search(query: string): search the documentation\n"
    "- get_weather(city: string): the current weather in a city\n"
    'When you know the answer, reply {"next_node": "final_response", '
    '"args": {"answer": "..."}}.'
)
#: A fixed conversation at each stage a planner step meets: a fresh question, a tool's
#: observation to answer from, a question needing two tools, one needing none.
CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "What is the weather in Paris?"}],
    [{"role": "user", "content": "Find the docs about installing penguiflow."}],
    [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": '{"next_node": "get_weather", "args": {"city": "Paris"}}'},
        {"role": "user", "content": 'Observation: {"summary": "sunny, 21 C"}'},
    ],
    [
        {"role": "user", "content": "Find the docs about installing penguiflow."},
        {
            "role": "assistant",
            "content": '{"next_node": "search", "args": {"query": "install penguiflow"}}',
        },
        {"role": "user", "content": 'Observation: {"titles": ["Installation guide"]}'},
    ],
    [{"role": "user", "content": "Say hello."}],
    [{"role": "user", "content": "Is it raining in Tokyo, and what do the docs say on retries?"}],
]


def _server_url() -> str:
    url = os.environ.get("PENGUIFLOW_LLAMACPP_URL", "").strip()
    if url:
        return url
    reason = (
        "no llama.cpp server: run `tox -e planner-live`, or `bash scripts/services/llamacpp.sh "
        "run -- pytest plugins/penguiflow-planner/tests/test_live_grammar.py` "
        "(it sets PENGUIFLOW_LLAMACPP_URL)"
    )
    if (
        os.environ.get("CI", "").lower() in ("1", "true", "yes")
        and os.environ.get("PENGUIFLOW_PLANNER_LIVE") == "1"
    ):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    # Through `resolve_llm`, as `ReactPlanner(llm={...})` builds it: the openai driver on an
    # OpenAI-compatible base_url. Temperature 0 and a seed keep the replies reproducible.
    built = resolve_llm(
        {"model": "local", "base_url": _server_url(), "max_tokens": MAX_TOKENS, "seed": 7},
        temperature=0.0,
        timeout_s=300,
    )
    try:
        yield built
    finally:
        await built.aclose()


def schema(**options: Any) -> dict[str, Any]:
    return action_response_format(
        list(SPECS),
        tool_schemas={name: spec.args_schema for name, spec in SPECS.items()},
        max_string_length=MAX_STRING,
        max_parallel=MAX_PARALLEL,
        **options,
    )


async def failures(client: Any, response_format: dict[str, Any] | None) -> list[str]:
    """One reply per conversation; what made each unreadable one fail."""
    found = []
    for conversation in CONVERSATIONS:
        messages = [{"role": "system", "content": SYSTEM}, *conversation]
        reply = await call_client(client, messages, response_format=response_format)
        try:
            parse_action(reply.text, SPECS)
        except ActionError as exc:
            found.append(f"{exc.errors[0]} <- {reply.text[:80]!r}")
    return found


async def test_with_the_action_schema_every_step_parses_without_repair(
    client: Any, record_property: Any
) -> None:
    constrained = await failures(client, schema())
    free = await failures(client, None)
    steps = len(CONVERSATIONS)
    record_property("steps", steps)
    record_property("failures_with_schema", len(constrained))
    record_property("failures_without_schema", len(free))
    print(
        f"{steps} steps: {len(constrained)} unreadable with the action schema, {len(free)} without"
    )
    for failure in free:
        print("  without the schema:", failure)
    assert constrained == []


@pytest.mark.parametrize(
    "options",
    [
        {"answer_schema": Weather.model_json_schema()},
        {"join_strategies": ["append", "concat"]},
        {"branches": False},
    ],
    ids=["structured-answer", "join-strategies", "flat"],
)
async def test_the_server_turns_each_form_of_the_schema_into_a_grammar(
    client: Any, options: dict[str, Any]
) -> None:
    # The server refuses (HTTP 400) a schema it cannot convert; each form must be accepted,
    # and its reply must be JSON that the form allows.
    messages = [{"role": "system", "content": SYSTEM}, *CONVERSATIONS[2]]
    reply = await call_client(client, messages, response_format=schema(**options))
    data = json.loads(reply.text)
    assert data["next_node"] in {*SPECS, "final_response", "parallel"}
    if "answer_schema" in options and data["next_node"] == "final_response":
        Weather.model_validate(data["args"]["structured"])


QUESTIONS = ["What is the weather in Paris?", "Find the docs about installing penguiflow."]


async def planner_runs(json_schema_mode: bool) -> tuple[int, int, list[str]]:
    """Run the planner on each question: (steps taken, repair rounds, finish reasons)."""
    # Written against PenguiFlow 3.11's API, as a user moving over would write it, with our
    # OpenAI-compatible adapter as the llm_client.
    from penguiflow_openai import OpenAIClient

    from penguiflow.planner import PlannerFinish, ReactPlanner

    steps = repairs = 0
    reasons: list[str] = []
    for question in QUESTIONS:
        events: list[Any] = []
        llm_client = OpenAIClient(
            "local", base_url=_server_url(), temperature=0.0, seed=7, max_tokens=MAX_TOKENS
        )
        planner = ReactPlanner(
            llm_client=llm_client,
            catalog=catalog(),
            json_schema_mode=json_schema_mode,
            max_iters=3,
            # A small model's plans stay small: the schema then caps a plan's steps, where
            # the default (50) lets the model repeat a step until its token limit.
            absolute_max_parallel=MAX_PARALLEL,
            llm_timeout_s=300,
            event_callback=events.append,
        )
        try:
            result = await planner.run(question)
        finally:
            await llm_client.aclose()
        assert isinstance(result, PlannerFinish)
        steps += result.metadata["step_count"]
        repairs += sum(1 for e in events if e.event_type == "planner_repair_attempt")
        reasons.append(result.metadata["finish_reason"])
    return steps, repairs, reasons


async def test_react_planner_with_json_schema_mode_takes_every_step_without_repair(
    record_property: Any,
) -> None:
    steps, repairs, reasons = await planner_runs(json_schema_mode=True)
    free_steps, free_repairs, free_reasons = await planner_runs(json_schema_mode=False)
    for name, value in {
        "planner_steps_with_schema": steps,
        "planner_repairs_with_schema": repairs,
        "planner_steps_without_schema": free_steps,
        "planner_repairs_without_schema": free_repairs,
    }.items():
        record_property(name, value)
    print(
        f"with the action schema: {steps} steps, {repairs} repair rounds, endings {reasons}; "
        f"without: {free_steps} steps, {free_repairs} repair rounds, endings {free_reasons}"
    )
    assert repairs == 0 and steps > 0
    assert "repair_failed" not in reasons
