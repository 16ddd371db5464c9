"""PenguiFlow 3.11's tool policies, per-call visibility, planning hints and tool search over
deferred tools, written from its public API (`ToolPolicy`, `ToolVisibilityPolicy`,
`planning_hints`, `ToolSearchConfig`, the `tool_search`/`tool_get` tools and their events)."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from penguiflow_planner import _tool_index
from penguiflow_planner._actions import PlannerAction
from penguiflow_planner._hints import HintVerdict, PlanningHints, PlanningHintsWarning
from penguiflow_planner._policies import (
    ToolPolicy,
    ToolVisibilityPolicy,
    apply_tool_policy,
    intersect_policies,
)
from penguiflow_planner._tool_config import (
    ToolDirectoryConfig,
    ToolGroupConfig,
    ToolHintsConfig,
    ToolSearchConfig,
)
from penguiflow_planner._tool_search import RunCatalog, ToolSearch, ToolSearchError
from pydantic import BaseModel

from penguiflow.catalog import NodeSpec, ToolLoadingMode
from penguiflow.errors import (
    ConfigurationError,
    InvalidTypeError,
    PenguiFlowError,
    UsageError,
)


class Query(BaseModel):
    text: str


def spec(
    name: str,
    desc: str = "",
    *,
    tags: Sequence[str] = (),
    deferred: bool = False,
    side_effects: str = "pure",
) -> NodeSpec:
    return NodeSpec(
        name=name,
        desc=desc or f"the {name} tool",
        args_model=Query,
        tags=tuple(tags),
        side_effects=side_effects,  # type: ignore[arg-type]
        loading_mode=ToolLoadingMode.DEFERRED if deferred else ToolLoadingMode.ALWAYS,
    )


CATALOG = [
    spec("search_docs", "Search the documentation pages", tags=["docs"]),
    spec(
        "github.create_issue",
        "Open a new issue in a repository",
        tags=["github", "write"],
        deferred=True,
        side_effects="write",
    ),
    spec(
        "github.list_issues",
        "List the open issues of a repository",
        tags=["github"],
        deferred=True,
        side_effects="read",
    ),
    spec("weather.forecast", "Weather forecast for a city", tags=["weather"], deferred=True),
]


class Recorder:
    """Stands in for the loop's `emit`: keeps what was published."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], str | None]] = []

    async def __call__(
        self, event_type: str, extra: Mapping[str, Any], *, node_name: str | None = None
    ) -> None:
        self.events.append((event_type, dict(extra), node_name))

    def types(self) -> list[str]:
        return [event[0] for event in self.events]


def config(tmp_path: Path, **changes: Any) -> ToolSearchConfig:
    return ToolSearchConfig(enabled=True, cache_dir=str(tmp_path / "cache"), **changes)


def run_catalog(
    search: ToolSearch,
    specs: Sequence[NodeSpec] = CATALOG,
    *,
    visibility: ToolVisibilityPolicy | None = None,
    tool_context: Mapping[str, Any] | None = None,
    activated: set[str] | None = None,
) -> tuple[RunCatalog, Recorder]:
    emit = Recorder()
    catalog = RunCatalog(
        specs,
        search=search,
        visibility=visibility,
        tool_context=tool_context or {},
        activated=set() if activated is None else activated,
        emit=emit,
    )
    return catalog, emit


def names(specs: Sequence[NodeSpec]) -> list[str]:
    return [s.name for s in specs]


async def call(catalog: RunCatalog, tool: str, **arguments: Any) -> Any:
    found = await catalog.resolve(tool)
    assert found is not None and found.call is not None
    return await found.call(arguments)


# --- ToolPolicy -----------------------------------------------------------------------------


def test_tool_policy_allow_deny_and_tags() -> None:
    policy = ToolPolicy(allowed_tools={"a", "b"}, denied_tools={"b"}, require_tags={"safe"})
    assert policy.is_allowed("a", ["safe", "x"])
    assert policy.is_allowed("a", {"safe": True})  # a mapping's keys are its tags
    assert not policy.is_allowed("b", ["safe"])  # denied wins over allowed
    assert not policy.is_allowed("c", ["safe"])  # not in the allow-list
    assert not policy.is_allowed("a", ["x"])  # missing a required tag
    assert ToolPolicy().is_allowed("anything", ())
    assert ToolPolicy().model_dump() == {
        "allowed_tools": None,
        "denied_tools": set(),
        "require_tags": set(),
    }


def test_apply_tool_policy_filters_in_catalog_order() -> None:
    assert apply_tool_policy(CATALOG, None) == CATALOG
    kept = apply_tool_policy(CATALOG, ToolPolicy(require_tags={"github"}))
    assert names(kept) == ["github.create_issue", "github.list_issues"]
    kept = apply_tool_policy(CATALOG, ToolPolicy(denied_tools={"search_docs"}))
    assert "search_docs" not in names(kept) and len(kept) == 3


def test_policy_removing_every_tool_is_a_logged_warning(caplog: pytest.LogCaptureFixture) -> None:
    # PenguiFlow builds the planner anyway (it can answer without tools) and warns.
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        kept = apply_tool_policy(CATALOG, ToolPolicy(allowed_tools={"serch_docs"}))
    assert kept == []
    text = caplog.text
    assert "planner_tool_policy_empty" in text
    assert "'serch_docs'" in text  # the typo is named


def test_policy_naming_builtin_tools_is_not_a_typo(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        apply_tool_policy(CATALOG, ToolPolicy(allowed_tools={"search_docs", "tool_search"}))
    assert caplog.records == []


def test_intersect_policies_for_forks() -> None:
    parent = ToolPolicy(allowed_tools={"a", "b"}, denied_tools={"x"}, require_tags={"t1"})
    child = ToolPolicy(allowed_tools={"b", "c"}, denied_tools={"y"}, require_tags={"t2"})
    merged = intersect_policies(parent, child)
    assert merged == ToolPolicy(
        allowed_tools={"b"}, denied_tools={"x", "y"}, require_tags={"t1", "t2"}
    )
    assert intersect_policies(None, child) is child
    assert intersect_policies(parent, None) is parent
    assert intersect_policies(None, None) is None
    open_child = ToolPolicy(denied_tools={"z"})
    merged = intersect_policies(parent, open_child)
    assert merged is not None and merged.allowed_tools == {"a", "b"}
    assert merged.denied_tools == {"x", "z"}
    merged = intersect_policies(ToolPolicy(), child)
    assert merged is not None and merged.allowed_tools == {"b", "c"}


def test_policy_applies_to_the_builtin_tools(tmp_path: Path) -> None:
    # As in PenguiFlow, an allow-list that leaves out tool_search removes it too: deferred
    # tools are then callable by name only.
    policy = ToolPolicy(allowed_tools={"search_docs", "weather.forecast"})
    specs = apply_tool_policy(CATALOG, policy)
    search = ToolSearch.build(config(tmp_path), specs, policy=policy)
    catalog, _ = run_catalog(search, specs)
    assert names(catalog.prompt_specs()) == ["search_docs"]
    assert catalog.callable_names() == [
        "search_docs",
        "weather.forecast",
    ]
    assert catalog.prompt_extras("weather") == []


# --- visibility per call --------------------------------------------------------------------


class OnlyTags:
    def __init__(self, *tags: str, extras: Sequence[Any] = ()) -> None:
        self.tags = set(tags)
        self.extras = list(extras)
        self.seen: list[tuple[list[str], dict[str, Any]]] = []

    def visible_tools(
        self, specs: Sequence[NodeSpec], tool_context: Mapping[str, Any]
    ) -> Sequence[Any]:
        self.seen.append((names(specs), dict(tool_context)))
        keep: list[Any] = [s for s in specs if self.tags & set(s.tags) or s.name == "tool_search"]
        return keep + self.extras


async def test_visibility_narrows_and_ignores_what_it_makes_up(tmp_path: Path) -> None:
    search = ToolSearch.build(config(tmp_path), CATALOG)
    intruder = spec("rm_rf", "delete everything")
    policy = OnlyTags("docs", "weather", extras=[intruder, "made_up", "tool_get", 42])
    assert isinstance(policy, ToolVisibilityPolicy)
    catalog, emit = run_catalog(search, visibility=policy, tool_context={"tenant": "acme"})
    # It saw every tool, the built-ins included, and the call's tool_context.
    assert policy.seen == [
        ([*names(CATALOG), "tool_search", "tool_get"], {"tenant": "acme"}),
    ]
    # A spec of its own or an unknown name grants nothing; a known name given as a string
    # (tool_get) counts.
    assert catalog.visible_names == {"search_docs", "weather.forecast", "tool_search", "tool_get"}
    assert names(catalog.prompt_specs()) == ["search_docs", "tool_search", "tool_get"]
    assert await catalog.resolve("rm_rf") is None
    assert await catalog.resolve("made_up") is None
    assert emit.events == []  # unknown names: nothing to deny
    assert await catalog.resolve("github.create_issue") is None
    assert emit.events == [
        (
            "tool_activation_denied",
            {"reason": "visibility_policy", "tool_name": "github.create_issue"},
            "github.create_issue",
        )
    ]
    assert catalog.activated == set()
    # tool_search only finds what this call may see.
    response = await call(catalog, "tool_search", query="issue repository", search_type="regex")
    assert response.tools == []


async def test_visibility_policy_error_reaches_the_caller_before_the_run(tmp_path: Path) -> None:
    class Refuses:
        def visible_tools(self, specs: Sequence[NodeSpec], tool_context: Mapping[str, Any]) -> Any:
            raise PermissionError("unknown tenant")

    search = ToolSearch.build(config(tmp_path), CATALOG)
    with pytest.raises(PermissionError, match="unknown tenant") as caught:
        run_catalog(search, visibility=Refuses())
    assert any("Refuses.visible_tools()" in note for note in caught.value.__notes__)


@pytest.mark.parametrize("returned", [None, "search_docs", 3])
def test_visibility_policy_must_return_specs(tmp_path: Path, returned: Any) -> None:
    class Broken:
        def visible_tools(self, specs: Sequence[NodeSpec], tool_context: Mapping[str, Any]) -> Any:
            return returned

    search = ToolSearch.build(None, CATALOG)
    with pytest.raises(InvalidTypeError, match=r"Broken\.visible_tools\(\) must return"):
        run_catalog(search, visibility=Broken())


def test_visibility_must_be_a_policy() -> None:
    search = ToolSearch.build(None, CATALOG)
    with pytest.raises(InvalidTypeError, match="visible_tools"):
        run_catalog(search, visibility=ToolPolicy())  # type: ignore[arg-type]


async def test_visibility_without_tool_search_hides_quietly() -> None:
    search = ToolSearch.build(None, CATALOG)
    catalog, emit = run_catalog(search, visibility=OnlyTags("docs"))
    assert names(catalog.prompt_specs()) == ["search_docs"]
    assert await catalog.resolve("weather.forecast") is None
    assert emit.events == []  # PenguiFlow publishes no denial without tool search


# --- planning hints -------------------------------------------------------------------------


def action(node: str, **args: Any) -> PlannerAction:
    return PlannerAction(next_node=node, args=args)


def parallel(*nodes: str, join: Any = None) -> PlannerAction:
    steps = [{"node": node, "args": {"text": node}} for node in nodes]
    return PlannerAction(next_node="parallel", args={"steps": steps, "join": join})


def test_hints_parse_every_key() -> None:
    hints = PlanningHints.from_mapping(
        {
            "ordering_hints": ["a", "b"],
            "parallel_groups": [["a", "c"]],
            "sequential_only": ["d"],
            "disallow_nodes": ["c"],
            "prefer_nodes": ["b"],
            "max_parallel": 2,
            "budget_hints": {"max_cost_usd": 0.5},
        }
    )
    assert hints.ordering_hints == ("a", "b")
    assert hints.parallel_groups == (("a", "c"),)
    assert hints.sequential_only == {"d"} and hints.disallow_nodes == {"c"}
    assert hints.prefer_nodes == ("b",) and hints.max_parallel == 2
    assert hints.budget_hints == {"max_cost_usd": 0.5}
    assert not hints.empty
    assert PlanningHints.from_mapping(None).empty
    assert PlanningHints.from_mapping({}).prompt_text() is None


def test_max_parallel_may_come_from_budget_hints() -> None:
    # PenguiFlow's own example passes the limit this way.
    hints = PlanningHints.from_mapping({"budget_hints": {"max_parallel": 1}})
    assert hints.max_parallel == 1
    top = PlanningHints.from_mapping({"max_parallel": 3, "budget_hints": {"max_parallel": 1}})
    assert top.max_parallel == 3


def test_unknown_hint_key_is_a_warning_with_a_suggestion() -> None:
    # PenguiFlow's project generator writes "ordering" and "disallow", which 3.11 ignores:
    # they stay ignored, and say so.
    with pytest.warns(PlanningHintsWarning, match="'ordering'.*did you mean 'ordering_hints'"):
        hints = PlanningHints.from_mapping({"ordering": ["a"], "disallow_nodes": ["x"]})
    assert hints.ordering_hints == () and hints.disallow_nodes == {"x"}
    assert issubclass(PlanningHintsWarning, PenguiFlowError)


@pytest.mark.parametrize(
    ("hints", "key"),
    [
        ({"ordering_hints": "ab"}, "ordering_hints"),
        ({"disallow_nodes": "c"}, "disallow_nodes"),
        ({"sequential_only": [1]}, "sequential_only"),
        ({"prefer_nodes": {"a": 1}}, "prefer_nodes"),
        ({"parallel_groups": ["ab"]}, "parallel_groups"),
        ({"parallel_groups": [[1, 2]]}, "parallel_groups"),
        ({"max_parallel": "3"}, "max_parallel"),
        ({"max_parallel": True}, "max_parallel"),
        ({"max_parallel": -1}, "max_parallel"),
        ({"budget_hints": [1]}, "budget_hints"),
        ({"budget_hints": {"max_parallel": "2"}}, "budget_hints.max_parallel"),
    ],
)
def test_wrong_hint_types_are_configuration_errors(hints: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError, match=f"planning_hints\\['{key}'\\]") as caught:
        PlanningHints.from_mapping(hints)
    assert isinstance(caught.value, ValueError)


def test_hints_must_be_a_mapping() -> None:
    with pytest.raises(ConfigurationError, match="must be a mapping"):
        PlanningHints.from_mapping(["a"])  # type: ignore[arg-type]


def test_hints_naming_unknown_tools_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        PlanningHints.from_mapping({"disallow_nodes": ["serch"]}, tool_names=["search"])
    assert "serch" in caplog.text


def test_hints_prompt_text_names_every_hint() -> None:
    text = PlanningHints.from_mapping(
        {
            "ordering_hints": ["triage", "respond"],
            "parallel_groups": [["a", "c"]],
            "sequential_only": ["approve"],
            "disallow_nodes": ["broken_tool"],
            "prefer_nodes": ["cheap"],
            "max_parallel": 2,
            "budget_hints": {"max_cost_usd": 1},
        }
    ).prompt_text()
    assert text is not None
    needles = ["triage -> respond", "[a, c]", "approve", "broken_tool", "cheap", "at most 2"]
    for needle in [*needles, '{"max_cost_usd": 1}']:
        assert needle in text


def test_disallowed_tool_is_blocked() -> None:
    hints = PlanningHints.from_mapping({"disallow_nodes": ["c"]})
    verdict = hints.check(action("c", text="x"), {}, absolute_max_parallel=50)
    assert verdict.blocked and verdict.error is not None and "'c'" in verdict.error
    assert hints.check(action("a"), {}, absolute_max_parallel=50) == HintVerdict()
    assert (
        hints.check(action("final_response", answer="x"), {}, absolute_max_parallel=50).error
        is None
    )


def test_disallowed_tool_is_blocked_inside_parallel_plans_too() -> None:
    # PenguiFlow checks single calls only; a parallel plan is no way around the rule.
    hints = PlanningHints.from_mapping({"disallow_nodes": ["c", "j"]})
    assert hints.check(parallel("a", "c"), {}, absolute_max_parallel=50).blocked
    joined = parallel("a", "b", join={"node": "j", "args": {}})
    assert hints.check(joined, {}, absolute_max_parallel=50).blocked
    assert not hints.check(parallel("a", "b", join="append"), {}, absolute_max_parallel=50).blocked


def test_parallel_limits(caplog: pytest.LogCaptureFixture) -> None:
    none = PlanningHints.from_mapping(None)
    assert not none.check(parallel("a", "b"), {}, absolute_max_parallel=2).blocked
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        verdict = none.check(parallel("a", "b", "c"), {}, absolute_max_parallel=2)
    assert verdict.error is not None and "at most 2" in verdict.error
    assert "parallel_limit_absolute" in caplog.text
    hinted = PlanningHints.from_mapping({"max_parallel": 1})
    verdict = hinted.check(parallel("a", "b"), {}, absolute_max_parallel=50)
    assert verdict.error is not None and "at most 1" in verdict.error
    zero = PlanningHints.from_mapping({"max_parallel": 0})
    assert zero.check(parallel("a"), {}, absolute_max_parallel=50).blocked


def test_sequential_only_tools_stay_out_of_parallel_plans() -> None:
    hints = PlanningHints.from_mapping({"sequential_only": ["a"]})
    verdict = hints.check(parallel("c", "a"), {}, absolute_max_parallel=50)
    assert verdict.error is not None and "'a'" in verdict.error
    assert not hints.check(action("a", text="x"), {}, absolute_max_parallel=50).blocked


def test_ordering_hint_blocks_the_first_out_of_order_call_once() -> None:
    # PenguiFlow: the first call out of order is an error step (the tool does not run); the
    # same call again runs. Here the second one carries a warning for the log.
    hints = PlanningHints.from_mapping({"ordering_hints": ["a", "b"]})
    state: dict[str, Any] = {}
    first = hints.check(action("b"), state, absolute_max_parallel=50)
    assert first.blocked and first.error is not None and "a -> b" in first.error
    again = hints.check(action("b"), state, absolute_max_parallel=50)
    assert not again.blocked and again.warning is not None
    assert hints.check(action("other"), state, absolute_max_parallel=50) == HintVerdict()
    hints.record_progress("b", state)  # not the expected tool: no progress
    assert hints.check(action("a"), state, absolute_max_parallel=50) == HintVerdict()
    hints.record_progress("a", state)
    assert state == {"ordering_state": {"completed": ["a"], "warned": False}}
    # Progress clears the reminder: a later violation is turned back again.
    hints2 = PlanningHints.from_mapping({"ordering_hints": ["a", "b", "c"]})
    assert hints2.check(action("c"), state, absolute_max_parallel=50).blocked
    hints2.record_progress("b", state)
    hints2.record_progress("c", state)
    assert state["ordering_state"]["completed"] == ["a", "b", "c"]
    # Once the order is done, nothing is enforced.
    assert hints2.check(action("a"), state, absolute_max_parallel=50) == HintVerdict()


def test_ordering_state_is_json_and_survives_a_pause() -> None:
    hints = PlanningHints.from_mapping({"ordering_hints": ["a", "b"]})
    state: dict[str, Any] = {}
    assert hints.check(action("b"), state, absolute_max_parallel=50).blocked
    restored = json.loads(json.dumps(state))  # saved with a pause, read on resume
    assert not hints.check(action("b"), restored, absolute_max_parallel=50).blocked
    # A 3.11 trajectory's hint_state reads the same.
    legacy = {"ordering_state": {"completed": ["a"], "warned": False}}
    assert hints.check(action("b"), legacy, absolute_max_parallel=50) == HintVerdict()


# --- tool search: what the prompt lists, activation -----------------------------------------


async def test_deferred_tools_stay_out_of_the_prompt(tmp_path: Path) -> None:
    search = ToolSearch.build(config(tmp_path), CATALOG)
    catalog, _ = run_catalog(search)
    assert names(catalog.prompt_specs()) == ["search_docs", "tool_search", "tool_get"]
    assert catalog.callable_names() == [
        "search_docs",
        "tool_search",
        "tool_get",
        "github.create_issue",
        "github.list_issues",
        "weather.forecast",
    ]
    extras = catalog.prompt_extras("anything")
    assert len(extras) == 1 and "tool_search" in extras[0] and "tool_get" in extras[0]


def test_without_tool_search_deferred_tools_are_listed(tmp_path: Path) -> None:
    # PenguiFlow shows every tool when tool search is off, deferred or not.
    for cfg in (None, ToolSearchConfig(enabled=False, cache_dir=str(tmp_path / "off"))):
        search = ToolSearch.build(cfg, CATALOG)
        catalog, _ = run_catalog(search)
        assert names(catalog.prompt_specs()) == names(CATALOG)
        assert catalog.prompt_extras("q") == []
    assert not (tmp_path / "off").exists()  # nothing written when disabled


def test_always_loaded_patterns_keep_deferred_tools_in_the_prompt(tmp_path: Path) -> None:
    search = ToolSearch.build(config(tmp_path, always_loaded_patterns=["weather.*"]), CATALOG)
    catalog, _ = run_catalog(search)
    assert "weather.forecast" in names(catalog.prompt_specs())
    assert not search.is_deferred(CATALOG[3]) and search.is_deferred(CATALOG[1])


async def test_calling_a_deferred_tool_activates_it(tmp_path: Path) -> None:
    search = ToolSearch.build(config(tmp_path), CATALOG)
    catalog, emit = run_catalog(search)
    resolved = await catalog.resolve("weather.forecast")  # a single call or a parallel branch
    assert resolved is CATALOG[3]
    assert emit.events == [
        (
            "tool_activated",
            {
                "tool_name": "weather.forecast",
                "activation_scope": "run",
                "source": "tool_call",
                "reason": "first_use",
            },
            "weather.forecast",
        )
    ]
    assert catalog.activated == {"weather.forecast"}
    assert "weather.forecast" in names(catalog.prompt_specs())
    await catalog.resolve("weather.forecast")
    await catalog.resolve("search_docs")  # always loaded: nothing to activate
    assert emit.types() == ["tool_activated"]


async def test_search_then_get_then_call(tmp_path: Path) -> None:
    search = ToolSearch.build(config(tmp_path), CATALOG)
    catalog, emit = run_catalog(search)
    found = await call(catalog, "tool_search", query="github issue")
    assert found.search_type == "fts"
    assert {tool.name for tool in found.tools} == {"github.create_issue", "github.list_issues"}
    assert all(tool.loading_mode is ToolLoadingMode.DEFERRED for tool in found.tools)
    assert all(tool.match_type == "fts" and 0.0 <= tool.score <= 1.0 for tool in found.tools)
    # PenguiFlow activates on the first call only: searching and reading change nothing.
    assert catalog.activated == set()
    got = await call(catalog, "tool_get", names=["github.create_issue", "nope"])
    assert got.requested == ["github.create_issue", "nope"] and got.returned == 1
    record = got.tools[0]
    assert record.name == "github.create_issue" and record.side_effects == "write"
    assert record.args_schema == Query.model_json_schema() and record.tags == ["github", "write"]
    assert record.loading_mode is ToolLoadingMode.DEFERRED
    assert got.format == "tool_record"
    bare = await call(catalog, "tool_get", names=["github.create_issue"], include_schemas=False)
    assert bare.tools[0].args_schema is None
    assert catalog.activated == set()
    await catalog.resolve("github.create_issue")
    assert catalog.activated == {"github.create_issue"}
    assert emit.types() == ["tool_search_query", "tool_get", "tool_get", "tool_activated"]
    assert emit.events[0][1] == {
        "query": "github issue",
        "requested_search_type": "fts",
        "effective_search_type": "fts",
        "results_count": 2,
        "tags": [],
        "namespace": None,
    }
    assert emit.events[1][1] == {
        "requested": ["github.create_issue", "nope"],
        "returned": 1,
        "include_schemas": True,
        "include_examples": True,
    }


async def test_tool_get_of_nothing_available_fails(tmp_path: Path) -> None:
    search = ToolSearch.build(config(tmp_path), CATALOG)
    catalog, emit = run_catalog(search, visibility=OnlyTags("docs", extras=["tool_get"]))
    with pytest.raises(ToolSearchError, match="tool_search") as caught:
        await call(catalog, "tool_get", names=["github.create_issue"])  # hidden from this call
    assert isinstance(caught.value, RuntimeError)
    assert emit.events == []


async def test_run_scope_restores_a_paused_runs_activations(tmp_path: Path) -> None:
    search = ToolSearch.build(config(tmp_path), CATALOG)
    first, _ = run_catalog(search, activated=search.activations_for({}))
    await first.resolve("weather.forecast")
    saved = sorted(first.activated)  # what the loop keeps with a pause
    other, _ = run_catalog(search, activated=search.activations_for({}))
    assert other.activated == set()  # another run starts with none
    resumed, emit = run_catalog(search, activated=search.activations_for({}, restored=saved))
    assert "weather.forecast" in names(resumed.prompt_specs())
    await resumed.resolve("weather.forecast")
    assert emit.events == []


async def test_session_scope_shares_activations_between_runs(tmp_path: Path) -> None:
    search = ToolSearch.build(config(tmp_path, activation_scope="session"), CATALOG)
    session = {"session_id": "s1"}
    first, _ = run_catalog(search, activated=search.activations_for(session), tool_context=session)
    await first.resolve("github.list_issues")
    second, emit = run_catalog(search, activated=search.activations_for(session))
    assert "github.list_issues" in names(second.prompt_specs())
    other, _ = run_catalog(search, activated=search.activations_for({"session_id": "s2"}))
    assert "github.list_issues" not in names(other.prompt_specs())
    await second.resolve("weather.forecast")
    assert emit.events[0][1]["activation_scope"] == "session"
    assert search.activations_for(session) == {"github.list_issues", "weather.forecast"}
    with pytest.raises(ConfigurationError, match="session_id") as caught:
        search.activations_for({})
    assert isinstance(caught.value, ValueError)


async def test_a_catalog_tool_named_tool_search_wins(tmp_path: Path) -> None:
    own = spec("tool_search", "our own search")
    search = ToolSearch.build(config(tmp_path), [own, *CATALOG])
    catalog, _ = run_catalog(search, [own, *CATALOG])
    assert search.builtins == ("tool_get",)
    assert await catalog.resolve("tool_search") is own


# --- tool search: the index -----------------------------------------------------------------


def index_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache").glob("tool-search-*.sqlite3"))


async def test_fts_regex_and_exact(tmp_path: Path) -> None:
    search = ToolSearch.build(config(tmp_path), CATALOG)
    catalog, _ = run_catalog(search)
    stemmed = await call(catalog, "tool_search", query="issues")  # porter: issues ~ issue
    assert {t.name for t in stemmed.tools} == {"github.create_issue", "github.list_issues"}
    assert max(t.score for t in stemmed.tools) == 1.0  # scores are relative to the best hit
    either = await call(catalog, "tool_search", query="weather city nonsense")  # OR fallback
    assert [t.name for t in either.tools] == ["weather.forecast"]
    regex = await call(catalog, "tool_search", query=r"^github\.", search_type="regex")
    assert regex.search_type == "regex"
    assert [t.name for t in regex.tools] == ["github.list_issues", "github.create_issue"]
    assert {t.score for t in regex.tools} == {0.9}  # the pattern matches at the name's start
    full = await call(catalog, "tool_search", query="weather.forecast", search_type="regex")
    assert full.tools[0].score == 0.95
    exact = await call(catalog, "tool_search", query="WEATHER", search_type="exact")
    assert [(t.name, t.score, t.match_type) for t in exact.tools] == [
        ("weather.forecast", 1.0, "exact")
    ]
    assert (await call(catalog, "tool_search", query="weath", search_type="exact")).tools == []
    # punctuation only: nothing for FTS to match on, so it falls back
    odd = await call(catalog, "tool_search", query="!!!")
    assert odd.search_type == "regex"


async def test_search_filters_and_limits(tmp_path: Path) -> None:
    search = ToolSearch.build(
        config(tmp_path, max_search_results=1, preferred_namespaces=["weather"]), CATALOG
    )
    catalog, _ = run_catalog(search)
    tagged = await call(catalog, "tool_search", query="repository", tags=["write"])
    assert [t.name for t in tagged.tools] == ["github.create_issue"]
    capped = await call(catalog, "tool_search", query=".", search_type="regex", limit=5)
    assert [t.name for t in capped.tools] == ["weather.forecast"]  # preferred namespace first
    spaced = await call(catalog, "tool_search", query="github", namespace="weather")
    assert spaced.tools == []
    # always-loaded tools only when asked for
    docs = await call(catalog, "tool_search", query="documentation")
    assert docs.tools == []
    docs = await call(catalog, "tool_search", query="documentation", include_always_loaded=True)
    assert [t.name for t in docs.tools] == ["search_docs"]
    assert docs.tools[0].loading_mode is ToolLoadingMode.ALWAYS


async def test_ties_prefer_tools_that_change_less(tmp_path: Path) -> None:
    tools = [
        spec("x.drop", "x", deferred=True, side_effects="stateful"),
        spec("x.lookup_all", "x", deferred=True, side_effects="read"),
        spec("x.fetch", "x", deferred=True, side_effects="read"),
    ]
    search = ToolSearch.build(config(tmp_path), tools)
    catalog, _ = run_catalog(search, tools)
    found = await call(catalog, "tool_search", query="^x", search_type="regex")
    # equal scores: fewer side effects first, then the shorter name
    assert [t.name for t in found.tools] == ["x.fetch", "x.lookup_all", "x.drop"]


@pytest.mark.parametrize(("fallback", "expected"), [(True, "regex"), (False, "exact")])
async def test_without_fts5_full_text_search_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallback: bool, expected: str
) -> None:
    monkeypatch.setattr(_tool_index, "fts5_supported", lambda: False)
    search = ToolSearch.build(config(tmp_path, fts_fallback_to_regex=fallback), CATALOG)
    assert not search.index.fts_available and index_files(tmp_path) == []
    catalog, emit = run_catalog(search)
    found = await call(catalog, "tool_search", query="weather.forecast")
    assert found.search_type == expected and [t.name for t in found.tools] == ["weather.forecast"]
    assert emit.events[0][1]["effective_search_type"] == expected
    assert emit.events[0][1]["requested_search_type"] == "fts"


def test_index_is_reused_rebuilt_on_change_and_isolated_per_catalog(tmp_path: Path) -> None:
    first = ToolSearch.build(config(tmp_path), CATALOG)
    [path] = index_files(tmp_path)
    inode = path.stat().st_ino
    again = ToolSearch.build(config(tmp_path), CATALOG)
    assert again.index.path == path and path.stat().st_ino == inode  # same catalog: reused
    changed = [*CATALOG[:3], spec("weather.forecast", "Rain or shine, per city", deferred=True)]
    other = ToolSearch.build(config(tmp_path), changed)
    assert other.index.path != path and len(index_files(tmp_path)) == 2
    # Each planner searches its own catalog, though both live in one cache_dir.
    hits, _ = first.index.search("shine")
    assert hits == []
    hits, _ = other.index.search("shine")
    assert [h.name for h in hits] == ["weather.forecast"]
    rebuilt = ToolSearch.build(config(tmp_path, rebuild_cache_on_init=True), CATALOG)
    assert rebuilt.index.path == path and path.stat().st_ino != inode
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")] == []


def test_a_damaged_index_is_rebuilt(tmp_path: Path) -> None:
    ToolSearch.build(config(tmp_path), CATALOG)
    [path] = index_files(tmp_path)
    path.write_bytes(b"not a database")
    search = ToolSearch.build(config(tmp_path), CATALOG)
    hits, effective = search.index.search("forecast")
    assert effective == "fts" and [h.name for h in hits] == ["weather.forecast"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM tools_fts").fetchone() == (6,)


def test_an_unwritable_cache_dir_indexes_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the directory should be")
    search = ToolSearch.build(config(tmp_path), CATALOG)
    assert search.index.path is None and search.index.fts_available
    hits, _ = search.index.search("forecast")
    assert [h.name for h in hits] == ["weather.forecast"]


async def test_closing_the_search(tmp_path: Path) -> None:
    async with ToolSearch.build(config(tmp_path), CATALOG) as search:
        catalog, _ = run_catalog(search)
    await search.aclose()  # idempotent
    with pytest.raises(UsageError, match="closed"):
        await call(catalog, "tool_search", query="x")


# --- hints and directory texts --------------------------------------------------------------


async def test_tool_hints_for_the_query(tmp_path: Path) -> None:
    hints = ToolHintsConfig(enabled=True, top_k=1)
    search = ToolSearch.build(config(tmp_path, hints=hints), CATALOG)
    catalog, emit = run_catalog(search)
    extras = await catalog.prepare("what is the weather forecast in Oslo")
    assert len(extras) == 2
    assert "weather.forecast: Weather forecast for a city" in extras[1]
    assert emit.events == [
        (
            "tool_hints_generated",
            {
                "query": "what is the weather forecast in Oslo",
                "requested_search_type": "fts",
                "effective_search_type": "fts",
                "count": 1,
                "top_k": 1,
            },
            None,
        )
    ]
    assert await catalog.prepare("what is the weather forecast in Oslo") == extras
    assert len(emit.events) == 1  # once per turn
    assert catalog.prompt_extras("what is the weather forecast in Oslo") == extras


async def test_tool_directory_groups(tmp_path: Path) -> None:
    directory = ToolDirectoryConfig(
        enabled=True,
        max_tools_per_group=1,
        groups=[
            ToolGroupConfig(name="gh", title="GitHub", trigger="issues", match_tags=["github"])
        ],
    )
    search = ToolSearch.build(config(tmp_path, directory=directory), CATALOG)
    catalog, emit = run_catalog(search)
    extras = await catalog.prepare("q")
    text = extras[-1]
    lines = text.splitlines()
    assert lines[1] == "- gh (GitHub; issues; 2 tools)"
    assert lines[2] == "  for example: github.list_issues"
    assert lines[3].startswith("- core (") and "3 tools" in lines[3]
    assert lines[5].startswith("- weather (") and "1 tool)" in lines[5]
    assert emit.events == [("tool_directory_rendered", {"group_count": 3}, None)]
    capped = directory.model_copy(update={"max_groups": 1, "include_tool_counts": False})
    small = ToolSearch.build(config(tmp_path, directory=capped), CATALOG)
    text = run_catalog(small)[0].prompt_extras("q")[-1]
    assert text.splitlines()[1:] == ["- gh (GitHub; issues)", "  for example: github.list_issues"]


async def test_directory_lists_only_what_the_call_may_see(tmp_path: Path) -> None:
    directory = ToolDirectoryConfig(enabled=True, include_default_groups=True)
    search = ToolSearch.build(config(tmp_path, directory=directory), CATALOG)
    catalog, _ = run_catalog(search, visibility=OnlyTags("weather"))
    text = catalog.prompt_extras("q")[-1]
    assert "weather.forecast" in text and "github" not in text and "search_docs" not in text
