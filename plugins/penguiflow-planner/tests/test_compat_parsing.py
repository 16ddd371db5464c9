"""Reading replies in both action dialects (PenguiFlow 3.11's and ours) into PenguiFlow's
`PlannerAction` shape, and the action schema a grammar-constrained server follows."""

from __future__ import annotations

import json
from typing import Any

import pytest
from penguiflow_planner._action_schema import action_response_format, inline_refs
from penguiflow_planner._actions import PlannerAction
from penguiflow_planner._parsing import ActionError, json_objects, parse_action
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node, build_catalog, tool
from penguiflow.catalog import NodeSpec
from penguiflow.errors import ConfigurationError
from penguiflow.llm import validate_reply


class Query(BaseModel):
    text: str


class Hits(BaseModel):
    titles: list[str]


class Pair(BaseModel):
    left: str
    right: str


@tool(desc="Search documents by text.")
async def search(message: Query, ctx: Any) -> Hits:
    return Hits(titles=[message.text])


@tool(desc="Combine two results.")
async def merge(message: Pair, ctx: Any) -> Hits:
    return Hits(titles=[message.left, message.right])


@tool(desc="A tool whose name is also a finish alias.")
async def answer(message: Query, ctx: Any) -> Hits:
    return Hits(titles=[])


def specs() -> dict[str, NodeSpec]:
    registry = ModelRegistry()
    registry.register("search", Query, Hits)
    registry.register("merge", Pair, Hits)
    registry.register("answer", Query, Hits)
    nodes = [Node(search, name="search"), Node(merge, name="merge"), Node(answer, name="answer")]
    return {spec.name: spec for spec in build_catalog(nodes, registry)}


CATALOG = specs()


def parse(reply: str | dict[str, Any], **options: Any) -> PlannerAction:
    text = reply if isinstance(reply, str) else json.dumps(reply)
    return parse_action(text, CATALOG, **options)


def errors_of(reply: str | dict[str, Any], **options: Any) -> list[str]:
    with pytest.raises(ActionError) as caught:
        parse(reply, **options)
    return caught.value.errors


# -- PenguiFlow's dialect ---------------------------------------------------------------------


def test_a_tool_call_and_a_final_response_keep_both_answer_keys() -> None:
    action = parse({"thought": "look", "next_node": "search", "args": {"text": "penguins"}})
    assert (action.next_node, action.args, action.thought) == (
        "search",
        {"text": "penguins"},
        "look",
    )
    assert not action.is_finish and not action.is_parallel
    final = parse({"next_node": "final_response", "args": {"answer": "42"}})
    assert final.is_finish and final.args == {"answer": "42", "raw_answer": "42"}
    legacy = parse({"next_node": "final_response", "args": {"raw_answer": "old key"}})
    assert legacy.args == {"raw_answer": "old key", "answer": "old key"}
    extra = parse({"next_node": "final_response", "args": {"answer": "x", "confidence": 0.9}})
    assert extra.args == {"answer": "x", "confidence": 0.9, "raw_answer": "x"}


def test_finish_args_given_as_text_or_a_list_of_text() -> None:
    assert parse({"next_node": "final_response", "args": "  It is 42.  "}).args == {
        "answer": "It is 42.",
        "raw_answer": "It is 42.",
    }
    pieces = parse({"next_node": "final_response", "args": ["line one", "", "line two"]})
    assert pieces.args["answer"] == "line one\nline two"


def test_a_parallel_plan_with_a_join_tool_or_a_strategy_name() -> None:
    plan = {
        "next_node": "parallel",
        "args": {
            "steps": [
                {"node": "search", "args": {"text": "a"}},
                {"tool": "search", "arguments": {"text": "b"}},  # aliases in a step
            ],
            "join": {"node": "merge", "inject": {"left": "$results", "right": "$branches"}},
        },
    }
    action = parse(plan)
    assert action.is_parallel
    assert action.args["steps"] == [
        {"node": "search", "args": {"text": "a"}},
        {"node": "search", "args": {"text": "b"}},
    ]
    # A bare inject mapping is wrapped the way PenguiFlow's JoinInjection holds it.
    assert action.args["join"] == {
        "node": "merge",
        "args": {},
        "inject": {"mapping": {"left": "$results", "right": "$branches"}},
    }
    assert [step.node for step in action.parallel_steps()] == ["search", "search"]
    named = parse(
        {"next_node": "parallel", "args": {"steps": plan["args"]["steps"], "join": "append"}}
    )
    assert named.args["join"] == "append" and named.parallel_join() == "append"
    no_node = parse(
        {
            "next_node": "parallel",
            "args": {"steps": plan["args"]["steps"][:1], "join": {"node": None}},
        }
    )
    assert no_node.args["join"] is None  # a join tool without a node is no join


def test_penguiflows_legacy_shapes() -> None:
    # thought / plan / join at the top level, next_node null for a finish
    legacy_plan = parse(
        {
            "thought": "fan out",
            "next_node": None,
            "args": None,
            "plan": [{"node": "search", "args": {"text": "a"}}],
            "join": {"node": "merge", "args": {}, "inject": None},
        }
    )
    assert legacy_plan.is_parallel and legacy_plan.thought == "fan out"
    assert legacy_plan.args["join"]["node"] == "merge"
    finish = parse({"thought": "done", "next_node": None, "args": {"raw_answer": "legacy"}})
    assert finish.is_finish and finish.args == {"raw_answer": "legacy", "answer": "legacy"}
    # the action nested under "action"
    nested = parse({"action": {"next_node": "search", "args": {"text": "n"}}, "thought": "t"})
    assert (nested.next_node, nested.args, nested.thought) == ("search", {"text": "n"}, "t")
    # a bare answer, and args holding an answer with no next_node at all
    assert parse({"answer": "bare"}).args == {"answer": "bare", "raw_answer": "bare"}
    assert parse({"raw_answer": "bare too", "sources": []}).args == {
        "raw_answer": "bare too",
        "sources": [],
        "answer": "bare too",
    }
    assert parse({"args": {"answer": "only args"}}).is_finish
    # PenguiFlow also reads "plan" as the parallel opcode
    steps = [{"node": "search", "args": {"text": "p"}}]
    assert parse({"next_node": "plan", "args": {"steps": steps}}).is_parallel


# -- our dialect ------------------------------------------------------------------------------


def test_our_dialect_is_normalised_to_penguiflows_opcodes() -> None:
    finish = parse({"thought": "done", "next_node": None, "args": {"answer": "ours"}})
    assert finish.next_node == "final_response"
    assert finish.args == {"answer": "ours", "raw_answer": "ours"}
    plan = parse(
        {"plan": [{"node": "search", "args": {"text": "a"}}], "join": "append"},
        join_strategies=["append", "concat"],
    )
    assert plan.next_node == "parallel"
    assert plan.args == {"steps": [{"node": "search", "args": {"text": "a"}}], "join": "append"}
    for alias in ("final", "finish", "FINAL_ANSWER", "null", ""):
        assert parse({"next_node": alias, "args": {"answer": "a"}}).is_finish, alias
    aliased = parse({"action": "search", "arguments": {"text": "x"}})
    assert (aliased.next_node, aliased.args) == ("search", {"text": "x"})


def test_a_tool_named_like_a_finish_alias_is_still_the_tool() -> None:
    assert parse({"next_node": "answer", "args": {"text": "x"}}).next_node == "answer"
    # without the catalog, the alias wins (the parser cannot know the tool)
    assert parse_action('{"next_node": "answer", "args": {"answer": "y"}}').is_finish


def test_a_number_answer_is_read_as_its_text() -> None:
    assert parse({"next_node": None, "args": {"answer": 42}}).args["answer"] == "42"
    assert parse({"next_node": "final_response", "args": 3.5}).args["answer"] == "3.5"


def test_a_structured_answer_goes_in_args_structured() -> None:
    class Result(BaseModel):
        total: int

    # PenguiFlow's: the text in answer, the data in structured
    action = parse(
        {
            "next_node": "final_response",
            "args": {"answer": "The total is 3", "structured": {"total": "3"}},
        },
        answer_model=Result,
    )
    assert action.args["structured"] == {"total": 3} and action.args["answer"] == "The total is 3"
    # ours: the object as the answer; it moves to structured and the answer becomes its text
    ours = parse({"next_node": None, "args": {"answer": {"total": 4}}}, answer_model=Result)
    assert ours.args["structured"] == {"total": 4} and json.loads(ours.args["answer"]) == {
        "total": 4
    }
    as_text = parse({"next_node": None, "args": {"answer": '{"total": 5}'}}, answer_model=Result)
    assert as_text.args["structured"] == {"total": 5}
    assert errors_of(
        {"next_node": None, "args": {"answer": {"total": "many"}}}, answer_model=Result
    )[0].startswith("args.structured.total: Input should be a valid integer")
    assert (
        "args.structured"
        in errors_of({"next_node": None, "args": {"answer": "no data"}}, answer_model=Result)[0]
    )


# -- what the model must fix ------------------------------------------------------------------


def test_errors_the_model_can_act_on() -> None:
    assert errors_of({"next_node": "final_response", "args": {}}) == [
        "a final answer needs args.answer (or name a tool in next_node)"
    ]
    assert errors_of({"next_node": "final_response", "args": {"answer": "  "}}) == [
        "args.answer is empty; write the answer (or name a tool in next_node)"
    ]
    assert errors_of({"next_node": None, "args": {"answer": {"a": 1}}}) == [
        "args.answer must be text, got dict; write the answer as a string"
    ]
    assert errors_of({"next_node": "fly", "args": {}}) == [
        "next_node: unknown tool 'fly'; the tools are: answer, merge, search"
    ]
    assert errors_of({"next_node": "search", "args": {"text": "<your query>"}}) == [
        "args.text is a placeholder ('<your query>'); put the real value"
    ]
    assert errors_of({"next_node": "search", "args": {}}) == [
        "args.text: Field required (tool search)"
    ]
    assert errors_of({"next_node": "search", "args": "penguins"}) == [
        "args must be a JSON object of search's arguments, got a string"
    ]
    assert errors_of({"thought": "hmm"}) == [
        'next_node is missing; reply with {"next_node": "<tool or final_response>", "args": {...}}'
    ]
    assert errors_of({"next_node": 7})[0].startswith("next_node must be text")
    assert errors_of({"next_node": "task.subagent", "args": {"query": "q"}})[0].startswith(
        "next_node 'task.subagent': background tasks are not available"
    )
    assert errors_of({"next_node": "search", "plan": [{"node": "search"}]})[0].startswith(
        "give either next_node ('search') or a parallel plan, not both"
    )


def test_plan_errors_name_the_step() -> None:
    assert errors_of({"next_node": "parallel", "args": {"steps": []}}) == [
        'args.steps must list at least one call: [{"node": <tool>, "args": {...}}]'
    ]
    errors = errors_of(
        {
            "next_node": "parallel",
            "args": {
                "steps": [
                    {"node": "search", "args": {"text": "ok"}},
                    {"node": "nope"},
                    "search",
                    {"args": {}},
                    {"node": "final_response"},
                    {"node": "search", "args": {"text": "TODO"}},
                ]
            },
        }
    )
    assert errors == [
        "args.steps[1]: unknown tool 'nope'; the tools are: answer, merge, search",
        'args.steps[2] must be an object {"node": <tool>, "args": {...}}',
        "args.steps[3].node: name the tool this step calls",
        "args.steps[4].node: 'final_response' is not a tool; each step calls a tool",
        "args.steps[5].args.text is a placeholder ('TODO'); put the real value",
    ]
    steps = [{"node": "search", "args": {"text": "a"}}]
    assert errors_of(
        {"next_node": "parallel", "args": {"steps": steps, "join": "vote"}},
        join_strategies=["append"],
    ) == ["args.join: no join strategy 'vote'; use one of: append"]
    assert errors_of(
        {"next_node": "parallel", "args": {"steps": steps, "join": {"node": "ghost"}}}
    ) == ["args.join.node: unknown tool 'ghost'; the tools are: answer, merge, search"]
    assert errors_of(
        {
            "next_node": "parallel",
            "args": {"steps": steps, "join": {"node": "merge", "inject": {"mapping": 3}}},
        }
    )[0].startswith("args.join.inject.mapping")


def test_without_the_catalog_only_the_shape_is_checked() -> None:
    # The loop checks tools and arguments itself (PenguiFlow's order): unknown tools pass.
    action = parse_action('{"next_node": "anything", "args": {"x": 1}}')
    assert (action.next_node, action.args) == ("anything", {"x": 1})
    with pytest.raises(ActionError, match="placeholder"):
        parse_action('{"next_node": "anything", "args": {"x": "..."}}')


# -- replies that need digging out -----------------------------------------------------------


def test_prose_fences_and_several_objects() -> None:
    reply = 'I will search.\n```json\n{"next_node": "search", "args": {"text": "a"}}\n```\nok?'
    action = parse(reply)
    assert action.next_node == "search" and action.raw_llm_response == reply
    two = parse(
        '{"next_node": "search", "args": {"text": "a"}} '
        '{"next_node": "final_response", "args": {"answer": "long answer"}}'
    )
    assert two.next_node == "search"
    assert two.alternate_actions == [{"next_node": "final_response", "args": {"answer_len": 11}}]
    # parts of one action spread over objects are merged
    merged = parse('{"args": {"text": "a"}} {"next_node": "search"}')
    assert (merged.next_node, merged.args) == ("search", {"text": "a"})
    # a list of candidate actions: the first valid one
    listed = parse('[{"next_node": "fly"}, {"next_node": "search", "args": {"text": "b"}}]')
    assert listed.args == {"text": "b"} and listed.alternate_actions is None


def test_a_twice_encoded_reply_and_a_python_style_dict() -> None:
    inner = json.dumps({"next_node": "search", "args": {"text": "twice"}})
    assert parse(json.dumps(inner)).args == {"text": "twice"}
    python = parse("{'next_node': 'final_response', 'args': {'answer': 'single quotes'}}")
    assert python.args["answer"] == "single quotes"
    # what JSON cannot say is not an action
    with pytest.raises(ActionError, match="no JSON object found"):
        parse("{'next_node': {1, 2}}")
    with pytest.raises(ActionError, match="no JSON object found"):
        parse("no json here at all")


def test_limits_still_hold() -> None:
    deep = '{"next_node": "search", "args": ' + '{"a": ' * 70 + "1" + "}" * 70 + "}"
    with pytest.raises(ActionError, match="nesting deeper than 64"):
        parse(deep)
    with pytest.raises(ActionError, match="reply too large: 60 bytes, limit 50"):
        parse("é" * 30, max_reply_bytes=50)
    assert json_objects('{"a": [[1]]}', max_depth=3) == [{"a": [[1]]}]
    # a Python-style reply is bounded the same way
    python_deep = "{'next_node': 'search', 'args': " + "{'a': " * 70 + "1" + "}" * 70 + "}"
    with pytest.raises(ActionError, match="nesting deeper than 64"):
        parse(python_deep)


# -- the action schema ------------------------------------------------------------------------


def test_the_action_schema_has_penguiflows_shape_and_limits_next_node() -> None:
    response_format = action_response_format(["search", "merge", "search"])
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "planner_action"
    schema = response_format["json_schema"]["schema"]
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["next_node", "args"]
    assert schema["properties"]["next_node"]["enum"] == [
        "search",
        "merge",
        "final_response",
        "parallel",
    ]
    assert schema["properties"]["args"] == {"type": "object"}
    branches = {branch["properties"]["next_node"]["const"]: branch for branch in schema["anyOf"]}
    assert set(branches) == {"search", "merge", "final_response", "parallel"}
    finish_args = branches["final_response"]["properties"]["args"]
    assert finish_args["required"] == ["answer"]
    assert finish_args["properties"]["answer"] == {"type": "string", "minLength": 1}
    no_parallel = action_response_format(["search"], parallel=False)["json_schema"]["schema"]
    assert no_parallel["properties"]["next_node"]["enum"] == ["search", "final_response"]
    no_tools = action_response_format([])["json_schema"]["schema"]
    assert no_tools["properties"]["next_node"]["enum"] == ["final_response"]
    flat = action_response_format(["search"], branches=False)["json_schema"]["schema"]
    assert "anyOf" not in flat


def test_the_schema_agrees_with_the_parser_and_our_validator() -> None:
    schema_of = action_response_format(list(CATALOG), join_strategies=["append"])
    schema = schema_of["json_schema"]["schema"]
    good = [
        {"next_node": "search", "args": {"text": "a"}},
        {"next_node": "final_response", "args": {"answer": "x"}, "thought": "t"},
        {
            "next_node": "parallel",
            "args": {"steps": [{"node": "search", "args": {"text": "a"}}], "join": "append"},
        },
    ]
    for reply in good:
        assert validate_reply(json.dumps(reply), schema)[1] == [], reply
        parse(reply, join_strategies=["append"])
    _, errors = validate_reply(json.dumps({"next_node": "fly", "args": {}}), schema)
    assert errors == [
        "$.next_node: must be one of ['search', 'merge', 'answer', 'final_response', 'parallel']"
    ]
    _, errors = validate_reply(json.dumps({"next_node": "search", "args": {}, "x": 1}), schema)
    assert errors == ["$.x: unexpected field"]


def test_tool_schemas_answer_schema_and_limits_go_into_the_branches() -> None:
    class Inner(BaseModel):
        a: int

    class Args(BaseModel):
        text: str
        inner: Inner | None = None

    class Result(BaseModel):
        total: int

    response_format = action_response_format(
        ["search", "merge"],
        tool_schemas={"search": Args.model_json_schema()},
        answer_schema=Result.model_json_schema(),
        join_strategies=["append", "append"],
        max_string_length=50,
        max_parallel=3,
    )
    schema = response_format["json_schema"]["schema"]
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text  # inlined for grammar engines
    branches = {branch["properties"]["next_node"]["const"]: branch for branch in schema["anyOf"]}
    search_args = branches["search"]["properties"]["args"]
    assert search_args["required"] == ["text"]
    assert search_args["properties"]["inner"]["anyOf"][0]["properties"]["a"]["type"] == "integer"
    assert search_args["properties"]["text"]["maxLength"] == 50
    assert branches["merge"]["properties"]["args"] == {"type": "object"}
    finish = branches["final_response"]["properties"]["args"]
    assert finish["required"] == ["answer", "structured"]
    assert finish["properties"]["answer"] == {"type": "string", "minLength": 1, "maxLength": 50}
    plan = branches["parallel"]["properties"]["args"]["properties"]
    assert plan["steps"]["maxItems"] == 3 and plan["steps"]["minItems"] == 1
    assert {"type": "string", "enum": ["append"]} in plan["join"]["anyOf"]
    # the enum of next_node is not capped (it is not free text)
    assert "maxLength" not in schema["properties"]["next_node"]


def test_schema_inputs_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="reserved planner opcodes"):
        action_response_format(["search", "final_response"])
    with pytest.raises(ConfigurationError, match="wrap it in a list"):
        action_response_format("search")
    with pytest.raises(ConfigurationError, match="max_string_length must be an int >= 1"):
        action_response_format(["search"], max_string_length=0)
    with pytest.raises(ConfigurationError, match="max_parallel must be an int >= 1"):
        action_response_format(["search"], max_parallel=True)


def test_inline_refs() -> None:
    class Node_(BaseModel):
        children: list[Node_] = []

    assert inline_refs(Node_.model_json_schema()) is None  # recursive: cannot be inlined
    assert inline_refs({"$ref": "#/$defs/Missing"}) is None
    schema = {
        "type": "object",
        "properties": {"x": {"$ref": "#/definitions/X", "description": "kept"}},
        "definitions": {"X": {"type": "integer"}},
    }
    assert inline_refs(schema) == {
        "type": "object",
        "properties": {"x": {"type": "integer", "description": "kept"}},
    }
    # a recursive tool gets any object in the action schema instead of a broken reference
    response_format = action_response_format(
        ["search"], tool_schemas={"search": Node_.model_json_schema()}
    )
    branch = response_format["json_schema"]["schema"]["anyOf"][0]
    assert branch["properties"]["args"] == {"type": "object"}
