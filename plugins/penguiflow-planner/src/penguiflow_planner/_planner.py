"""`ReactPlanner`: PenguiFlow 3.11's planner (its constructor, `run`, `resume`, `fork`,
`pause`, `step`), on our runtime pieces.

One planner serves any number of concurrent runs: a run's state lives in the run, never on
the planner. Runs of one session are serialised (PenguiFlow does the same: a session's turns
must not interleave); runs of different sessions, and runs without a session, go concurrently.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from penguiflow.catalog import NodeSpec
from penguiflow.errors import ConfigurationError, InvalidTypeError, UsageError
from penguiflow.joins import JoinStrategy
from penguiflow.memory import MemoryKey
from penguiflow.resources import AsyncResource, aclose_resource
from penguiflow.runtime import CircuitBreaker
from penguiflow.state import require_capabilities

from ._actions import PlannerAction
from ._audit import acting_for, record_resume
from ._background_support import (
    background_catalog,
    background_enabled,
    background_guidance,
    without_task_tools,
)
from ._budgets import BudgetUsage, PlannerBudgets
from ._decide import ModelCallFailed, RepairFailed
from ._error_recovery import ErrorRecoveryConfig
from ._events import PlannerEventCallback, hook_sinks
from ._hints import PlanningHints
from ._joins import JoinChooser
from ._loop import SHIELD_GRACE_S, RunLoop
from ._memory_bridge import PlannerMemory
from ._owners import Owner, bind_owner
from ._parsing import DEFAULT_MAX_DEPTH, DEFAULT_MAX_REPLY_BYTES
from ._policies import ToolPolicy, apply_tool_policy, intersect_policies
from ._reflection import ReflectionConfig
from ._results import PlannerFinish, PlannerPause, PlannerPauseReason, token_ref
from ._run import RunState, restore_paused, resumed_run, take_paused
from ._settings import (
    PlannerSettings,
    build_catalog_from,
    built_from_config,
    check_unsupported,
    json_context,
    resolve_client,
)
from ._tool_config import ObservationGuardrailConfig, ToolExamplesConfig, ToolSearchConfig
from ._tool_search import ToolSearch
from ._trajectory import Trajectory, extract_background_results
from .llm_context_hooks import LLMContextHookInput, run_context_hooks
from .prompts import PromptTemplates

__all__ = ["ReactPlanner"]

logger = logging.getLogger("penguiflow.planner")

#: the run a tool is executing in (for `planner.pause()` called from inside a run)
_CURRENT_RUN: contextvars.ContextVar[RunLoop | None] = contextvars.ContextVar(
    "penguiflow_planner_run", default=None
)


class ReactPlanner(AsyncResource):
    """A model picks tools from a typed catalog, step by step, until it answers.

    Built like PenguiFlow 3.11's planner: `ReactPlanner(llm="gpt-4o-mini", catalog=...)` or
    `ReactPlanner(llm_client=my_client, nodes=[...], registry=registry, ...)`; every keyword of
    PenguiFlow's either works or raises `UnsupportedFeatureError` naming what to use instead.
    `await planner.run(query, llm_context=..., tool_context=...)` returns a `PlannerFinish`,
    or a `PlannerPause` when a tool asks a human; `await planner.resume(token, user_input)`
    goes on. `llm_context` is shown to the model (JSON only); `tool_context` only to tools.

    Ours, beyond PenguiFlow's keywords: `budgets=PlannerBudgets(...)` (the limits grouped, with
    a token and a cost budget); `join_strategy` (a join strategy by name for parallel plans
    that name none); `prompt_templates`; `middlewares` and `plugin_host` (event sinks);
    `max_concurrent_branches`; `max_reply_bytes`/`max_json_depth` (bounds on reading a reply).
    `run`/`resume` take `owner=`: who may resume a pause (else the run's memory key).

    `await planner.aclose()` (or `async with planner:`) closes what the planner made itself
    (its default state store, memory it built, the tool search index); objects passed in
    belong to the caller."""

    def __init__(
        self,
        llm: str | Mapping[str, Any] | Any | None = None,
        *,
        nodes: Sequence[Any] | None = None,
        catalog: Sequence[NodeSpec] | None = None,
        registry: Any | None = None,
        llm_client: Any | None = None,
        max_iters: int = 8,
        temperature: float = 0.0,
        json_schema_mode: bool = True,
        system_prompt_extra: str | None = None,
        token_budget: int | None = None,
        pause_enabled: bool = True,
        state_store: Any | None = None,
        artifact_store: Any | None = None,
        observation_guardrail: ObservationGuardrailConfig | None = None,
        summarizer_llm: str | Mapping[str, Any] | Any | None = None,
        planning_hints: Mapping[str, Any] | None = None,
        repair_attempts: int = 3,
        max_consecutive_arg_failures: int = 3,
        arg_fill_enabled: bool = True,
        deadline_s: float | None = None,
        hop_budget: int | None = None,
        time_source: Callable[[], float] | None = None,
        event_callback: PlannerEventCallback | None = None,
        llm_timeout_s: float = 360.0,
        llm_max_retries: int = 3,
        use_native_reasoning: bool = True,
        reasoning_effort: str | None = None,
        reasoning_display: Any = None,
        llm_fallback: Any = None,
        absolute_max_parallel: int = 50,
        reflection_config: ReflectionConfig | None = None,
        reflection_llm: str | Mapping[str, Any] | Any | None = None,
        tool_policy: ToolPolicy | None = None,
        stream_final_response: bool = False,
        final_response_model: type[BaseModel] | None = None,
        final_response_retries: int = 1,
        tool_call_mode: str = "prompted",
        llm_transport: str | None = None,
        short_term_memory: Any = None,
        background_tasks: Any = None,
        error_recovery: ErrorRecoveryConfig | None = None,
        multi_action_sequential: bool = False,
        multi_action_read_only_only: bool = True,
        multi_action_max_tools: int = 2,
        auto_seq_enabled: bool = False,
        auto_seq_execute: bool = False,
        auto_seq_read_only_only: bool = True,
        use_native_llm: bool = False,
        guardrail_gateway: Any = None,
        guardrail_conversation_history_turns: int = 1,
        tool_search: ToolSearchConfig | None = None,
        tool_examples: ToolExamplesConfig | None = None,
        skills: Any = None,
        skills_provider: Any = None,
        skills_provider_factory: Any = None,
        llm_context_hooks: Sequence[Any] | None = None,
        # -- ours ------------------------------------------------------------------------------
        budgets: PlannerBudgets | None = None,
        join_strategy: str | JoinStrategy | None = None,
        prompt_templates: PromptTemplates | None = None,
        middlewares: Sequence[Any] = (),
        plugin_host: Any = None,
        max_concurrent_branches: int | None = None,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        max_json_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        options = dict(locals())
        options.pop("self")
        check_unsupported(options)
        self._init_kwargs = options
        if reflection_config is not None and not isinstance(reflection_config, ReflectionConfig):
            raise InvalidTypeError(
                "reflection_config must be a ReflectionConfig (from penguiflow.planner), got "
                f"{type(reflection_config).__name__}"
            )
        main_llm = llm_client if llm_client is not None else llm
        client = resolve_client(
            main_llm,
            purpose="llm_client" if llm_client is not None else "llm",
            temperature=temperature,
            json_schema_mode=json_schema_mode,
            timeout_s=llm_timeout_s,
        )
        if client is None:
            raise ConfigurationError(
                "ReactPlanner needs a model: llm='<model name>' (resolved through an installed "
                "LLM adapter, e.g. penguiflow-openai) or llm_client=<a JSON LLM client>"
            )
        specs = build_catalog_from(
            nodes=nodes,
            registry=registry,
            catalog=catalog,
            default_loading_mode=(
                tool_search.default_loading_mode
                if tool_search is not None and tool_search.enabled
                else None
            ),
        )
        if background_enabled(background_tasks):
            # penguiflow-sessions runs background tasks: its `tasks.*` tools join the
            # catalog and the model is told how to use them (check_unsupported made sure it
            # is installed).
            specs = background_catalog(background_tasks, specs)
            system_prompt_extra = background_guidance(background_tasks, system_prompt_extra)
        if budgets is not None:
            given = {
                "max_iters": max_iters != 8,
                "hop_budget": hop_budget is not None,
                "deadline_s": deadline_s is not None,
            }
            clash = [name for name, set_ in given.items() if set_]
            if clash:
                raise ConfigurationError(
                    f"give the limits either as budgets=PlannerBudgets(...) or as keywords, not "
                    f"both ({', '.join(clash)} given with budgets=)"
                )
        else:
            budgets = PlannerBudgets(
                max_iters=max_iters, hop_budget=hop_budget, deadline_s=deadline_s
            )
        separate_reflection = reflection_config is not None and reflection_config.use_separate_llm
        self._settings = PlannerSettings(
            client=client,
            catalog=specs,
            budgets=budgets,
            temperature=temperature,
            json_schema_mode=json_schema_mode,
            system_prompt_extra=system_prompt_extra,
            token_budget=token_budget,
            pause_enabled=pause_enabled,
            summarizer_client=resolve_client(
                summarizer_llm,
                purpose="summarizer_llm",
                temperature=0.0,
                json_schema_mode=True,
                timeout_s=llm_timeout_s,
            ),
            reflection_client=resolve_client(
                reflection_llm,
                purpose="reflection_llm",
                temperature=0.0,
                json_schema_mode=True,
                timeout_s=llm_timeout_s,
            ),
            repair_attempts=repair_attempts,
            max_consecutive_arg_failures=max_consecutive_arg_failures,
            arg_fill_enabled=arg_fill_enabled,
            time_source=time_source or _monotonic,
            llm_timeout_s=llm_timeout_s,
            llm_max_retries=llm_max_retries,
            absolute_max_parallel=absolute_max_parallel,
            stream_final_response=stream_final_response,
            final_response_model=final_response_model,
            final_response_retries=final_response_retries,
            use_native_reasoning=use_native_reasoning,
            max_concurrent_branches=max_concurrent_branches,
            max_reply_bytes=max_reply_bytes,
            max_json_depth=max_json_depth,
            init_kwargs=options,
        )
        if separate_reflection and self._settings.reflection_client is None:
            raise ConfigurationError(
                "reflection_config.use_separate_llm=True needs reflection_llm= (a model name or "
                "a client)"
            )
        self._reflection = reflection_config
        self._reflection_client = (
            self._settings.reflection_client if separate_reflection else client
        )
        self._tool_policy = tool_policy
        self._background_tasks = background_tasks
        self._specs = apply_tool_policy(specs, tool_policy)
        self._hints = PlanningHints.from_mapping(
            planning_hints, tool_names=[spec.name for spec in self._specs]
        )
        self._tool_search = ToolSearch.build(tool_search, self._specs, policy=tool_policy)
        self._tool_examples = tool_examples
        self._observation_config = observation_guardrail or ObservationGuardrailConfig()
        self._error_recovery = error_recovery or ErrorRecoveryConfig()
        self._templates = prompt_templates or PromptTemplates()
        self._joins = JoinChooser(join_strategy)
        self._context_hooks = list(llm_context_hooks or ())
        #: rendered once: tool records by name (`_prompt.tool_records`), the answer's schema
        self._record_cache: dict[str, tuple[NodeSpec, dict[str, Any]]] = {}
        self._final_response_schema: dict[str, Any] | None = (
            final_response_model.model_json_schema() if final_response_model is not None else None
        )
        #: resources the planner made itself, closed by aclose()
        self._owned: list[Any] = [self._tool_search]
        # Clients built here from model names or config dicts (never the caller's objects).
        for source, made in (
            (main_llm, client),
            (summarizer_llm, self._settings.summarizer_client),
            (reflection_llm, self._settings.reflection_client),
        ):
            if made is not None and built_from_config(source):
                self._owned.append(made)
        if state_store is None:
            from penguiflow.state.in_memory import InMemoryStateStore

            state_store = InMemoryStateStore()
            self._owned.append(state_store)
        require_capabilities(
            state_store,
            feature="planner pause and resume",
            methods=["save_planner_state", "load_planner_state", "consume_planner_state"],
        )
        self.state_store = state_store
        self._keeps_events = callable(getattr(state_store, "save_planner_event", None))
        from .artifacts import NoOpArtifactStore, discover_artifact_store

        self.artifact_store = (
            artifact_store or discover_artifact_store(state_store) or NoOpArtifactStore()
        )
        self._memory = PlannerMemory.build(
            short_term_memory,
            summarizer_client=self._settings.summarizer_client or client,
            state_store=state_store,
            time_source=time_source,
        )
        self._owned.append(self._memory)
        self.event_callback = event_callback
        self.middlewares = list(middlewares)
        self._host = plugin_host
        self._hook_sinks: list[Any] | None = None
        #: one per tool whose node has a circuit breaker policy, shared by every run
        self._breakers = {
            spec.name: CircuitBreaker(spec.node.policy.circuit_breaker)
            for spec in specs
            if spec.node is not None and spec.node.policy.circuit_breaker is not None
        }
        self._session_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        #: bumped when the catalog changes (`replace_tools`, `extend_tool_catalog`): a run in
        #: progress rebuilds its `RunCatalog` at its next step when it differs from its own
        self._catalog_generation = 0

    # -- PenguiFlow's API ----------------------------------------------------------------------

    @property
    def catalog(self) -> list[NodeSpec]:
        """The tools this planner offers (after its `tool_policy`)."""
        return list(self._specs)

    def replace_tools(self, replaced: str | Iterable[str], specs: Sequence[NodeSpec]) -> list[str]:
        """Swap tools for `specs`: `replaced` is a namespace (`"github"`: every `github.*`
        tool, such as a connector's) or the exact names to take out. The `tool_policy`
        applies to the new specs; returns the names offered of them. Runs in progress see
        the change from their next step. A new name that clashes with a tool that stays
        raises `ConfigurationError`. See `penguiflow_mcp.MCPConnector.sync_tools` for a
        connector that keeps a planner up to date."""
        from .catalog_extension import replace_tool_catalog

        return replace_tool_catalog(self, replaced, specs)

    @property
    def budgets(self) -> PlannerBudgets:
        """This planner's limits on each run (read-only): `max_iters`, `hop_budget`,
        `deadline_s`, `max_tokens`, `cost_budget_usd`, whether they were given as keywords
        or as `budgets=PlannerBudgets(...)`. A UI shows what a run has left against them."""
        return self._settings.budgets

    async def memory_snapshot(
        self,
        *,
        memory_key: MemoryKey | None = None,
        tool_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """The short-term memory this planner keeps for a key, as JSON-able data; None when
        it has none (no memory configured, no key, nothing remembered yet). The key is
        resolved as `run()` resolves it: `memory_key`, else the one `tool_context` names
        through the memory's isolation paths. Reading changes nothing (a memory kept in the
        state store is read from there, so what a fork remembered is seen too)."""
        key = self._memory.resolve_key(memory_key, tool_context)
        if key is None:
            return None
        return await self._memory.snapshot(key)

    @property
    def join_strategy(self) -> str | JoinStrategy | None:
        """The join strategy for parallel plans that name none (None: PenguiFlow's
        observation of every branch, no join)."""
        return self._joins.default

    @join_strategy.setter
    def join_strategy(self, value: str | JoinStrategy | None) -> None:
        self._joins.default = value

    async def run(
        self,
        query: str,
        *,
        input_parts: Sequence[Any] | None = None,
        llm_context: Mapping[str, Any] | None = None,
        context_meta: Mapping[str, Any] | None = None,
        tool_context: Mapping[str, Any] | None = None,
        memory_key: MemoryKey | None = None,
        steering: Any = None,
        tool_visibility: Any = None,
        owner: Owner | None = None,
    ) -> PlannerFinish | PlannerPause:
        """Run `query` to an ending. `llm_context` (JSON) is shown to the model;
        `tool_context` (anything: clients, secrets, `session_id`, `trace_id`) only to tools.
        `owner` (a string, or a `MemoryKey`) is who may resume a pause of this run; without
        it the run's memory key is, and without either, whoever holds the token."""
        if not isinstance(query, str):
            raise InvalidTypeError(f"query must be a str, got {type(query).__name__}")
        if input_parts:
            from penguiflow.errors import UnsupportedFeatureError

            raise UnsupportedFeatureError(
                "run(input_parts=...): multimodal input is not supported by penguiflow-planner; "
                "describe the input in the query or in llm_context"
            )
        if context_meta is not None:
            warnings.warn(
                "context_meta is deprecated; use llm_context", DeprecationWarning, stacklevel=2
            )
            if llm_context is None:
                llm_context = context_meta
        context = json_context(llm_context, name="llm_context")
        tools = _tool_context(tool_context)
        key = self._memory.resolve_key(memory_key, tools)
        # A memory key given explicitly names the session (and owns the pause) even when
        # the planner has no short-term memory (then `key` is None).
        named = key if key is not None else memory_key
        session = _session_of(tools, named)
        async with self._session_lock(session):
            cleaned, background = extract_background_results(context)
            trajectory = Trajectory(query=query, llm_context=cleaned, tool_context=tools)
            trajectory.background_results.update(background)
            usage = BudgetUsage()
            usage.use_clock(self._settings.time_source)
            run = RunState(
                trajectory=trajectory,
                usage=usage,
                memory_key=key,
                owner=bind_owner(owner, named),
                trace_id=_text(tools.get("trace_id")),
                session_id=session,
            )
            loop = RunLoop(self, run, visibility=tool_visibility, steering=steering)
            if self._context_hooks:
                # Run only, not on resume (PenguiFlow's); their events are the run's.
                patch = await run_context_hooks(
                    self._context_hooks,
                    LLMContextHookInput(
                        query=query, llm_context=dict(cleaned or {}), tool_context=tools,
                        memory_key=key,
                    ),
                    emit=loop.emit,
                )  # fmt: skip
                if patch:
                    trajectory.llm_context = {**(trajectory.llm_context or {}), **patch}
            with acting_for(named):  # the audit trail's tenant and user
                return await self._execute(loop)

    async def resume(
        self,
        token: str,
        user_input: str | None = None,
        *,
        tool_context: Mapping[str, Any] | None = None,
        memory_key: MemoryKey | None = None,
        steering: Any = None,
        tool_visibility: Any = None,
        owner: Owner | None = None,
    ) -> PlannerFinish | PlannerPause:
        """Continue a paused run: the model plans again from where it paused, with
        `user_input` (the human's answer) added to what it sees. The tool that paused does not
        continue. `tool_context` replaces the one saved with the pause (pass it again when it
        held anything that is not JSON: that part is never saved).

        `owner` must be the paused run's owner: its `owner=` or, without one, its memory key
        (given as `memory_key=`, or derived from `tool_context` as `run` did). Anyone else gets
        `OwnerMismatchError`, and the token stays usable. A token works once: an unknown or
        used one raises `UnknownNameError` (a `KeyError`, as PenguiFlow raises). When the
        continuation fails before it calls a tool, answers or pauses again (its model call
        raises, the caller cancels it), the paused state goes back under the same token; such
        a finish has `metadata["resumable"] = True`."""
        if user_input is not None and not isinstance(user_input, str):
            raise InvalidTypeError(
                f"user_input must be a str or None, got {type(user_input).__name__}"
            )
        tools = _tool_context(tool_context) if tool_context is not None else None
        key = self._memory.resolve_key(memory_key, tools) if memory_key or tools else None
        ref = token_ref(token)
        claimant = owner if owner is not None else (key if key is not None else memory_key)
        audit_who: dict[str, Any] = {
            "token": token, "ref": ref, "user_input": user_input, "tool_context": tools,
            "memory_key": key if key is not None else memory_key, "store": self.state_store,
        }  # fmt: skip
        try:
            taken = await take_paused(self.state_store, token, claimant, ref)
        except Exception as refused:  # an unknown or used token, or someone else's pause
            await record_resume(outcome="refused", trace_id=None, error=refused, **audit_who)
            raise
        try:
            run = resumed_run(taken, tool_context=tools)
        except BaseException:
            await self._restore(token, taken, ref)  # unreadable here; perhaps not elsewhere
            raise
        acting = run.memory_key or audit_who["memory_key"]
        audit_who.update(tool_context=run.trajectory.tool_context, memory_key=acting)
        await record_resume(outcome="ok", trace_id=run.trace_id, **audit_who)
        run.usage.use_clock(self._settings.time_source)
        run.usage.restart_clock()
        run.trajectory.resume_user_input = user_input
        async with self._session_lock(run.session_id):
            loop = RunLoop(self, run, visibility=tool_visibility, steering=steering)
            try:
                with acting_for(acting):
                    outcome = await self._execute(loop, resumed=ref, user_input=user_input)
            except BaseException:
                # The caller cancelled the continuation: the paused run is not lost with it
                # (unless the continuation already called a tool, answered or paused again).
                if run.restorable:
                    await self._restore(token, taken, ref)
                raise
        if isinstance(outcome, PlannerFinish) and run.error_ending and run.restorable:
            outcome.metadata["resumable"] = await self._restore(token, taken, ref)
        return outcome

    async def pause(
        self, reason: PlannerPauseReason, payload: Mapping[str, Any] | None = None
    ) -> PlannerPause:
        """Pause the run in progress (call it from a tool, or from code the run awaits) and
        return its `PlannerPause`; the run itself ends with that pause when the tool returns.
        Outside a run: `UsageError`."""
        if not self._settings.pause_enabled:
            raise UsageError("pause/resume is disabled for this planner (pause_enabled=False)")
        loop = _CURRENT_RUN.get()
        if loop is None or loop.planner is not self:
            raise UsageError(
                "planner.pause() works only inside a run of this planner (from a tool); "
                "tools usually call ctx.pause(reason, payload)"
            )
        outcome = await loop.pause(reason, dict(payload or {}))
        if not isinstance(outcome, PlannerPause):
            raise UsageError("the pause could not be saved; see the run's finish for why")
        loop.pending_pause = outcome  # the run ends with it once the tool returns
        return outcome

    async def step(self, trajectory: Trajectory) -> PlannerAction:
        """One decision of the model for `trajectory` (nothing is executed). Raises
        `LLMError`-derived errors when the model call fails and `ActionError` when its replies
        stay unusable."""
        from ._parsing import ActionError

        usage = BudgetUsage()
        usage.use_clock(self._settings.time_source)
        run = RunState(trajectory=trajectory, usage=usage, memory_key=None, memory_loaded=True)
        loop = RunLoop(self, run, visibility=None, steering=None)
        try:
            return await loop.decider.decide(trajectory, loop._inputs(run.next_action_seq()))
        except ModelCallFailed as failed:
            raise failed.cause from None
        except RepairFailed as failed:
            raise ActionError(failed.errors) from None

    def fork(
        self,
        *,
        catalog_filter: Callable[[NodeSpec], bool] | None = None,
        tool_policy: ToolPolicy | None = None,
        inherit_policy: bool = True,
        background_tasks: Any = "inherit",
    ) -> ReactPlanner:
        """A new, independent planner built from this one's keywords: the same model, stores
        and memory configuration; `catalog_filter` keeps only the tools it accepts;
        `tool_policy` narrows further (intersected with this planner's when `inherit_policy`).
        The event callback is not inherited."""
        kwargs = dict(self._init_kwargs)
        kwargs["event_callback"] = None
        specs = [
            spec
            for spec in self._settings.catalog
            if catalog_filter is None or catalog_filter(spec)
        ]
        kwargs["catalog"] = specs
        kwargs["nodes"] = kwargs["registry"] = None
        kwargs["tool_policy"] = (
            intersect_policies(self._tool_policy, tool_policy) if inherit_policy else tool_policy
        )
        if background_tasks != "inherit":
            kwargs["background_tasks"] = background_tasks
        if not background_enabled(kwargs.get("background_tasks")):
            # A child without background tasks (a sub-agent) gets no `tasks.*` tools.
            kwargs["catalog"] = without_task_tools(specs)
        kwargs["llm_client"] = self._settings.client
        kwargs["llm"] = None
        if kwargs.get("state_store") is None:
            kwargs["state_store"] = self.state_store  # a child resumes the parent's pauses
        return ReactPlanner(**kwargs)

    async def aclose(self) -> None:
        """Close what the planner made (idempotent); runs in progress are not affected."""
        owned, self._owned = self._owned, []
        for resource in owned:
            await aclose_resource(resource)

    # -- helpers -----------------------------------------------------------------------------

    async def _execute(
        self, loop: RunLoop, *, resumed: str | None = None, user_input: str | None = None
    ) -> PlannerFinish | PlannerPause:
        token = _CURRENT_RUN.set(loop)
        try:
            return await loop.execute(resumed=resumed, user_input=user_input)
        finally:
            _CURRENT_RUN.reset(token)

    def _session_lock(self, session: str | None) -> Any:
        if session is None:
            return _NO_LOCK
        lock = self._session_locks.get(session)
        if lock is None:
            lock = asyncio.Lock()
            self._session_locks[session] = lock
        return lock

    async def _restore(self, token: str, state: dict[str, Any], ref: str) -> bool:
        return await restore_paused(self.state_store, token, state, ref, SHIELD_GRACE_S)

    def _sinks(self) -> list[Any]:
        if self._hook_sinks is None:
            self._hook_sinks = hook_sinks(self, self._host)
        return [*self.middlewares, *self._hook_sinks]


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


def _monotonic() -> float:
    import time

    return time.monotonic()


def _tool_context(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidTypeError(
            f"tool_context must be a mapping (a dict), got {type(value).__name__}"
        )
    return dict(value)


def _text(value: Any) -> str | None:
    return str(value) if value is not None and value != "" else None


def _session_of(tool_context: Mapping[str, Any], key: MemoryKey | None) -> str | None:
    session = _text(tool_context.get("session_id"))
    if session is None and key is not None:
        session = key.session_id
    return session
