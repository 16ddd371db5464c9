"""`ReactPlanner(...)`: every keyword of PenguiFlow 3.11's constructor, written from its public
API (`inspect.signature` of penguiflow==3.11.2's `ReactPlanner.__init__`, probed outside this
repository).

Each keyword either has an effect a test here (or the compat module named next to it) shows,
or raises `UnsupportedFeatureError` naming the feature when given a value other than its
default. Where ours checks a value PenguiFlow accepted silently (PenguiFlow builds
`ReactPlanner(max_iters=0)` and fails later, or never), ours is stricter on purpose: the
error names the keyword at construction (docs/planner.md).
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
from penguiflow_planner import (
    PlannerEvent,
    PlannerFinish,
    PlannerPause,
    ReactPlanner,
    ToolPolicy,
)
from tools import Approval, City, Hits, Query, Receipt, Weather, catalog, refund, search, weather

from penguiflow import ModelRegistry, Node, NodePolicy
from penguiflow.errors import (
    ConfigurationError,
    InvalidTypeError,
    MissingPluginError,
    PenguiFlowError,
    UnsupportedFeatureError,
)
from penguiflow.state.in_memory import InMemoryStateStore

#: penguiflow==3.11.2's ReactPlanner.__init__ keywords, in order, with their defaults
REFERENCE_KEYWORDS: list[tuple[str, Any]] = [
    ("llm", None), ("nodes", None), ("catalog", None), ("registry", None),
    ("llm_client", None), ("max_iters", 8), ("temperature", 0.0), ("json_schema_mode", True),
    ("system_prompt_extra", None), ("token_budget", None), ("pause_enabled", True),
    ("state_store", None), ("artifact_store", None), ("observation_guardrail", None),
    ("summarizer_llm", None), ("planning_hints", None), ("repair_attempts", 3),
    ("max_consecutive_arg_failures", 3), ("arg_fill_enabled", True), ("deadline_s", None),
    ("hop_budget", None), ("time_source", None), ("event_callback", None),
    ("llm_timeout_s", 360.0), ("llm_max_retries", 3), ("use_native_reasoning", True),
    ("reasoning_effort", None), ("reasoning_display", None), ("llm_fallback", None),
    ("absolute_max_parallel", 50), ("reflection_config", None), ("reflection_llm", None),
    ("tool_policy", None), ("stream_final_response", False), ("final_response_model", None),
    ("final_response_retries", 1), ("tool_call_mode", "prompted"), ("llm_transport", None),
    ("short_term_memory", None), ("background_tasks", None), ("error_recovery", None),
    ("multi_action_sequential", False), ("multi_action_read_only_only", True),
    ("multi_action_max_tools", 2), ("auto_seq_enabled", False), ("auto_seq_execute", False),
    ("auto_seq_read_only_only", True), ("use_native_llm", False), ("guardrail_gateway", None),
    ("guardrail_conversation_history_turns", 1), ("tool_search", None),
    ("tool_examples", None), ("skills", None), ("skills_provider", None),
    ("skills_provider_factory", None), ("llm_context_hooks", None),
]  # fmt: skip


def J(next_node: str, **args: Any) -> str:
    return json.dumps({"next_node": next_node, "args": args})


ANSWER = J("final_response", answer="done")


class Client:
    """A JSON client as PenguiFlow documents it: plain dict messages in, text out."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[dict[str, Any]] = []

    async def complete(
        self,
        *,
        messages: list[dict[str, str]],
        response_format: dict[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Any = None,
    ) -> str:
        self.calls.append({"messages": messages, "response_format": response_format})
        return self.replies.pop(0)


def planner(*replies: str, **options: Any) -> tuple[ReactPlanner, Client]:
    client = Client(*replies)
    options.setdefault("catalog", catalog())
    return ReactPlanner(llm_client=client, **options), client


# -- the signature ------------------------------------------------------------------------


def test_every_penguiflow_keyword_is_accepted_with_the_same_default_in_the_same_order() -> None:
    params = list(inspect.signature(ReactPlanner.__init__).parameters.values())[1:]
    ours = [(p.name, p.default) for p in params]
    # Ours adds keywords of its own after PenguiFlow's (budgets=, join_strategy=, ...).
    assert ours[: len(REFERENCE_KEYWORDS)] == REFERENCE_KEYWORDS
    assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD  # ReactPlanner("gpt-4o")
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])


# -- features we do not have: refused, never ignored ---------------------------------------

UNSUPPORTED: list[tuple[str, Any]] = [
    ("reasoning_effort", "high"),
    ("reasoning_display", "summary"),
    ("llm_fallback", ["gpt-4o"]),
    ("tool_call_mode", "native"),
    ("llm_transport", "responses"),
    ("multi_action_sequential", True),
    ("auto_seq_enabled", True),
    ("auto_seq_execute", True),
    ("guardrail_gateway", object()),
    ("skills", object()),
    ("skills_provider", object()),
    ("skills_provider_factory", lambda: None),
]


@pytest.mark.parametrize(("name", "value"), UNSUPPORTED, ids=[n for n, _ in UNSUPPORTED])
def test_a_feature_we_lack_is_refused_by_name(name: str, value: Any) -> None:
    with pytest.raises(UnsupportedFeatureError) as caught:
        planner(**{name: value})
    assert isinstance(caught.value, PenguiFlowError)
    assert isinstance(caught.value, NotImplementedError)  # what a 3.x caller may catch
    assert f"{name}=" in str(caught.value)


@pytest.mark.parametrize(("name", "value"), UNSUPPORTED, ids=[n for n, _ in UNSUPPORTED])
def test_the_default_of_a_feature_we_lack_is_accepted(name: str, value: Any) -> None:
    default = dict(REFERENCE_KEYWORDS)[name]
    built, _ = planner(**{name: default})
    assert built.catalog


def test_background_tasks_need_penguiflow_sessions_and_disabled_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Background tasks run in penguiflow-sessions (its tests cover them working); without
    # it, enabling them says what to install. A None entry makes the import fail as a
    # missing package's does, whether or not it is installed here.
    from types import SimpleNamespace

    monkeypatch.setitem(sys.modules, "penguiflow_sessions", None)
    with pytest.raises(MissingPluginError, match="pip install penguiflow-sessions"):
        planner(background_tasks=SimpleNamespace(enabled=True))
    planner(background_tasks=SimpleNamespace(enabled=False))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("multi_action_read_only_only", False),
        ("multi_action_max_tools", 4),
        ("auto_seq_read_only_only", False),
        ("guardrail_conversation_history_turns", 3),
    ],
)
def test_a_modifier_of_a_refused_feature_is_refused_too(name: str, value: Any) -> None:
    # PenguiFlow ignores these while their feature is off; ours refuses a non-default value
    # (on purpose: no keyword is silently ignored), and takes the default.
    with pytest.raises(UnsupportedFeatureError, match=f"{name}="):
        planner(**{name: value})
    planner(**{name: dict(REFERENCE_KEYWORDS)[name]})


# -- bad values name the keyword -----------------------------------------------------------

BAD: list[Any] = [
    ("max_iters", 0),
    ("repair_attempts", -1),
    ("max_consecutive_arg_failures", 0),
    ("llm_timeout_s", 0),
    ("llm_max_retries", -1),
    ("absolute_max_parallel", 0),
    ("final_response_retries", -1),
    ("token_budget", 0),
    ("temperature", "hot"),
    ("hop_budget", -1),
    ("deadline_s", 0),
    ("final_response_model", dict),
    ("time_source", 5),
    ("reflection_config", "yes"),
    ("summarizer_llm", object()),
    ("reflection_llm", 42),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_a_bad_value_is_refused_naming_its_keyword(name: str, value: Any) -> None:
    # PenguiFlow accepts most of these at construction; ours refuses them at once (on purpose).
    with pytest.raises((ConfigurationError, InvalidTypeError)) as caught:
        planner(**{name: value})
    assert name in str(caught.value)
    assert isinstance(caught.value, (ValueError, TypeError))  # PenguiFlow's ValueError callers


def test_a_client_without_complete_is_refused_naming_llm_client() -> None:
    with pytest.raises(InvalidTypeError, match="llm_client"):
        ReactPlanner(llm_client=object(), catalog=catalog())


def test_no_model_at_all_is_a_value_error_naming_both_ways() -> None:
    with pytest.raises(ValueError, match="llm_client") as caught:
        ReactPlanner(catalog=catalog())
    assert isinstance(caught.value, ConfigurationError)
    assert "llm=" in str(caught.value)


# -- the tools: nodes + registry, or catalog ------------------------------------------------


def _nodes_and_registry() -> tuple[list[Node], ModelRegistry]:
    registry = ModelRegistry()
    registry.register("search", Query, Hits)
    registry.register("weather", City, Weather)
    registry.register("refund", Approval, Receipt)
    nodes = [
        Node(func, name=func.__name__, policy=NodePolicy(validate="none"))
        for func in (search, weather, refund)
    ]
    return nodes, registry


async def test_nodes_with_registry_build_the_same_catalog_as_build_catalog() -> None:
    nodes, registry = _nodes_and_registry()
    built, _ = planner(J("weather", city="Lisbon"), ANSWER, catalog=None, nodes=nodes,
                            registry=registry)  # fmt: skip
    assert [spec.name for spec in built.catalog] == ["search", "weather", "refund"]
    spec = built.catalog[1]
    assert spec.args_model is City and spec.out_model is Weather
    assert spec.desc == "Current weather in a city." and spec.side_effects == "read"
    result = await built.run("weather?")
    assert isinstance(result, PlannerFinish)
    assert result.metadata["steps"][0]["observation"] == {"city": "Lisbon", "celsius": 21.5}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"catalog": None, "nodes": "N"}, "registry="),
        ({"catalog": None}, "catalog="),
        ({"nodes": "N", "registry": "R"}, "either catalog= or nodes="),
        ({"catalog": ["not a spec"]}, "NodeSpec"),
    ],
)
def test_tools_given_wrongly_name_what_to_pass(options: dict[str, Any], expected: str) -> None:
    nodes, registry = _nodes_and_registry()
    values = {k: nodes if v == "N" else registry if v == "R" else v for k, v in options.items()}
    with pytest.raises(PenguiFlowError, match=expected) as caught:
        planner(**values)
    assert isinstance(caught.value, (ValueError, TypeError))  # PenguiFlow raised ValueError


def test_two_tools_with_one_name_are_refused() -> None:
    specs = catalog()
    with pytest.raises(ConfigurationError, match="share a name"):
        planner(catalog=[*specs, specs[0]])


# -- llm= strings and dicts resolve through the installed adapters ---------------------------


@pytest.fixture
def server() -> Iterator[ScriptedHTTPServer]:
    with ScriptedHTTPServer() as running:
        yield running


def _completion(text: str) -> ScriptedResponse:
    return ScriptedResponse(
        body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        }
    )


async def test_an_llm_config_dict_runs_through_penguiflow_openai(
    server: ScriptedHTTPServer,
) -> None:
    server.add(_completion(J("search", text="penguins")))
    server.add(_completion(ANSWER))
    built = ReactPlanner(
        {"model": "gpt-4o-mini", "base_url": server.url, "api_key": "sk-test"},
        catalog=catalog(),
        temperature=0.25,
    )
    try:
        result = await built.run("find penguins")
    finally:
        await built.aclose()
    assert isinstance(result, PlannerFinish) and result.payload["raw_answer"] == "done"
    first = server.requests[0].json()
    assert first["model"] == "gpt-4o-mini"
    assert first["temperature"] == 0.25  # the planner's temperature= reaches the model
    assert first["response_format"]["type"] == "json_schema"  # json_schema_mode=True
    assert server.requests[0].headers.get("authorization") == "Bearer sk-test"
    assert result.metadata["cost"]["main_llm_calls"] == 2
    assert result.metadata["cost"]["total_cost_usd"] > 0  # the adapter's list price


async def test_aclose_closes_the_client_the_planner_built_from_llm(
    server: ScriptedHTTPServer,
) -> None:
    built = ReactPlanner({"model": "gpt-4o-mini", "base_url": server.url}, catalog=catalog())
    client = built._settings.client
    try:
        async with built:
            pass
        assert client._closed
    finally:
        await client.aclose()


async def test_an_llm_string_and_the_helper_models_resolve_through_the_adapters(
    server: ScriptedHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from penguiflow_openai import OpenAIClient

    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    built = ReactPlanner(
        "openai/gpt-4o-mini",
        catalog=catalog(),
        summarizer_llm="gpt-4o-mini",
        reflection_llm={"model": "gpt-4o", "base_url": server.url},
    )
    try:
        settings = built._settings
        assert isinstance(settings.client, OpenAIClient) and settings.client.model == "gpt-4o-mini"
        assert isinstance(settings.summarizer_client, OpenAIClient)
        assert isinstance(settings.reflection_client, OpenAIClient)
        assert settings.reflection_client.model == "gpt-4o"
    finally:
        for client in (settings.client, settings.summarizer_client, settings.reflection_client):
            await client.aclose()
        await built.aclose()


def test_an_unknown_model_name_says_how_to_name_one() -> None:
    with pytest.raises(ConfigurationError) as caught:
        ReactPlanner("llama3", catalog=catalog())
    assert "llama3" in str(caught.value)


# -- keywords and their effects ------------------------------------------------------------


async def test_the_default_max_iters_is_eight_steps() -> None:
    built, client = planner(*[J("search", text=str(i)) for i in range(12)])
    result = await built.run("loop")
    assert isinstance(result, PlannerFinish) and result.reason == "no_path"
    assert result.metadata["step_count"] == 8 and len(client.calls) == 8


async def test_json_schema_mode_off_sends_no_response_format() -> None:
    # PenguiFlow: response_format=None with json_schema_mode=False.
    built, client = planner(ANSWER, json_schema_mode=False)
    await built.run("q")
    assert client.calls[0]["response_format"] is None
    on, client_on = planner(ANSWER)
    await on.run("q")
    assert client_on.calls[0]["response_format"]["type"] == "json_schema"


async def test_the_action_schema_pins_each_tools_arguments_and_the_answer_model() -> None:
    # Tighter than PenguiFlow's (next_node enum + any args): a grammar-constrained server can
    # then only write arguments the tool accepts, and the structured answer the run needs.
    built, client = planner(ANSWER, final_response_model=Weather, absolute_max_parallel=3)
    await built.run("q")
    schema = client.calls[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["next_node"]["enum"][-2:] == ["final_response", "parallel"]
    branches = {b["properties"]["next_node"]["const"]: b for b in schema["anyOf"]}
    search_args = branches["search"]["properties"]["args"]
    assert search_args["properties"]["text"]["type"] == "string"
    assert search_args["required"] == ["text"]
    finish_args = branches["final_response"]["properties"]["args"]
    assert "structured" in finish_args["required"]
    assert set(finish_args["properties"]["structured"]["properties"]) == {"city", "celsius"}
    assert branches["parallel"]["properties"]["args"]["properties"]["steps"]["maxItems"] == 3


async def test_system_prompt_extra_is_in_the_system_message() -> None:
    built, client = planner(ANSWER, system_prompt_extra="EXTRA-RULES-42")
    await built.run("q")
    messages = client.calls[0]["messages"]
    assert messages[0]["role"] == "system" and "EXTRA-RULES-42" in messages[0]["content"]
    assert "EXTRA-RULES-42" not in messages[-1]["content"]


async def test_a_given_state_store_keeps_the_pause_and_a_second_planner_resumes_it() -> None:
    store = InMemoryStateStore()
    first, _ = planner(J("refund", amount=5.0), state_store=store)
    paused = await first.run("refund 5")
    assert isinstance(paused, PlannerPause)
    assert first.state_store is store
    second, _ = planner(ANSWER, state_store=store)
    resumed = await second.resume(paused.resume_token, "approved")
    assert isinstance(resumed, PlannerFinish) and resumed.reason == "answer_complete"


async def test_event_callback_gets_penguiflow_events() -> None:
    events: list[PlannerEvent] = []
    built, _ = planner(J("search", text="x"), ANSWER, event_callback=events.append)
    await built.run("q")
    kinds = [event.event_type for event in events]
    assert kinds[0] == "step_start" and kinds[-1] == "finish"
    assert "tool_call_start" in kinds and "step_complete" in kinds
    complete = next(e for e in events if e.event_type == "step_complete")
    assert complete.node_name == "search" and complete.trajectory_step == 0  # the step it ends


async def test_tool_policy_keeps_denied_tools_out_of_the_catalog() -> None:
    built, _ = planner(tool_policy=ToolPolicy(denied_tools={"refund"}))
    assert [spec.name for spec in built.catalog] == ["search", "weather", "stall"]


async def test_absolute_max_parallel_refuses_a_wider_plan() -> None:
    steps = [{"node": "search", "args": {"text": str(i)}} for i in range(3)]
    plan = json.dumps({"next_node": "parallel", "args": {"steps": steps}})
    built, _ = planner(plan, ANSWER, absolute_max_parallel=2)
    result = await built.run("q")
    assert isinstance(result, PlannerFinish) and result.reason == "answer_complete"
    first = result.metadata["steps"][0]
    assert first["observation"] is None and "2" in first["error"]


# -- fork ----------------------------------------------------------------------------------


def test_fork_filters_the_catalog_and_intersects_the_tool_policy() -> None:
    parent, _ = planner(tool_policy=ToolPolicy(allowed_tools={"search", "weather", "refund"}))
    filtered = parent.fork(catalog_filter=lambda spec: spec.name != "search")
    assert [spec.name for spec in filtered.catalog] == ["weather", "refund"]
    narrowed = parent.fork(tool_policy=ToolPolicy(allowed_tools={"weather", "stall"}))
    # stall is outside the parent's policy: the intersection keeps only weather
    assert [spec.name for spec in narrowed.catalog] == ["weather"]
    own = parent.fork(
        tool_policy=ToolPolicy(allowed_tools={"weather", "stall"}), inherit_policy=False
    )
    assert [spec.name for spec in own.catalog] == ["weather", "stall"]
    assert [spec.name for spec in parent.catalog] == ["search", "weather", "refund"]


async def test_fork_does_not_inherit_the_event_callback_but_keeps_the_model() -> None:
    events: list[PlannerEvent] = []
    parent, client = planner(ANSWER, ANSWER, event_callback=events.append, max_iters=3)
    child = parent.fork()
    assert child.event_callback is None
    result = await child.run("q")
    assert isinstance(result, PlannerFinish) and result.payload["raw_answer"] == "done"
    assert events == [] and len(client.calls) == 1  # the parent's model answered the child
    await parent.run("q")
    assert events and events[-1].event_type == "finish"
