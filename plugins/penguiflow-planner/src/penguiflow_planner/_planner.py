"""`ReactPlanner`: the loop that lets a model drive typed tools to an answer.

Concurrency is structured (anyio, on the asyncio backend): a run's deadline is a cancel scope
around its steps, a parallel plan runs in a task group, and nothing a run starts outlives it.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import BaseModel

from penguiflow.catalog import NodeSpec
from penguiflow.errors import (
    ConfigurationError,
    InvalidTypeError,
    UnknownNameError,
    describe_exception,
)
from penguiflow.joins import (
    BranchOutcome,
    JoinRequest,
    JoinStrategy,
    get_join_strategy,
    join_strategies,
)
from penguiflow.llm import JSONLLMClient, LLMError, LLMMessage
from penguiflow.memory import ConversationTurn, MemoryKey, MemoryStrategy, NoMemory
from penguiflow.metrics import FlowEvent
from penguiflow.resources import AsyncResource, aclose_resource
from penguiflow.runtime import CircuitBreaker
from penguiflow.state import require_capabilities

from ._actions import FinishReason, PlannerAction, PlannerFinish, PlannerPause
from ._budgets import BudgetUsage, PlannerBudgets
from ._executor import PauseRequested, ToolContext, run_tool
from ._parsing import ActionError, parse_action
from ._prompt import step_messages, system_prompt
from ._trajectory import Trajectory, TrajectoryStep

__all__ = ["Critique", "PlannerEvent", "ReactPlanner", "ReflectionConfig"]

logger = logging.getLogger("penguiflow.planner")

_STATE_VERSION = 1


class Critique(BaseModel):
    """What the reviewer says about an answer."""

    approve: bool
    feedback: str = ""


@dataclass(frozen=True, slots=True)
class ReflectionConfig:
    """Ask a reviewer (the planner's model, or `critic`) about each answer; a rejected answer
    goes back for another round, at most `max_rounds` times."""

    max_rounds: int = 1
    critic: JSONLLMClient | None = None
    instructions: str = (
        "You review answers. Approve an answer that fully and correctly answers the task; "
        "otherwise say what is missing."
    )


@dataclass(frozen=True, slots=True)
class PlannerEvent:
    """Sent to `event_callback`: `kind` is step_start, step_finish, tool_call, repair, pause,
    resume, budget, reflection or finish."""

    kind: str
    iteration: int
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)


@dataclass
class _Run:
    """Per-run state: nothing of it lives on the planner, so runs never share it."""

    trajectory: Trajectory
    usage: BudgetUsage
    memory_key: MemoryKey | None
    history: list[LLMMessage]
    repairs: int = 0
    reflections: int = 0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: what the run is waiting on, named in the metadata when the deadline interrupts it
    in_flight: str | None = None


class ReactPlanner(AsyncResource):
    """An LLM picks tools from `catalog` until it answers or a budget ends the run.

    `await planner.run(query, context=..., memory_key=...)` returns a `PlannerFinish` or, when a
    tool or a join asks a human, a `PlannerPause` whose token `resume(token, decision)` takes
    (once). One planner serves any number of concurrent runs.

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
    ) -> None:
        if not catalog:
            raise ConfigurationError("ReactPlanner needs at least one tool in its catalog")
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
        self.join_strategy = join_strategy
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
            methods=["save_planner_state", "consume_planner_state"],
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
        self._joins: dict[str, JoinStrategy] | None = None

    # -- public API --------------------------------------------------------------------------

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
        on_answer_chunk: Callable[[str, bool], Awaitable[None] | None] | None = None,
    ) -> PlannerFinish | PlannerPause:
        snapshot = await self.memory.snapshot(memory_key)
        run = _Run(
            trajectory=Trajectory(query=query, context=dict(context or {})),
            usage=BudgetUsage(),
            memory_key=memory_key,
            history=snapshot.to_messages(),
        )
        return await self._loop(run, on_answer_chunk)

    async def resume(
        self,
        token: str,
        decision: Any,
        *,
        on_answer_chunk: Callable[[str, bool], Awaitable[None] | None] | None = None,
    ) -> PlannerFinish | PlannerPause:
        """Continue a paused run; `decision` becomes the result of the step that paused.
        A token works once: an unknown or used one raises `KeyError`."""
        saved = await self.state_store.consume_planner_state(token)
        if saved is None:
            raise UnknownNameError(
                f"resume token {token!r} is unknown or was already used; tokens are single use"
            )
        if saved.get("version") != _STATE_VERSION:
            raise ConfigurationError(
                f"paused state of version {saved.get('version')} cannot be resumed"
            )
        key = saved.get("memory_key")
        run = _Run(
            trajectory=Trajectory.model_validate(saved["trajectory"]),
            usage=BudgetUsage.model_validate(saved["usage"]),
            memory_key=MemoryKey.model_validate(key) if key else None,
            history=[LLMMessage.model_validate(m) for m in saved.get("history", [])],
            reflections=int(saved.get("reflections", 0)),
        )
        run.usage.restart_clock()
        pending = saved.get("pending") or {}
        run.trajectory.add(
            TrajectoryStep(kind="resume", action=pending.get("action"), observation=decision)
        )
        await self._emit("resume", run, {"token": token})
        return await self._loop(run, on_answer_chunk)

    # -- the loop ----------------------------------------------------------------------------

    async def _loop(
        self, run: _Run, on_answer_chunk: Callable[[str, bool], Awaitable[None] | None] | None
    ) -> PlannerFinish | PlannerPause:
        """The run's steps under its deadline. The deadline is a cancel scope: when it passes,
        whatever is in flight (the model call, tools and their retries, a join, the answer
        being streamed) is cancelled and awaited, and the run ends with reason `deadline`."""
        left = run.usage.deadline_left_s(self.budgets)
        with anyio.CancelScope(deadline=anyio.current_time() + left):
            return await self._steps(run, on_answer_chunk)
        # Only the deadline scope's own cancellation gets here; the caller cancelling the run
        # propagates (after every branch in flight has been cancelled and awaited).
        interrupted = {"interrupted": run.in_flight} if run.in_flight else {}
        return await self._out_of_budget(run, "deadline", **interrupted)

    async def _steps(
        self, run: _Run, on_answer_chunk: Callable[[str, bool], Awaitable[None] | None] | None
    ) -> PlannerFinish | PlannerPause:
        system = system_prompt(
            list(self.catalog.values()),
            parallel=self.max_parallel > 1,
            joins=self._join_names(),
            constraints=self._constraints(),
            instructions=self.instructions,
        )
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
            except LLMError as exc:
                return await self._end(
                    run,
                    "no_path",
                    run.trajectory.last_observation(),
                    error=f"model call failed: {describe_exception(exc)}",
                )
            run.usage.iterations += 1
            usage: dict[str, int] | None = None
            if response.usage is not None:
                run.usage.tokens += response.usage.total_tokens
                usage = {
                    "input_tokens": response.usage.input_tokens,
                    "output_tokens": response.usage.output_tokens,
                }
            run.usage.cost_usd += response.cost_usd or 0.0
            try:
                action = parse_action(response.text, self.catalog, self.answer_model)
            except ActionError as exc:
                run.repairs += 1
                run.trajectory.add(
                    TrajectoryStep(
                        kind="repair",
                        observation={"reply": response.text, "errors": exc.errors},
                        error="; ".join(exc.errors),
                        usage=usage,
                    )
                )
                await self._emit("repair", run, {"errors": exc.errors, "attempt": run.repairs})
                if run.repairs > self.max_repairs:
                    return await self._end(
                        run,
                        "repair_failed",
                        {"errors": exc.errors, "last_reply": response.text},
                        error=f"the model's reply was unusable {run.repairs} times in a row",
                    )
                continue
            run.repairs = 0
            if action.is_finish:
                outcome = await self._finish(run, action, usage, on_answer_chunk)
                if outcome is not None:
                    return outcome
                continue
            result = await self._act(run, action, usage, started)
            if result is not None:
                return result

    async def _act(
        self, run: _Run, action: PlannerAction, usage: dict[str, int] | None, started: float
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
        strategy = self._strategy(action.join)
        run.in_flight = f"parallel tools {', '.join(name for name, _ in calls)}"
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
        self, run: _Run, calls: list[tuple[str, dict[str, Any]]]
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

    async def _branch(self, run: _Run, name: str, args: dict[str, Any]) -> BranchOutcome:
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
        run: _Run,
        action: PlannerAction,
        usage: dict[str, int] | None,
        on_answer_chunk: Callable[[str, bool], Awaitable[None] | None] | None,
    ) -> PlannerFinish | None:
        answer = action.args["answer"]
        if self.reflection is not None and run.reflections < self.reflection.max_rounds:
            run.in_flight = "reflection"
            critique = await self._critique(run, answer)
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
        if on_answer_chunk is not None:
            await _stream_answer(text, on_answer_chunk)
        await self.memory.add_turn(
            run.memory_key, ConversationTurn(user=run.trajectory.query, assistant=text)
        )
        return await self._end(run, "answer_complete", answer, thought=action.thought)

    async def _critique(self, run: _Run, answer: Any) -> Critique | None:
        assert self.reflection is not None
        critic = self.reflection.critic or self.llm
        messages = [
            LLMMessage(role="system", content=self.reflection.instructions),
            LLMMessage(
                role="user",
                content=f"Task: {run.trajectory.query}\nAnswer: {answer}\nReply with JSON "
                '{"approve": true|false, "feedback": "..."}',
            ),
        ]
        try:
            reply = await critic.complete(messages=messages, response_format=Critique)
            return Critique.model_validate_json(reply.text)
        except (LLMError, ValueError) as exc:
            logger.warning("reflection skipped: the reviewer failed (%s)", describe_exception(exc))
            return None

    # -- endings -----------------------------------------------------------------------------

    async def _out_of_budget(self, run: _Run, reason: FinishReason, **extra: Any) -> PlannerFinish:
        with anyio.CancelScope(shield=True):  # decided: see _end
            await self._emit("budget", run, {"reason": reason, **extra})
        best = run.trajectory.last_observation()
        return await self._end(run, reason, best, error=f"budget exhausted: {reason}", **extra)

    async def _end(
        self,
        run: _Run,
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
        # sent twice, or a first one lost), so it is shielded from the deadline scope.
        with anyio.CancelScope(shield=True):
            await self._emit("finish", run, {"reason": reason})
        return PlannerFinish(reason=reason, payload=payload, thought=thought, metadata=metadata)

    async def _pause(
        self, run: _Run, action: dict[str, Any], reason: str, payload: Mapping[str, Any]
    ) -> PlannerPause:
        token = uuid.uuid4().hex
        run.usage.freeze_clock()
        run.trajectory.add(TrajectoryStep(kind="pause", action=action, observation=dict(payload)))
        state = {
            "version": _STATE_VERSION,
            "trajectory": run.trajectory.model_dump(mode="json"),
            "usage": run.usage.model_dump(),
            "memory_key": run.memory_key.model_dump() if run.memory_key else None,
            "history": [m.model_dump() for m in run.history],
            "reflections": run.reflections,
            "pending": {"action": action, "reason": reason},
        }
        # Shielded from the deadline: a pause whose state was saved must reach the caller with
        # its token, or the saved state could never be resumed.
        with anyio.CancelScope(shield=True):
            await self.state_store.save_planner_state(token, state)
            await self._emit("pause", run, {"reason": reason, "token": token})
        return PlannerPause(token=token, reason=reason, payload=dict(payload))

    # -- helpers -----------------------------------------------------------------------------

    def _registered_joins(self) -> dict[str, JoinStrategy]:
        # The installed join-strategy drivers, built once per planner (the prompt lists them
        # all), not per run or step; a broken one is left out, not fatal.
        if self._joins is None:
            self._joins = join_strategies()
        return self._joins

    def _strategy(self, name: str | None) -> JoinStrategy:
        chosen = name or self.join_strategy
        if not isinstance(chosen, str):
            return chosen
        found = self._registered_joins().get(chosen)
        # Unknown (or left out because broken): the driver lookup says why, and what exists.
        return found if found is not None else get_join_strategy(chosen)

    def _join_names(self) -> list[str]:
        if not isinstance(self.join_strategy, str):
            return [self.join_strategy.name]
        return sorted(self._registered_joins())

    def _constraints(self) -> list[str]:
        budgets = self.budgets
        found = list(self.constraints)
        found.append(f"at most {budgets.max_iters} steps")
        if budgets.hop_budget is not None:
            found.append(f"at most {budgets.hop_budget} tool calls")
        return found

    def _sinks(self) -> list[Any]:
        if self._hook_sinks is None:
            from penguiflow.plugins import active_hooks

            from . import hookspecs

            host = self._host or active_hooks()
            found: list[Any] = []
            if host is not None:
                caller = getattr(host.hook, "penguiflow_planner_sinks", None)
                if caller is None or not caller.has_spec():
                    # A host without this plugin's hook plugin (disabled, or built by hand):
                    # the planner still declares its own hooks before calling them.
                    host.manager.add_hookspecs(hookspecs)
                for contributed in host.hook.penguiflow_planner_sinks(planner=self):
                    found += list(contributed or ())
            self._hook_sinks = found
        return [*self.middlewares, *self._hook_sinks]

    async def _emit(self, kind: str, run: _Run, data: dict[str, Any] | None = None) -> None:
        details = data or {}
        sinks = self._sinks()
        if self.event_callback is None and not sinks:
            return
        event = PlannerEvent(kind=kind, iteration=run.usage.iterations, data=details)
        flow_event = FlowEvent(
            event_type=f"planner_{kind}",
            ts=event.ts,
            node_name=details.get("tool"),
            node_id=None,
            trace_id=run.run_id,
            attempt=run.usage.iterations,
            latency_ms=None,
            queue_depth_in=0,
            queue_depth_out=0,
            outgoing_edges=0,
            queue_maxsize=0,
            trace_pending=None,
            trace_inflight=0,
            trace_cancelled=False,
            extra=details,
        )
        receivers: list[tuple[Any, Any]] = [(sink, flow_event) for sink in sinks]
        if self.event_callback is not None:
            receivers.append((self.event_callback, event))
        for receiver, payload in receivers:
            try:
                result = receiver(payload)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # an observer must not break the run
                logger.exception("planner event receiver failed for %s", kind)


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
