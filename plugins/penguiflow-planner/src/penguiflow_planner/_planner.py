"""`ReactPlanner`: the loop that lets a model drive typed tools to an answer.

Concurrency is structured (anyio, on the asyncio backend): a run's deadline is a cancel scope
around its steps, a parallel plan runs in a task group, and nothing a run starts outlives it.

`run()` and `resume()` return a typed ending whatever happens inside the run (a client that
raises the wrong error, a reply that nests too deep, a tool that raises `CancelledError`, a
bug in a strategy): only the caller's own cancellation, and errors in the arguments given to
them, leave as exceptions.
"""

from __future__ import annotations

import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
from pydantic import BaseModel

from penguiflow.catalog import NodeSpec
from penguiflow.errors import (
    ConfigurationError,
    InvalidTypeError,
    describe_exception,
)
from penguiflow.joins import (
    BranchOutcome,
    JoinRequest,
    JoinStrategy,
)
from penguiflow.llm import JSONLLMClient, LLMError
from penguiflow.memory import ConversationTurn, MemoryKey, MemoryStrategy, NoMemory
from penguiflow.resources import AsyncResource, aclose_resource
from penguiflow.runtime import CircuitBreaker
from penguiflow.state import require_capabilities

from ._actions import FinishReason, PlannerAction, PlannerFinish, PlannerPause, token_ref
from ._budgets import BudgetUsage, PlannerBudgets
from ._events import PlannerEvent, hook_sinks, publish
from ._executor import PauseRequested, ToolContext, run_tool
from ._failures import describe_failure, is_failure
from ._joins import JoinChooser
from ._owners import Owner, bind_owner
from ._parsing import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_REPLY_BYTES,
    MAX_DEPTH_LIMIT,
    ActionError,
    parse_action,
)
from ._prompt import observation_text, step_messages, system_prompt
from ._reflection import ReflectionConfig, review
from ._run import RunState, paused_state, restore_paused, resumed_run, take_paused
from ._trajectory import Trajectory, TrajectoryStep

__all__ = ["ReactPlanner"]

logger = logging.getLogger("penguiflow.planner")

#: the old name of the run's state, which benchmarks/planner_parallel.py imports
_Run = RunState

#: the longest that work shielded from the deadline may take: the last events (an observer
#: that hangs must not hold the run), saving a pause, restoring a paused state
_SHIELD_GRACE_S = 5.0


class ReactPlanner(AsyncResource):
    """An LLM picks tools from `catalog` until it answers or a budget ends the run.

    `await planner.run(query, context=..., memory_key=..., owner=...)` returns a
    `PlannerFinish` or, when a tool or a join asks a human, a `PlannerPause` whose token
    `resume(token, decision, owner=...)` takes (once, and only from the run's owner). One
    planner serves any number of concurrent runs.

    `max_reply_bytes` and `max_json_depth` bound the work of reading a model reply: a reply
    over either is a repair round (the model is told the limit), never a stalled loop.

    `await planner.aclose()` (or `async with planner:`) closes what the planner made itself: a
    memory strategy given by name (cancelling its background summaries) and its default
    in-memory state store. Objects passed in belong to the caller, who closes them."""

    def __init__(
        self,
        llm: JSONLLMClient,
        catalog: Sequence[NodeSpec],
        *,
        budgets: PlannerBudgets | None = None,
        max_repairs: int = 3,
        max_parallel: int = 4,
        join_strategy: str | JoinStrategy = "append",
        plugin_host: Any = None,
        memory: MemoryStrategy | str | None = None,
        memory_options: Mapping[str, Any] | None = None,
        state_store: Any = None,
        answer_model: type[BaseModel] | None = None,
        reflection: ReflectionConfig | None = None,
        instructions: str | None = None,
        constraints: Sequence[str] = (),
        event_callback: Callable[[PlannerEvent], Awaitable[None] | None] | None = None,
        middlewares: Sequence[Any] = (),
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        max_json_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        if not catalog:
            raise ConfigurationError("ReactPlanner needs at least one tool in its catalog")
        if max_reply_bytes < 1:
            raise ConfigurationError(f"max_reply_bytes must be >= 1, got {max_reply_bytes}")
        if not 1 <= max_json_depth <= MAX_DEPTH_LIMIT:
            raise ConfigurationError(
                f"max_json_depth must be between 1 and {MAX_DEPTH_LIMIT} (the JSON decoder "
                f"recurses once per level), got {max_json_depth}"
            )
        self.max_reply_bytes = max_reply_bytes
        self.max_json_depth = max_json_depth
        self.llm = llm
        self.catalog = {spec.name: spec for spec in catalog}
        if len(self.catalog) != len(catalog):
            raise ConfigurationError("two tools in the catalog share a name; names must be unique")
        self.budgets = budgets or PlannerBudgets()
        if max_repairs < 0 or max_parallel < 1:
            raise ConfigurationError("max_repairs must be >= 0 and max_parallel >= 1")
        self.max_repairs = max_repairs
        self.max_parallel = max_parallel
        self._host = plugin_host
        self._joins = JoinChooser(join_strategy)
        #: resources the planner made itself, closed by aclose()
        self._owned: list[Any] = []
        self.memory: MemoryStrategy = (
            _memory_by_name(memory, dict(memory_options or {}), plugin_host)
            if isinstance(memory, str)
            else memory or NoMemory()
        )
        if isinstance(memory, str):
            self._owned.append(self.memory)
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
        self.answer_model = answer_model
        self.reflection = reflection
        self.instructions = instructions
        self.constraints = tuple(constraints)
        self.event_callback = event_callback
        self.middlewares = list(middlewares)
        #: one per tool whose node has a circuit breaker policy, shared by every run
        self._breakers = {
            spec.name: CircuitBreaker(spec.node.policy.circuit_breaker)
            for spec in catalog
            if spec.node is not None and spec.node.policy.circuit_breaker is not None
        }
        self._hook_sinks: list[Any] | None = None

    # -- public API --------------------------------------------------------------------------

    @property
    def join_strategy(self) -> str | JoinStrategy:
        """The join for plans that name none: a strategy's name, or a strategy object."""
        return self._joins.default

    @join_strategy.setter
    def join_strategy(self, value: str | JoinStrategy) -> None:
        self._joins.default = value

    async def aclose(self) -> None:
        """Close what the planner made (idempotent); runs in progress are not affected."""
        owned, self._owned = self._owned, []
        for resource in owned:
            await aclose_resource(resource)

    async def run(
        self,
        query: str,
        *,
        context: Mapping[str, Any] | None = None,
        memory_key: MemoryKey | None = None,
        owner: Owner | None = None,
        on_answer_chunk: Callable[[str, bool], Awaitable[None] | None] | None = None,
    ) -> PlannerFinish | PlannerPause:
        """Run `query` to an ending. `owner` (a string, or a `MemoryKey`) is who may resume a
        pause of this run; without it the run's `memory_key` is, and without either, whoever
        holds the token."""
        run = RunState(
            trajectory=Trajectory(query=query, context=dict(context or {})),
            usage=BudgetUsage(),
            memory_key=memory_key,
            history=None,
            owner=bind_owner(owner, memory_key),
        )
        return await self._loop(run, on_answer_chunk)

    async def resume(
        self,
        token: str,
        decision: Any,
        *,
        owner: Owner | None = None,
        on_answer_chunk: Callable[[str, bool], Awaitable[None] | None] | None = None,
    ) -> PlannerFinish | PlannerPause:
        """Continue a paused run; `decision` becomes the result of the step that paused.

        `owner` must be the paused run's owner: the `owner=` its `run()` had or, without one,
        its `memory_key` (None for a run that had neither). Anyone else gets
        `OwnerMismatchError`, and the token stays usable. A token works once: an unknown or
        used one raises `UnknownNameError` (a `KeyError`). When the continuation fails before
        it calls a tool, answers or pauses again (its model call raises, the caller cancels
        it), the paused state goes back under the same token, to be resumed again; such a
        finish has `metadata["resumable"] = True`."""
        ref = token_ref(token)
        taken = await take_paused(self.state_store, token, owner, ref)
        try:
            run = resumed_run(taken)
        except BaseException:
            await self._restore(token, taken, ref)  # unreadable here; perhaps not elsewhere
            raise
        run.usage.restart_clock()
        pending = taken.get("pending") or {}
        run.trajectory.add(
            TrajectoryStep(kind="resume", action=pending.get("action"), observation=decision)
        )
        try:
            outcome = await self._loop(run, on_answer_chunk, resumed=ref)
        except BaseException:
            # The caller cancelled the continuation: the paused run is not lost with it
            # (unless the continuation already called a tool, answered or paused again).
            if run.restorable:
                await self._restore(token, taken, ref)
            raise
        if isinstance(outcome, PlannerFinish) and run.error_ending and run.restorable:
            outcome.metadata["resumable"] = await self._restore(token, taken, ref)
        return outcome

    async def _restore(self, token: str, state: dict[str, Any], ref: str) -> bool:
        return await restore_paused(self.state_store, token, state, ref, _SHIELD_GRACE_S)

    # -- the loop ----------------------------------------------------------------------------

    async def _loop(
        self,
        run: RunState,
        on_answer_chunk: Callable[[str, bool], Awaitable[None] | None] | None,
        *,
        resumed: str | None = None,
    ) -> PlannerFinish | PlannerPause:
        """The run's steps under its deadline. The deadline is a cancel scope: when it passes,
        whatever is in flight (the memory read, the model call, tools and their retries, a
        join, the answer being streamed, an observer) is cancelled and awaited, and the run
        ends with reason `deadline`. `resumed` is the pause reference of a resumed run."""
        left = run.usage.deadline_left_s(self.budgets)
        with anyio.CancelScope(deadline=anyio.current_time() + left):
            try:
                if resumed is not None:
                    await self._emit("resume", run, {"pause_ref": resumed})
                return await self._steps(run, on_answer_chunk)
            except BaseException as exc:
                if not is_failure(exc):
                    raise  # a cancellation (the deadline's, the caller's), KeyboardInterrupt
                return await self._crashed(run, exc)
        # Only the deadline scope's own cancellation gets here; the caller cancelling the run
        # propagates (after every branch in flight has been cancelled and awaited).
        interrupted = {"interrupted": run.in_flight} if run.in_flight else {}
        return await self._out_of_budget(run, "deadline", **interrupted)

    async def _steps(
        self, run: RunState, on_answer_chunk: Callable[[str, bool], Awaitable[None] | None] | None
    ) -> PlannerFinish | PlannerPause:
        system = system_prompt(
            list(self.catalog.values()),
            parallel=self.max_parallel > 1,
            joins=self._join_names(),
            constraints=self._constraints(),
            instructions=self.instructions,
        )
        if run.history is None:
            # Read here, not in run(): a memory (or its store) that hangs is cut by the deadline.
            run.in_flight = "memory"
            run.history = (await self.memory.snapshot(run.memory_key)).to_messages()
        while True:
            run.in_flight = None
            spent = run.usage.exhausted(self.budgets)
            if spent is not None:
                return await self._out_of_budget(run, spent)
            await self._emit("step_start", run)
            started = time.perf_counter()
            messages = step_messages(system, run.history, run.trajectory)
            run.in_flight = "model call"
            try:
                response = await self.llm.complete(messages=messages)
            except BaseException as exc:
                if not is_failure(exc):
                    raise
                return await self._model_failed(run, exc)
            run.usage.iterations += 1
            usage: dict[str, int] | None = None
            if response.usage is not None:
                run.usage.tokens += response.usage.total_tokens
                usage = {
                    "input_tokens": response.usage.input_tokens,
                    "output_tokens": response.usage.output_tokens,
                }
            run.usage.cost_usd += response.cost_usd or 0.0
            errors: list[str] | None = None
            try:
                action = parse_action(
                    response.text,
                    self.catalog,
                    self.answer_model,
                    max_reply_bytes=self.max_reply_bytes,
                    max_depth=self.max_json_depth,
                )
                chosen_join = self._joins.named_in(action)
            except ActionError as exc:
                errors = exc.errors
            except Exception as exc:  # reading a reply must not end the run: ask again
                logger.exception("reading the model's reply failed")
                errors = [
                    f"the reply could not be read ({type(exc).__name__}: "
                    f"{describe_exception(exc)}); reply with one short JSON object"
                ]
            if errors is not None:
                run.repairs += 1
                # Kept clipped: a reply refused for its size must not grow every later prompt.
                reply = observation_text(response.text)
                run.trajectory.add(
                    TrajectoryStep(
                        kind="repair",
                        observation={"reply": reply, "errors": errors},
                        error="; ".join(errors),
                        usage=usage,
                    )
                )
                await self._emit("repair", run, {"errors": errors, "attempt": run.repairs})
                if run.repairs > self.max_repairs:
                    return await self._end(
                        run,
                        "repair_failed",
                        {"errors": errors, "last_reply": reply},
                        error=f"the model's reply was unusable {run.repairs} times in a row",
                    )
                continue
            run.repairs = 0
            if action.is_finish:
                outcome = await self._finish(run, action, usage, on_answer_chunk)
                if outcome is not None:
                    return outcome
                continue
            result = await self._act(run, action, usage, started, chosen_join)
            if result is not None:
                return result

    async def _model_failed(self, run: RunState, exc: BaseException) -> PlannerFinish:
        if not isinstance(exc, LLMError):
            # Clients report failures as LLMError; anything else is likely a client bug, so
            # its traceback goes to the log. The run ends the same way.
            name = type(exc).__name__
            logger.error("the LLM client raised %s, not an LLMError", name, exc_info=exc)
        run.error_ending = True
        # An LLMError's text says it all (the existing format); anything else shows its type.
        text = describe_exception(exc) if isinstance(exc, LLMError) else describe_failure(exc)
        return await self._end(
            run, "no_path", run.trajectory.last_observation(), error=f"model call failed: {text}"
        )

    async def _crashed(self, run: RunState, exc: BaseException) -> PlannerFinish:
        """The ending of a run that something failed in unexpectedly (a bug, here or in a
        strategy, a store or an observer): reason `error`, the traceback logged."""
        logger.error("planner run %s failed unexpectedly", run.run_id, exc_info=exc)
        run.error_ending = True
        where = f" during {run.in_flight}" if run.in_flight else ""
        return await self._end(
            run,
            "error",
            run.trajectory.last_observation(),
            error=f"the run failed{where}: {describe_failure(exc)}",
        )

    async def _act(
        self,
        run: RunState,
        action: PlannerAction,
        usage: dict[str, int] | None,
        started: float,
        chosen_join: JoinStrategy | None,
    ) -> PlannerFinish | PlannerPause | None:
        calls = (
            [(action.next_node, action.args)]
            if action.next_node is not None
            else [(call.node, call.args) for call in action.plan or ()]
        )
        left = run.usage.hops_left(self.budgets)
        if left is not None and len(calls) > left:
            return await self._out_of_budget(run, "hop_budget", planned=len(calls))
        record = action.model_dump(exclude_none=True)
        if action.next_node is not None:
            name = action.next_node
            await self._emit("tool_call", run, {"tool": name})
            ctx = ToolContext(tool=name, context=run.trajectory.context)
            run.in_flight = f"tool {name}"
            run.acted = True
            try:
                outcome = await run_tool(
                    self.catalog[name], action.args, ctx, self._breakers.get(name)
                )
            except PauseRequested as pause:
                run.usage.hops += 1
                return await self._pause(run, record, pause.reason, pause.payload)
            run.usage.hops += 1
            run.trajectory.add(
                TrajectoryStep(
                    kind="tool",
                    action=record,
                    observation=outcome.output if outcome.ok else None,
                    error=None if outcome.ok else f"{outcome.error_type}: {outcome.error}",
                    duration_s=time.perf_counter() - started,
                    usage=usage,
                )
            )
            await self._emit("step_finish", run, {"tool": name, "ok": outcome.ok})
            return None
        strategy = chosen_join or self._strategy(action.join)
        run.in_flight = f"parallel tools {', '.join(name for name, _ in calls)}"
        run.acted = True
        outcomes = await self._parallel(run, calls)
        run.usage.hops += len(calls)
        run.in_flight = "join"
        joined = await strategy.join(
            JoinRequest(branches=list(outcomes), expected_count=len(calls))
        )
        if joined.pause is not None:
            return await self._pause(
                run, {**record, "join_observation": joined.observation}, joined.pause.reason,
                joined.pause.payload,
            )  # fmt: skip
        run.trajectory.add(
            TrajectoryStep(
                kind="parallel",
                action=record,
                observation=joined.observation,
                duration_s=time.perf_counter() - started,
                usage=usage,
            )
        )
        failed = sum(1 for o in outcomes if not o.ok)
        await self._emit("step_finish", run, {"parallel": len(calls), "failed": failed})
        return None

    async def _parallel(
        self, run: RunState, calls: list[tuple[str, dict[str, Any]]]
    ) -> list[BranchOutcome]:
        """Every call of a plan, at most `max_parallel` at once, in one task group: when the
        run is cancelled or its deadline passes, every branch is cancelled and awaited before
        the cancellation goes on. A failing branch is an outcome, never a failed group.

        The bound is a pool of `max_parallel` workers taking calls in plan order (the run's
        own task is one of them), not a task and a `CapacityLimiter` per call: the same bound
        and start order at a fraction of the cost (benchmarks/planner_parallel.py)."""
        outcomes: list[BranchOutcome | None] = [None] * len(calls)
        pending = iter(enumerate(calls))  # shared by the workers; next() never awaits

        async def worker() -> None:
            for index, (name, args) in pending:
                outcomes[index] = await self._branch(run, name, args)

        workers = min(self.max_parallel, len(calls))
        if workers == 1:
            await worker()  # one at a time: no task group needed (it costs ~20us even empty)
        else:
            async with anyio.create_task_group() as group:
                for number in range(1, workers):
                    group.start_soon(worker, name=f"penguiflow-planner:branch-worker-{number}")
                await worker()
        return [outcome for outcome in outcomes if outcome is not None]

    async def _branch(self, run: RunState, name: str, args: dict[str, Any]) -> BranchOutcome:
        await self._emit("tool_call", run, {"tool": name, "parallel": True})
        ctx = ToolContext(tool=name, context=run.trajectory.context)
        try:
            return await run_tool(self.catalog[name], args, ctx, self._breakers.get(name))
        except PauseRequested as pause:
            return BranchOutcome(
                tool=name,
                args=args,
                ok=False,
                error=f"asked for a pause ({pause.reason}), which a parallel branch cannot do; "
                "call the tool on its own",
                error_type="PauseInParallel",
            )
        except Exception as exc:  # run_tool reports tool errors; this is anything else
            logger.exception("parallel branch %s failed outside its tool", name)
            return BranchOutcome(
                tool=name,
                args=args,
                ok=False,
                error=describe_exception(exc),
                error_type=type(exc).__name__,
            )

    async def _finish(
        self,
        run: RunState,
        action: PlannerAction,
        usage: dict[str, int] | None,
        on_answer_chunk: Callable[[str, bool], Awaitable[None] | None] | None,
    ) -> PlannerFinish | None:
        answer = action.args["answer"]
        if self.reflection is not None and run.reflections < self.reflection.max_rounds:
            run.in_flight = "reflection"
            critique = await review(self.reflection, self.llm, run.trajectory.query, answer)
            if critique is not None and not critique.approve:
                run.reflections += 1
                run.trajectory.add(
                    TrajectoryStep(
                        kind="reflection",
                        action=action.model_dump(exclude_none=True),
                        observation=critique.feedback or "rejected without feedback",
                        usage=usage,
                    )
                )
                await self._emit("reflection", run, {"feedback": critique.feedback})
                return None
        run.trajectory.add(
            TrajectoryStep(kind="finish", action=action.model_dump(exclude_none=True), usage=usage)
        )
        text = answer if isinstance(answer, str) else str(answer)
        run.in_flight = "answer"
        run.settled = True
        if on_answer_chunk is not None:
            await _stream_answer(text, on_answer_chunk)
        extra: dict[str, Any] = {}
        try:
            await self.memory.add_turn(
                run.memory_key, ConversationTurn(user=run.trajectory.query, assistant=text)
            )
        except Exception as exc:  # the answer stands; that it was not remembered is reported
            logger.warning("the answer was not remembered: %s", describe_exception(exc))
            extra["memory_error"] = describe_failure(exc)
        return await self._end(run, "answer_complete", answer, thought=action.thought, **extra)

    # -- endings -----------------------------------------------------------------------------

    async def _out_of_budget(
        self, run: RunState, reason: FinishReason, **extra: Any
    ) -> PlannerFinish:
        with anyio.move_on_after(_SHIELD_GRACE_S, shield=True):  # decided: see _end
            await self._emit("budget", run, {"reason": reason, **extra})
        best = run.trajectory.last_observation()
        return await self._end(run, reason, best, error=f"budget exhausted: {reason}", **extra)

    async def _end(
        self,
        run: RunState,
        reason: FinishReason,
        payload: Any,
        *,
        thought: str = "",
        error: str | None = None,
        **extra: Any,
    ) -> PlannerFinish:
        metadata: dict[str, Any] = {
            "run_id": run.run_id,
            "usage": run.usage.model_dump(exclude={"elapsed_before_s"})
            | {"elapsed_s": round(run.usage.elapsed_s(), 3)},
            "trajectory": run.trajectory.model_dump(mode="json"),
            **extra,
        }
        if error is not None:
            metadata["error"] = error
        # The ending is decided: the deadline must not cut its report in half (a finish event
        # sent twice, or a first one lost), so it is shielded from the deadline scope; for
        # `_SHIELD_GRACE_S` at most, so that an observer that hangs cannot hold the run.
        with anyio.move_on_after(_SHIELD_GRACE_S, shield=True):
            await self._emit("finish", run, {"reason": reason})
        return PlannerFinish(reason=reason, payload=payload, thought=thought, metadata=metadata)

    async def _pause(
        self, run: RunState, action: dict[str, Any], reason: str, payload: Mapping[str, Any]
    ) -> PlannerPause | PlannerFinish:
        token = secrets.token_hex(16)  # 128 random bits: the pause's bearer secret
        run.settled = True
        run.usage.freeze_clock()
        run.trajectory.add(TrajectoryStep(kind="pause", action=action, observation=dict(payload)))
        state = paused_state(run, action, reason)
        # Shielded from the deadline: a pause whose state was saved must reach the caller with
        # its token, or the saved state could never be resumed. Bounded, for a store that
        # hangs; a pause not saved in time ends the run instead (an unknown token is useless).
        with anyio.move_on_after(_SHIELD_GRACE_S, shield=True) as saving:
            await self.state_store.save_planner_state(token, state)
        if saving.cancelled_caught:
            run.error_ending = True
            return await self._end(
                run,
                "error",
                run.trajectory.last_observation(),
                error=f"saving the paused state took over {_SHIELD_GRACE_S:g}s; the run "
                "cannot be resumed",
            )
        # Its own grace: an observer that hangs must not cost a pause already saved. Events
        # never carry the token (it would reach every sink and log): a digest of it.
        with anyio.move_on_after(_SHIELD_GRACE_S, shield=True):
            await self._emit("pause", run, {"reason": reason, "pause_ref": token_ref(token)})
        return PlannerPause(token=token, reason=reason, payload=dict(payload))

    # -- helpers -----------------------------------------------------------------------------

    def _strategy(self, name: str | None) -> JoinStrategy:
        return self._joins.get(name)

    def _join_names(self) -> list[str]:
        return self._joins.names()

    def _constraints(self) -> list[str]:
        budgets = self.budgets
        found = list(self.constraints)
        found.append(f"at most {budgets.max_iters} steps")
        if budgets.hop_budget is not None:
            found.append(f"at most {budgets.hop_budget} tool calls")
        return found

    def _sinks(self) -> list[Any]:
        if self._hook_sinks is None:
            self._hook_sinks = hook_sinks(self, self._host)
        return [*self.middlewares, *self._hook_sinks]

    async def _emit(self, kind: str, run: RunState, data: dict[str, Any] | None = None) -> None:
        await publish(
            kind,
            run_id=run.run_id,
            iteration=run.usage.iterations,
            data=data or {},
            sinks=self._sinks(),
            callback=self.event_callback,
        )


def _memory_by_name(name: str, options: dict[str, Any], host: Any) -> MemoryStrategy:
    """The `penguiflow.memory_strategies` driver installed as `name`, built with `options`.

    Memory strategies are chosen by name, so they are drivers only, never hook contributions:
    `host` plays no part (the parameter stays for the caller's sake)."""
    from penguiflow.plugins import resolve_driver

    strategy = resolve_driver("memory_strategy", name, **options)
    if not isinstance(strategy, MemoryStrategy):
        raise InvalidTypeError(
            f"memory strategy {name!r} built {strategy!r}, which lacks add_turn/snapshot/clear"
        )
    return strategy


async def _stream_answer(
    text: str, sink: Callable[[str, bool], Awaitable[None] | None], size: int = 32
) -> None:
    pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    for index, piece in enumerate(pieces):
        result = sink(piece, index == len(pieces) - 1)
        if inspect.isawaitable(result):
            await result
