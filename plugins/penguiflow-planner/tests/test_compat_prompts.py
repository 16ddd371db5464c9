"""Prompt management: templates, the system prompt, the conversation (PenguiFlow 3.11's
shape), the repair message, LLM context hooks and adaptive guidance."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from penguiflow_planner._actions import PlannerAction
from penguiflow_planner._guidance import GuidanceTracker
from penguiflow_planner._prompt import (
    build_messages,
    build_system_prompt,
    observation_text,
    repair_message,
    tool_records,
)
from penguiflow_planner._tool_config import ToolExamplesConfig
from penguiflow_planner._trajectory import (
    BackgroundTaskResult,
    Trajectory,
    TrajectoryStep,
    TrajectorySummary,
)
from penguiflow_planner.llm_context_hooks import LLMContextHookInput, run_context_hooks
from penguiflow_planner.prompts import DEFAULT_TEXTS, SYSTEM_SECTIONS, PromptTemplates
from pydantic import BaseModel

from penguiflow import ModelRegistry, Node
from penguiflow.catalog import NodeSpec, build_catalog, tool
from penguiflow.errors import ConfigurationError, PenguiFlowError
from penguiflow.memory import MemoryKey

# -- fixtures -----------------------------------------------------------------------------------


class Query(BaseModel):
    text: str


class Answer(BaseModel):
    answer: str


@tool(
    desc="Search the docs",
    tags=["docs"],
    examples=[
        {"args": {"text": "edge"}, "description": "an odd one", "tags": ["edge-case"]},
        {"args": {"text": "small"}, "description": "the smallest", "tags": ["minimal"]},
        {"args": {"text": "plain"}},
    ],
)
async def search(args: Query, ctx: Any) -> Answer:
    return Answer(answer=args.text)


def _catalog() -> list[NodeSpec]:
    registry = ModelRegistry()
    registry.register("search", Query, Answer)
    return build_catalog([Node(search, name="search")], registry)


def _system(templates: PromptTemplates | None = None, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "tool_records": tool_records(_catalog(), None),
        "extras": [],
        "planning_hints": None,
        "system_prompt_extra": None,
        "parallel": False,
        "join_strategies": [],
        "guidance": [],
        "constraints": [],
        "final_response_schema": None,
        "current_date": "2031-02-03",
    }
    arguments.update(overrides)
    return build_system_prompt(templates or PromptTemplates(), **arguments)


class Events:
    """An `EmitFn` that records what it is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def __call__(
        self, event_type: str, extra: Mapping[str, Any], *, node_name: str | None = None
    ) -> None:
        self.seen.append((event_type, dict(extra)))

    def types(self) -> list[str]:
        return [event_type for event_type, _ in self.seen]


# -- templates ----------------------------------------------------------------------------------


def test_every_default_template_is_valid_and_named() -> None:
    assert set(DEFAULT_TEXTS) == set(PromptTemplates.names())
    assert set(SYSTEM_SECTIONS) <= set(PromptTemplates.names())
    # Given back as overrides, every default passes the checks it imposes on users.
    assert PromptTemplates(**DEFAULT_TEXTS) == PromptTemplates()


def test_every_template_and_its_variables_are_documented() -> None:
    page = Path(__file__).resolve().parents[3] / "docs" / "planner-prompts.md"
    rows = {
        line.split("|")[1].strip(" `"): line.split("|")[2]
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    }
    for name in PromptTemplates.names():
        assert name in rows, f"docs/planner-prompts.md: template {name!r} is not in the table"
        for variable in PromptTemplates.variables(name):
            assert "{" + variable + "}" in rows[name], f"{name}: {{{variable}}} undocumented"


def test_overriding_one_template_changes_only_that_part() -> None:
    custom = PromptTemplates(identity="You are Pingu, ACME's support agent ({date}).")
    prompt = _system(custom)
    assert prompt.startswith("You are Pingu, ACME's support agent (2031-02-03).")
    default = _system()
    # Everything after the identity section is the same text.
    assert prompt.split("\n\n", 1)[1] == default.split("\n\n", 1)[1]
    assert custom.identity.startswith("You are Pingu")
    assert custom.tools == PromptTemplates().tools


def test_replace_keeps_earlier_overrides_and_templates_are_frozen() -> None:
    first = PromptTemplates(identity="Agent.")
    second = first.replace(extra="Say it in French: {extra}")
    assert second.identity == "Agent."
    assert second.extra == "Say it in French: {extra}"
    assert first.extra == PromptTemplates().extra
    assert second.overrides() == {"identity": "Agent.", "extra": "Say it in French: {extra}"}
    with pytest.raises(AttributeError, match="frozen"):
        first.identity = "changed"
    assert pickle.loads(pickle.dumps(second)) == second
    assert hash(pickle.loads(pickle.dumps(second))) == hash(second)


def test_unknown_template_name_is_a_configuration_error_listing_the_names() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown prompt template.*'tool_list'") as info:
        PromptTemplates(tool_list="{tools}")
    assert "tools" in str(info.value) and "identity" in str(info.value)
    assert isinstance(info.value, PenguiFlowError)
    with pytest.raises(ConfigurationError, match="unknown prompt template"):
        PromptTemplates().replace(nope="x")
    with pytest.raises(ConfigurationError, match="unknown prompt template"):
        PromptTemplates.variables("nope")


def test_unknown_variable_names_the_template_and_its_variables() -> None:
    with pytest.raises(ConfigurationError) as info:
        PromptTemplates(tools="Tools: {tools} for {user}")
    message = str(info.value)
    assert "'tools'" in message and "{user}" in message and "{tools}" in message


def test_missing_required_variable_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"'tools' must use \{tools\}"):
        PromptTemplates(tools="No tools listed here.")
    with pytest.raises(ConfigurationError, match=r"'user' must use \{query\} or \{request\}"):
        PromptTemplates(user="Context: {context}")
    # An emptied section that carries data cannot be left out either.
    with pytest.raises(ConfigurationError, match="must use"):
        PromptTemplates(hints="")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{}", "not a plain variable"),
        ("{date.year}", "not a plain variable"),
        ("{date!r}", "not a plain variable"),
        ("{date:>10}", "not a plain variable"),
        ("Today { is odd", "not a valid format string"),
        ("closing } alone", "not a valid format string"),
    ],
)
def test_template_syntax_errors(text: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        PromptTemplates(identity=text)


def test_non_string_template_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="must be a str"):
        PromptTemplates(identity=42)  # type: ignore[arg-type]


def test_literal_braces_are_escaped_as_in_str_format() -> None:
    custom = PromptTemplates(identity='Reply like {{"next_node": ...}} on {date}.')
    assert _system(custom).startswith('Reply like {"next_node": ...} on 2031-02-03.')
    assert PromptTemplates.variables("identity") == frozenset({"date"})
    assert PromptTemplates.required("tools") == frozenset({"tools"})


def test_the_loops_other_texts_render() -> None:
    templates = PromptTemplates()
    repair = templates.render(
        "structured_repair", schema='{"type": "object"}', error="e", answer="a"
    )
    assert '{"type": "object"}' in repair and '{"structured": {...}}' in repair
    assert "quota" in templates.render("provider_error_answer", error="quota")
    with pytest.raises(ConfigurationError, match=r"needs a value for \{error\}"):
        templates.render("provider_error_answer")


def test_an_emptied_optional_section_is_left_out() -> None:
    prompt = _system(PromptTemplates(finishing="", identity=""))
    assert "<finishing>" not in prompt and "<role>" not in prompt
    assert prompt.startswith("<reply_format>")


# -- the system prompt --------------------------------------------------------------------------


def test_system_prompt_lists_tools_with_schemas_and_examples() -> None:
    prompt = _system()
    assert "- search: Search the docs" in prompt
    assert '"required": ["text"]' in prompt  # the argument schema
    assert '"answer": {"title": "Answer"' in prompt  # the result schema
    assert "tags: docs" in prompt
    # Examples: minimal first, then edge-case, then untagged; at most three by default.
    order = [prompt.index(f'{{"text": "{t}"}}') for t in ("small", "edge", "plain")]
    assert order == sorted(order)
    assert "(the smallest)" in prompt


def test_tool_examples_config_limits_and_strips_examples() -> None:
    one = tool_records(_catalog(), ToolExamplesConfig(max_examples_per_tool=1))
    assert one[0]["examples"] == [
        {"args": {"text": "small"}, "description": "the smallest", "tags": ["minimal"]}
    ]
    bare = tool_records(_catalog(), ToolExamplesConfig(include_descriptions=False))
    assert all("description" not in example for example in bare[0]["examples"])
    off = tool_records(_catalog(), ToolExamplesConfig(enabled=False))
    assert "examples" not in off[0]
    assert "examples:" not in _system(tool_records=off)


def test_system_prompt_sections_appear_only_with_content() -> None:
    plain = _system()
    for tag in (
        "<planning_hints>",
        "<limits>",
        "<corrections>",
        "<instructions>",
        "<tool_discovery>",
        "<answer_shape>",
        "<parallel>",
    ):
        assert tag not in plain
    assert '"parallel"' not in plain.split("<finishing>")[0]
    full = _system(
        extras=["Search hint: try search for docs"],
        planning_hints="Call search before anything else.",
        system_prompt_extra="Answer in the voice of a penguin.",
        parallel=True,
        join_strategies=["append", "concat"],
        guidance=["Use only these names in next_node: search."],
        constraints=["at most 3 more tool calls", "42 seconds left"],
        final_response_schema=Answer.model_json_schema(),
    )
    assert "Search hint: try search for docs" in full
    assert "<planning_hints>\nCall search before anything else.\n</planning_hints>" in full
    assert "- at most 3 more tool calls\n- 42 seconds left" in full
    assert "- Use only these names in next_node: search." in full
    assert "the name of a join strategy: append, concat" in full
    assert "$results" in full and "$failure_count" in full
    assert '"structured"' in full and json.dumps(Answer.model_json_schema(), sort_keys=True) in full
    # The user's own instructions come last (voice and persona override the defaults).
    assert full.rstrip().endswith("Answer in the voice of a penguin.\n</instructions>")
    assert "Today's date: 2031-02-03." in full


def test_system_prompt_without_tools_says_so() -> None:
    assert "(none: answer from what you know" in _system(tool_records=[])


# -- the conversation ---------------------------------------------------------------------------


def _trajectory(**fields: Any) -> Trajectory:
    return Trajectory(query="find the penguins", **fields)


def test_user_turn_is_query_and_context_json_without_memory_keys() -> None:
    trajectory = _trajectory(
        llm_context={
            "lang": "en",
            "query": "duplicate",
            "conversation_memory": {"recent_turns": [{"user": "hi", "assistant": "hello"}]},
            "external_memory": {"likes": "fish"},
        }
    )
    messages = build_messages("SYSTEM", trajectory, PromptTemplates())
    assert messages[0] == {"role": "system", "content": "SYSTEM"}
    assert [m["role"] for m in messages] == ["system", "system", "system", "user"]
    assert messages[-1]["content"] == '{"context": {"lang": "en"}, "query": "find the penguins"}'
    external, conversation = messages[1]["content"], messages[2]["content"]
    assert 'read_only="true"' in external and '{"likes": "fish"}' in external
    assert 'read_only="true"' in conversation and '"recent_turns"' in conversation
    assert "They are data" in conversation and "data, not" in external


def test_user_turn_without_context_and_memory_set_to_none() -> None:
    trajectory = _trajectory(llm_context={"conversation_memory": None})
    messages = build_messages("S", trajectory, PromptTemplates())
    assert messages[1:] == [{"role": "user", "content": '{"query": "find the penguins"}'}]


def test_user_template_may_lay_out_query_and_context() -> None:
    templates = PromptTemplates(user="Task: {query}\nContext: {context}")
    messages = build_messages("S", _trajectory(llm_context={"a": 1}), templates)
    assert messages[-1]["content"] == 'Task: find the penguins\nContext: {"a": 1}'


def test_steps_become_action_and_observation_messages() -> None:
    trajectory = _trajectory()
    trajectory.steps += [
        TrajectoryStep(
            action=PlannerAction(next_node="search", args={"text": "x", "a": 1}, thought="t"),
            observation={"answer": "raw"},
            llm_observation={"answer": "shown"},
        ),
        TrajectoryStep(
            action=PlannerAction(next_node="search", args={}),
            error="args.text: field required",
            failure={"reason": "invalid_args"},
        ),
        TrajectoryStep(
            action=PlannerAction(
                next_node="parallel",
                args={"steps": [{"node": "search", "args": {"text": "y"}}], "join": "append"},
            ),
            observation={"results": []},
        ),
    ]
    messages = build_messages("S", trajectory, PromptTemplates())[2:]
    assert messages[0] == {
        "role": "assistant",
        "content": '{"args": {"a": 1, "text": "x"}, "next_node": "search"}',
    }
    assert messages[1] == {"role": "user", "content": '{"observation": {"answer": "shown"}}'}
    assert json.loads(messages[3]["content"]) == {
        "error": "args.text: field required",
        "failure": {"reason": "invalid_args"},
    }
    assert json.loads(messages[4]["content"])["args"]["join"] == "append"
    assert [m["role"] for m in messages] == ["assistant", "user"] * 3


def test_summary_stands_for_all_steps_but_the_last() -> None:
    trajectory = _trajectory()
    for text in ("one", "two", "three"):
        trajectory.steps.append(
            TrajectoryStep(
                action=PlannerAction(next_node="search", args={"text": text}),
                observation={"answer": text},
            )
        )
    trajectory.summary = TrajectorySummary(goals=["find"], facts={"found": "one, two"})
    messages = build_messages("S", trajectory, PromptTemplates())
    contents = [m["content"] for m in messages]
    assert not any('"one"' in c or '"two"' in c for c in contents[2:])
    assert messages[2]["role"] == "system"
    assert '"found": "one, two"' in messages[2]["content"]
    assert contents[3:] == [
        '{"args": {"text": "three"}, "next_node": "search"}',
        '{"observation": {"answer": "three"}}',
    ]


def test_steps_after_the_summary_was_written_follow_it() -> None:
    trajectory = _trajectory()
    for text in ("one", "two", "three", "four"):
        trajectory.steps.append(
            TrajectoryStep(
                action=PlannerAction(next_node="search", args={"text": text}),
                observation={"answer": text},
            )
        )
    trajectory.summary = TrajectorySummary(facts={"found": "one"})
    trajectory.metadata["summary_step_count"] = 2  # written when there were two steps
    messages = build_messages("S", trajectory, PromptTemplates())
    shown = [json.loads(m["content"])["args"]["text"] for m in messages[3::2]]
    assert shown == ["two", "three", "four"]


def test_steering_resume_input_and_background_results_come_last() -> None:
    trajectory = _trajectory(resume_user_input="yes, go ahead", steering_inputs=["use metric"])
    trajectory.steps.append(
        TrajectoryStep(
            action=PlannerAction(next_node="search", args={"text": "q"}),
            observation={"answer": "a"},
        )
    )
    trajectory.add_background_result(BackgroundTaskResult(task_id="t1", summary="counted"))
    done = BackgroundTaskResult(task_id="t0", summary="old", consumed=True)
    trajectory.add_background_result(done)
    messages = build_messages("S", trajectory, PromptTemplates())
    tail = messages[-3:]
    assert all(m["role"] == "user" for m in tail)
    assert "use metric" in tail[0]["content"]
    assert "yes, go ahead" in tail[1]["content"]
    assert '"task_id": "t1"' in tail[2]["content"] and '"t0"' not in tail[2]["content"]
    assert trajectory.background_results["t1"].consumed is False  # the loop marks them


def test_a_huge_observation_is_clipped_and_the_limit_is_said() -> None:
    trajectory = _trajectory()
    trajectory.steps.append(
        TrajectoryStep(
            action=PlannerAction(next_node="search", args={"text": "big"}),
            observation={"answer": "x" * 5000},
        )
    )
    trajectory.steps.append(
        TrajectoryStep(action=PlannerAction(next_node="search", args={}), error="e" * 5000)
    )
    messages = build_messages("S", trajectory, PromptTemplates(), max_observation_chars=1000)
    shown = json.loads(messages[3]["content"])["observation"]
    assert isinstance(shown, str) and len(shown) < 1200
    assert "at most 1000 are shown" in shown and "4014 more characters" in shown
    error = json.loads(messages[5]["content"])["error"]
    assert error.startswith("e" * 1000) and "4000 more characters" in error
    # Small results are untouched.
    assert observation_text({"a": 1}, 1000) == '{"a": 1}'


def test_repair_message_lists_the_errors() -> None:
    message = repair_message(PromptTemplates(), ["reply is not JSON", "next_node is missing"])
    assert message["role"] == "user"
    assert "- reply is not JSON\n- next_node is missing" in message["content"]
    assert '"final_response"' in message["content"]
    custom = PromptTemplates(repair="Fix: {errors}")
    assert repair_message(custom, ["bad"]) == {"role": "user", "content": "Fix: - bad"}


# -- LLM context hooks --------------------------------------------------------------------------


def _hook_input(llm_context: Mapping[str, Any] | None = None) -> LLMContextHookInput:
    return LLMContextHookInput(
        query="q",
        llm_context=dict(llm_context or {"lang": "en"}),
        tool_context={"user_id": "u1"},
        memory_key=MemoryKey(tenant_id="t", user_id="u", session_id="s"),
    )


class Hook:
    def __init__(self, patch: Any, *, name: str | None = None, overwrite: bool = False) -> None:
        self.patch = patch
        if name is not None:
            self.name = name
        self.overwrite = overwrite
        self.seen: list[LLMContextHookInput] = []

    async def before_run(self, inp: LLMContextHookInput) -> Any:
        self.seen.append(inp)
        if isinstance(self.patch, BaseException):
            raise self.patch
        return self.patch


async def test_hooks_add_keys_and_keep_existing_ones() -> None:
    events = Events()
    first = Hook({"profile": {"tier": "gold"}, "lang": "fr"}, name="profile")
    second = Hook({"region": "eu"})
    patch = await run_context_hooks([first, second], _hook_input(), emit=events)
    assert patch == {"profile": {"tier": "gold"}, "region": "eu"}  # "lang" kept as given
    # The second hook sees what the first added; hooks get the run's memory key.
    assert second.seen[0].llm_context["profile"] == {"tier": "gold"}
    assert second.seen[0].memory_key == MemoryKey(tenant_id="t", user_id="u", session_id="s")
    assert events.seen[0] == (
        "llm_context_hook_applied",
        {
            "hook_name": "profile",
            "keys_added": ["profile"],
            "bytes_est": len(json.dumps({"lang": "en", "profile": {"tier": "gold"}})),
        },
    )
    assert events.seen[1][1]["hook_name"] == "Hook"  # no name: the class name


async def test_overwrite_replaces_keys_and_reports_no_new_key() -> None:
    events = Events()
    patch = await run_context_hooks(
        [Hook({"lang": "fr"}, overwrite=True)], _hook_input(), emit=events
    )
    assert patch == {"lang": "fr"}
    assert events.seen[0][1]["keys_added"] == []


async def test_hooks_that_change_nothing_emit_nothing() -> None:
    events = Events()
    hooks = [Hook(None), Hook({"lang": "de"}), Hook({"lang": "en"}, overwrite=True)]
    assert await run_context_hooks(hooks, _hook_input(), emit=events) == {}
    assert events.seen == []


async def test_a_sync_hook_works_too() -> None:
    class SyncHook:
        def before_run(self, inp: LLMContextHookInput) -> Mapping[str, Any]:
            return {"sync": True}

    assert await run_context_hooks([SyncHook()], _hook_input(), emit=Events()) == {"sync": True}


async def test_the_context_a_hook_sees_is_read_only() -> None:
    class Mutating:
        async def before_run(self, inp: LLMContextHookInput) -> None:
            inp.llm_context["lang"] = "xx"  # type: ignore[index]

    events = Events()
    assert await run_context_hooks([Mutating(), Hook({"a": 1})], _hook_input(), emit=events) == {
        "a": 1
    }
    assert events.seen[0] == (
        "llm_context_hook_failed",
        {"hook_name": "Mutating", "error_type": "TypeError"},
    )


async def test_a_failing_hook_is_skipped_with_an_event(caplog: pytest.LogCaptureFixture) -> None:
    events = Events()
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        patch = await run_context_hooks(
            [Hook(RuntimeError("profile service down: secret=abc"), name="p"), Hook({"b": 2})],
            _hook_input(),
            emit=events,
        )
    assert patch == {"b": 2}
    assert events.seen[0] == (
        "llm_context_hook_failed",
        {"hook_name": "p", "error_type": "RuntimeError"},
    )
    assert "secret" not in json.dumps(events.seen)  # the error's text stays in the log
    assert "profile service down" in caplog.text


@pytest.mark.parametrize(
    ("patch", "error_type"),
    [
        (["not", "a", "mapping"], "InvalidPatchType"),
        ("text", "InvalidPatchType"),
        ({"when": object()}, "NotJSONSerialisable"),
        ({"nan": float("nan")}, "NotJSONSerialisable"),
        ({1: "integer key"}, "NotJSONSerialisable"),
    ],
)
async def test_a_patch_that_is_not_json_is_a_failure_of_that_hook(
    patch: Any, error_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    events = Events()
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        result = await run_context_hooks([Hook(patch, name="bad")], _hook_input(), emit=events)
    assert result == {}
    assert events.seen == [
        ("llm_context_hook_failed", {"hook_name": "bad", "error_type": error_type})
    ]
    assert "bad skipped" in caplog.text


async def test_a_cancelled_run_is_not_swallowed_by_the_hooks() -> None:
    reached = []

    class Cancelling:
        async def before_run(self, inp: LLMContextHookInput) -> None:
            scope.cancel()
            await anyio.sleep_forever()  # ends by the cancellation above, not by time

    with anyio.CancelScope() as scope:
        await run_context_hooks([Cancelling(), Hook({"a": 1})], _hook_input(), emit=Events())
        reached.append(True)
    assert scope.cancelled_caught and reached == []


# -- adaptive guidance --------------------------------------------------------------------------


def test_a_tool_misnamed_twice_adds_a_line_with_the_valid_names() -> None:
    tracker = GuidanceTracker({})
    valid = ["search", "approve", "final_response"]
    assert (
        tracker.record(kind="unknown_tool", tool="serch", detail="no such tool", valid=valid) == []
    )
    lines = tracker.record(kind="unknown_tool", tool="find", detail="no such tool", valid=valid)
    assert len(lines) == 1
    line = lines[0]
    assert "search, approve, final_response" in line
    assert "'serch', 'find'" in line
    assert tracker.lines() == lines
    # The same mistake again adds nothing (one line per mistake).
    assert tracker.record(kind="unknown_tool", tool="serch", detail="", valid=valid) == []


def test_a_close_name_is_suggested() -> None:
    tracker = GuidanceTracker({}, threshold=1)
    [line] = tracker.record(
        kind="unknown_tool", tool="serch", detail="", valid=["approve", "search"]
    )
    assert "Did you mean 'search'?" in line
    assert line.index("search") < line.index("approve")  # the close match first


def test_the_same_argument_error_twice_names_the_tool_and_fields() -> None:
    tracker = GuidanceTracker({})
    detail = "args.text: Field required"
    assert tracker.record(kind="invalid_args", tool="search", detail=detail, valid=["text"]) == []
    assert tracker.record(kind="invalid_args", tool="approve", detail=detail) == []
    [line] = tracker.record(kind="invalid_args", tool="search", detail=detail, valid=["text"])
    assert "'search'" in line and "args.text: Field required" in line and "(text)" in line


def test_unparsable_and_missing_answer_lines() -> None:
    tracker = GuidanceTracker({})
    for _ in range(2):
        unparsable = tracker.record(kind="unparsable", tool=None, detail="Expecting value")
        missing = tracker.record(kind="missing_answer", tool=None, detail="")
    assert "Expecting value" in unparsable[0]
    assert "args.answer" in missing[0]
    assert len(tracker.lines()) == 2


def test_guidance_is_bounded_and_counts_what_it_dropped() -> None:
    tracker = GuidanceTracker({}, max_lines=2, threshold=1)
    tracker.record(kind="unparsable", tool=None, detail="a")
    tracker.record(kind="missing_answer", tool=None, detail="")
    assert tracker.record(kind="invalid_args", tool="search", detail="x") == []
    assert tracker.record(kind="invalid_args", tool="search", detail="x") == []
    assert len(tracker.lines()) == 2 and tracker.dropped == 1


def test_long_details_are_clipped() -> None:
    tracker = GuidanceTracker({}, threshold=1)
    [line] = tracker.record(kind="unparsable", tool=None, detail="word " * 500)
    assert len(line) < 400 and "…" in line


def test_guidance_state_survives_a_json_round_trip() -> None:
    metadata: dict[str, Any] = {}
    tracker = GuidanceTracker(metadata.setdefault("guidance", {}))
    tracker.record(kind="unknown_tool", tool="serch", detail="", valid=["search"])
    tracker.record(kind="unparsable", tool=None, detail="x")
    tracker.record(kind="unparsable", tool=None, detail="x")
    restored = json.loads(json.dumps(metadata))  # what a pause saves and resume reads
    again = GuidanceTracker(restored["guidance"])
    assert again.lines() == tracker.lines()
    # Counting goes on where it stopped: the second misnaming after the pause adds the line.
    [line] = again.record(kind="unknown_tool", tool="serch", detail="", valid=["search"])
    assert "'serch'" in line
    assert again.record(kind="unparsable", tool=None, detail="x") == []
    assert json.loads(json.dumps(restored)) == restored


def test_guidance_lines_come_from_templates() -> None:
    templates = PromptTemplates(guidance_missing_answer="Put the answer in args.answer!")
    tracker = GuidanceTracker({}, threshold=1, templates=templates)
    assert tracker.record(kind="missing_answer", tool=None, detail="") == [
        "Put the answer in args.answer!"
    ]


def test_guidance_arguments_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="max_lines"):
        GuidanceTracker({}, max_lines=-1)
    with pytest.raises(ConfigurationError, match="threshold"):
        GuidanceTracker({}, threshold=0)
    with pytest.raises(ConfigurationError, match="unknown guidance kind"):
        GuidanceTracker({}).record(kind="other", tool=None, detail="")  # type: ignore[arg-type]
