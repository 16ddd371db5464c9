"""Deferred tools and tool search (PenguiFlow 3.11's `ToolSearchConfig`).

With tool search on, a tool whose `loading_mode` is `deferred` (and whose name matches none of
`always_loaded_patterns`) is left out of the system prompt. The model finds it with the
built-in `tool_search` (by keywords, a regular expression or an exact name), reads its schema
with `tool_get`, and calls it by name; the first call activates it (event `tool_activated`),
and from then on it is listed in the prompt like any other tool, for the rest of the run or,
with `activation_scope="session"`, of the session. As in PenguiFlow, searching or reading a
tool does not activate it: only a call does, so the prompt grows by the tools actually used.

Two objects: `ToolSearch`, one per planner, holds the index (built once, see `_tool_index`);
`RunCatalog`, one per run, is what that run may see and call after its visibility policy, and
binds the built-in tools to the run (their `call` closes over it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, Field

from penguiflow.catalog import NodeSpec, ToolLoadingMode
from penguiflow.errors import ConfigurationError, InvalidTypeError, PenguiFlowError, UsageError
from penguiflow.resources import AsyncResource

from ._events import EmitFn
from ._policies import ToolPolicy, ToolVisibilityPolicy
from ._tool_config import ToolSearchConfig
from ._tool_directory import directory_text, discovery_text, hints_text
from ._tool_index import IndexRecord, ToolIndex

__all__ = [
    "TOOL_GET",
    "TOOL_SEARCH",
    "RunCatalog",
    "ToolGetArgs",
    "ToolGetRecord",
    "ToolGetResponse",
    "ToolSearch",
    "ToolSearchArgs",
    "ToolSearchError",
    "ToolSearchResponse",
    "ToolSearchResult",
]

TOOL_SEARCH = "tool_search"
TOOL_GET = "tool_get"


class ToolSearchError(PenguiFlowError, RuntimeError):
    """A built-in discovery tool could not answer (the model sees it as the tool's failure)."""


class ToolSearchArgs(BaseModel):
    """Arguments of `tool_search`."""

    query: str = Field(description="What the tool should do, in a few keywords.")
    search_type: Literal["fts", "regex", "exact"] = Field(
        default="fts",
        description="fts: keywords; regex: a regular expression over names, descriptions "
        "and tags; exact: a whole name, description or tag.",
    )
    limit: int = Field(default=8, ge=1, le=20, description="How many tools at most.")
    include_always_loaded: bool = Field(
        default=False, description="Also list tools that are already in your tool list."
    )
    tags: list[str] = Field(
        default_factory=list, description="Only tools carrying every one of these tags."
    )
    namespace: str | None = Field(
        default=None,
        description="Only tools named '<namespace>' or '<namespace>.<name>'.",
    )


class ToolSearchResult(BaseModel):
    name: str
    description: str
    score: float
    match_type: Literal["exact", "regex", "fts"]
    loading_mode: ToolLoadingMode


class ToolSearchResponse(BaseModel):
    """What `tool_search` returns; `search_type` is the one actually used (a fallback when
    full-text search was asked for but is not available)."""

    tools: list[ToolSearchResult]
    query: str
    search_type: Literal["fts", "regex", "exact"]


class ToolGetArgs(BaseModel):
    """Arguments of `tool_get`."""

    names: list[str] = Field(min_length=1, max_length=10, description="Tool names.")
    include_schemas: bool = Field(default=True, description="Include the argument schemas.")
    include_examples: bool = Field(default=True, description="Include example arguments.")


class ToolGetRecord(BaseModel):
    name: str
    desc: str
    side_effects: str
    loading_mode: ToolLoadingMode
    tags: list[str]
    auth_scopes: list[str]
    cost_hint: str | None = None
    latency_hint_ms: int | None = None
    safety_notes: str | None = None
    args_schema: dict[str, Any] | None = None
    out_schema: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    examples: list[dict[str, Any]] = Field(default_factory=list)


class ToolGetResponse(BaseModel):
    tools: list[ToolGetRecord]
    requested: list[str]
    returned: int
    format: Literal["tool_record"] = "tool_record"


_BUILTINS: dict[str, tuple[str, type[BaseModel], type[BaseModel]]] = {
    TOOL_SEARCH: (
        "Find more tools by what they do: describe the capability in a few keywords. "
        "Returns tool names you may call.",
        ToolSearchArgs,
        ToolSearchResponse,
    ),
    TOOL_GET: (
        "Show the full description, argument schema and examples of tools, by name.",
        ToolGetArgs,
        ToolGetResponse,
    ),
}


def _loading_mode(spec: NodeSpec) -> ToolLoadingMode:
    # A spec built by hand may say "deferred" as a plain string, or nothing at all.
    mode: Any = spec.loading_mode
    return ToolLoadingMode(mode) if mode is not None else ToolLoadingMode.ALWAYS


class ToolSearch(AsyncResource):
    """The planner's tool search: which tools are deferred, the search index, and (for
    `activation_scope="session"`) the tools each session has activated. Build it once per
    planner with `ToolSearch.build`; close it with `aclose()`."""

    def __init__(
        self,
        config: ToolSearchConfig,
        *,
        index: ToolIndex | None,
        builtins: Sequence[str],
    ) -> None:
        self.config = config
        self._index = index
        #: the built-in tools this planner offers (not shadowed by a catalog tool, not
        #: removed by its ToolPolicy)
        self.builtins = tuple(builtins)
        self._sessions: dict[str, set[str]] = {}
        self._closed = False

    @classmethod
    def build(
        cls,
        config: ToolSearchConfig | None,
        specs: Sequence[NodeSpec],
        *,
        policy: ToolPolicy | None = None,
    ) -> ToolSearch:
        """The tool search for a planner whose catalog, after its `ToolPolicy`, is `specs`.

        `policy` applies to the built-in tools as to any other (PenguiFlow adds them before
        the policy runs, so an allow-list without `tool_search` leaves it out). With tool
        search off (`config` None or not enabled) nothing is deferred and no file is read
        or written."""
        if config is None or not config.enabled:
            return cls(config or ToolSearchConfig(), index=None, builtins=())
        names = {spec.name for spec in specs}
        builtins = [
            name
            for name in _BUILTINS
            if name not in names and (policy is None or policy.is_allowed(name, ()))
        ]
        search = cls(config, index=None, builtins=builtins)
        records = [search._record(spec) for spec in specs]
        records += [
            IndexRecord.create(
                name=name,
                description=_BUILTINS[name][0],
                declared_tags=(),
                side_effects="pure",
                loading_mode=ToolLoadingMode.ALWAYS.value,
                always_loaded=True,
            )
            for name in builtins
        ]
        search._index = ToolIndex.open(
            records,
            cache_dir=config.cache_dir,
            rebuild=config.rebuild_cache_on_init,
            preferred_namespaces=config.preferred_namespaces,
            fts_fallback_to_regex=config.fts_fallback_to_regex,
            max_results=config.max_search_results,
        )
        return search

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def index(self) -> ToolIndex:
        if self._index is None:
            raise ConfigurationError(
                "tool search is off for this planner; pass "
                "tool_search=ToolSearchConfig(enabled=True) to ReactPlanner"
            )
        if self._closed:
            raise UsageError(
                "the planner's tool search is closed (aclose() was called); build a new "
                "planner to search again"
            )
        return self._index

    def is_deferred(self, spec: NodeSpec) -> bool:
        """Whether `spec` stays out of the prompt until it is activated."""
        if not self.enabled or _loading_mode(spec) is not ToolLoadingMode.DEFERRED:
            return False
        return not any(fnmatchcase(spec.name, p) for p in self.config.always_loaded_patterns)

    def activations_for(
        self, tool_context: Mapping[str, Any], *, restored: Iterable[str] = ()
    ) -> set[str]:
        """The set a run's `RunCatalog` records its activations in. Run scope: a new set
        holding `restored` (what a paused run had activated). Session scope: the set shared
        by every run of `tool_context["session_id"]` (a `ConfigurationError`, a ValueError,
        when the id is missing, as PenguiFlow refuses)."""
        if self.config.activation_scope != "session" or not self.enabled:
            return set(restored)
        session_id = tool_context.get("session_id")
        if not isinstance(session_id, str) or not session_id.strip():
            raise ConfigurationError(
                "ToolSearchConfig(activation_scope='session') needs the session's id in "
                "tool_context['session_id'] (a non-empty string); pass it to run()/resume(), "
                "or use activation_scope='run'"
            )
        shared = self._sessions.setdefault(session_id, set())
        shared.update(restored)
        return shared

    def _record(self, spec: NodeSpec) -> IndexRecord:
        return IndexRecord.create(
            name=spec.name,
            description=spec.desc,
            declared_tags=spec.tags,
            side_effects=spec.side_effects,
            loading_mode=_loading_mode(spec).value,
            always_loaded=not self.is_deferred(spec),
        )

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._index is not None:
                self._index.close()


def _visible_names(
    candidates: Sequence[NodeSpec],
    visibility: ToolVisibilityPolicy | None,
    tool_context: Mapping[str, Any],
) -> set[str]:
    known = {spec.name for spec in candidates}
    if visibility is None:
        return known
    chooser = getattr(visibility, "visible_tools", None)
    if not callable(chooser):
        raise InvalidTypeError(
            f"tool_visibility must have a visible_tools(specs, tool_context) method (the "
            f"ToolVisibilityPolicy protocol); got {type(visibility).__name__}"
        )
    try:
        chosen = chooser(list(candidates), tool_context)
    except Exception as exc:
        # The policy's own error reaches the caller unchanged (as in PenguiFlow, so an
        # `except` written for it still works), with a note saying where it came from.
        exc.add_note(
            f"raised by the tool_visibility policy {type(visibility).__name__}"
            ".visible_tools(); the run did not start"
        )
        raise
    if chosen is None or isinstance(chosen, str | bytes) or not hasattr(chosen, "__iter__"):
        raise InvalidTypeError(
            f"{type(visibility).__name__}.visible_tools() must return a sequence of the "
            f"NodeSpecs it was given, got {type(chosen).__name__}"
        )
    names = set()
    for item in chosen:
        name = item if isinstance(item, str) else getattr(item, "name", None)
        if isinstance(name, str):
            names.add(name)
    # It may only narrow: a name it made up, or a spec of its own, grants nothing.
    return names & known


class RunCatalog:
    """What one run may see and call: the planner's tools after this call's visibility
    policy, with deferred tools held back from the prompt until activated."""

    def __init__(
        self,
        specs: Sequence[NodeSpec],
        *,
        search: ToolSearch,
        visibility: ToolVisibilityPolicy | None,
        tool_context: Mapping[str, Any],
        activated: set[str],
        emit: EmitFn,
    ) -> None:
        """`specs`: the planner's catalog after its `ToolPolicy`. `visibility` is consulted
        here, once: an exception it raises propagates unchanged (with a note), so the run
        fails before it starts. `activated` is updated in place (pass the set from
        `ToolSearch.activations_for`). `emit` publishes the run's events."""
        self._search = search
        self._emit = emit
        candidates = [*specs, *(self._builtin(name) for name in search.builtins)]
        self._known = {spec.name: spec for spec in candidates}
        allowed = _visible_names(candidates, visibility, tool_context)
        self._visible = {spec.name: spec for spec in candidates if spec.name in allowed}
        self._activated = activated
        self._extras: dict[str, list[str]] = {}

    @property
    def activated(self) -> set[str]:
        """The deferred tools activated so far (to save with a pause or the session)."""
        return self._activated

    @property
    def visible_names(self) -> set[str]:
        """Every tool this run may call."""
        return set(self._visible)

    def prompt_specs(self) -> list[NodeSpec]:
        """The tools the system prompt lists now: the visible ones, less the deferred tools
        not activated yet; `tool_search`/`tool_get` when they are offered."""
        return [
            spec
            for spec in self._visible.values()
            if spec.name in self._activated or not self._search.is_deferred(spec)
        ]

    def callable_names(self) -> list[str]:
        """Every tool name the model may put in `next_node` (for the JSON schema's enum):
        the prompt's tools, then the deferred tools it may activate by calling them. The
        opcodes `final_response` and `parallel` are not tools and are not included."""
        listed = [spec.name for spec in self.prompt_specs()]
        shown = set(listed)
        return [*listed, *(name for name in self._visible if name not in shown)]

    async def resolve(self, name: str) -> NodeSpec | None:
        """The spec to run for `name` (a single call or a parallel branch), activating a
        deferred tool on its first call. None when the name is not a tool of this run:
        unknown, or hidden by the visibility policy (event `tool_activation_denied` when
        tool search is on, as in PenguiFlow)."""
        spec = self._visible.get(name)
        if spec is None:
            if name in self._known and self._search.enabled:
                await self._emit(
                    "tool_activation_denied",
                    {"reason": "visibility_policy", "tool_name": name},
                    node_name=name,
                )
            return None
        if self._search.is_deferred(spec) and name not in self._activated:
            self._activated.add(name)
            await self._emit(
                "tool_activated",
                {
                    "tool_name": name,
                    "activation_scope": self._search.config.activation_scope,
                    "source": "tool_call",
                    "reason": "first_use",
                },
                node_name=name,
            )
        return spec

    async def prepare(self, query: str) -> list[str]:
        """Work out the hints (`ToolHintsConfig`) and the directory (`ToolDirectoryConfig`)
        for this turn's `query`, publishing `tool_hints_generated` and
        `tool_directory_rendered`; call it once when the run (or a resume) starts. Returns
        `prompt_extras(query)`."""
        if query not in self._extras:
            texts, events = self._discover(query)
            self._extras[query] = texts
            for event_type, extra in events:
                await self._emit(event_type, extra)
        return self.prompt_extras(query)

    def prompt_extras(self, query: str) -> list[str]:
        """Texts for the system prompt: how to find more tools (when `tool_search` is
        offered), then the hints and the directory for `query` (as `prepare` found them;
        worked out here, without events, if it was not called)."""
        extras = []
        if TOOL_SEARCH in self._visible:
            extras.append(discovery_text(has_get=TOOL_GET in self._visible))
        found = self._extras.get(query)
        if found is None:
            found = self._extras[query] = self._discover(query)[0]
        return [*extras, *found]

    def _discover(self, query: str) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
        """The hints and directory texts for `query`, and the events that announce them."""
        config = self._search.config
        texts: list[str] = []
        events: list[tuple[str, dict[str, Any]]] = []
        if not self._search.enabled:
            return texts, events
        if config.hints.enabled:
            hits, effective = self._search.index.search(
                query,
                search_type=config.hints.search_type,
                limit=config.hints.top_k,
                include_always_loaded=config.hints.include_always_loaded,
                allowed_names=set(self._visible),
            )
            text = hints_text(hits, query)
            if text:
                texts.append(text)
            summary = {
                "query": query,
                "requested_search_type": config.hints.search_type,
                "effective_search_type": effective,
                "count": len(hits),
                "top_k": config.hints.top_k,
            }
            events.append(("tool_hints_generated", summary))
        if config.directory.enabled:
            text, group_count = directory_text(
                list(self._visible.values()),
                config.directory,
                has_search=TOOL_SEARCH in self._visible,
            )
            if text:
                texts.append(text)
                events.append(("tool_directory_rendered", {"group_count": group_count}))
        return texts, events

    def _builtin(self, name: str) -> NodeSpec:
        desc, args_model, out_model = _BUILTINS[name]
        call = self._tool_search if name == TOOL_SEARCH else self._tool_get
        return NodeSpec(
            name=name,
            desc=desc,
            args_model=args_model,
            out_model=out_model,
            side_effects="pure",
            loading_mode=ToolLoadingMode.ALWAYS,
            call=call,
        )

    async def _tool_search(self, arguments: Mapping[str, Any]) -> ToolSearchResponse:
        args = ToolSearchArgs.model_validate(dict(arguments))
        hits, effective = self._search.index.search(
            args.query,
            search_type=args.search_type,
            limit=args.limit,
            include_always_loaded=args.include_always_loaded,
            allowed_names=set(self._visible),
            tags=args.tags,
            namespace=args.namespace,
        )
        response = ToolSearchResponse(
            tools=[
                ToolSearchResult(
                    name=hit.name,
                    description=hit.description,
                    score=hit.score,
                    match_type=hit.match_type,
                    loading_mode=ToolLoadingMode(hit.loading_mode),
                )
                for hit in hits
            ],
            query=args.query,
            search_type=effective,
        )
        await self._emit(
            "tool_search_query",
            {
                "query": args.query,
                "requested_search_type": args.search_type,
                "effective_search_type": effective,
                "results_count": len(hits),
                "tags": list(args.tags),
                "namespace": args.namespace,
            },
        )
        return response

    async def _tool_get(self, arguments: Mapping[str, Any]) -> ToolGetResponse:
        args = ToolGetArgs.model_validate(dict(arguments))
        records = []
        for raw in args.names:
            spec = self._visible.get(raw.strip())
            if spec is not None:
                records.append(_get_record(spec, args))
        if not records:
            raise ToolSearchError(
                f"none of {', '.join(repr(n) for n in args.names)} is a tool available to "
                "this run; find tool names with tool_search"
            )
        await self._emit(
            "tool_get",
            {
                "requested": list(args.names),
                "returned": len(records),
                "include_schemas": args.include_schemas,
                "include_examples": args.include_examples,
            },
        )
        return ToolGetResponse(tools=records, requested=list(args.names), returned=len(records))


def _get_record(spec: NodeSpec, args: ToolGetArgs) -> ToolGetRecord:
    return ToolGetRecord(
        name=spec.name,
        desc=spec.desc,
        side_effects=spec.side_effects,
        loading_mode=_loading_mode(spec),
        tags=list(spec.tags),
        auth_scopes=list(spec.auth_scopes),
        cost_hint=spec.cost_hint,
        latency_hint_ms=spec.latency_hint_ms,
        safety_notes=spec.safety_notes,
        args_schema=spec.args_schema if args.include_schemas else None,
        out_schema=spec.out_schema if args.include_schemas else None,
        extra=dict(spec.extra),
        examples=[e.model_dump(exclude_none=True) for e in spec.examples]
        if args.include_examples
        else [],
    )
