"""The planner's short-term memory: whose memory a run has, what it shows the model, and
remembering the turn a run finished.

`ReactPlanner(short_term_memory=...)` takes what PenguiFlow 3.11 takes, a
`ShortTermMemoryConfig` (one `DefaultShortTermMemory` per key, made on first use) or a
`ShortTermMemory` object of the user's (one for every key: it isolates keys itself), and, beyond
PenguiFlow, one of our `MemoryStrategy` objects or the name of a memory strategy driver. Keys
follow PenguiFlow's rules, fail closed (`resolve_key`). A memory that fails is logged and the
run goes on without it.

With a state store, each key's `DefaultShortTermMemory` is saved after every turn and every
background summary, under `MemoryKey.as_string()`. Before a run it is read back when the store
holds something other than what this process last saved or read: another process wrote it. So a
session may move between processes without losing turns, while a summary running here is not
thrown away by re-reading our own save (PenguiFlow re-reads before every run).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence, Set
from typing import Any
from uuid import uuid4

from pydantic import BaseModel

from penguiflow.errors import ConfigurationError, InvalidTypeError, describe_exception
from penguiflow.memory import ConversationTurn as StoredTurn
from penguiflow.memory import (
    MemoryKey,
    MemorySnapshot,
    MemoryStrategy,
    NoMemory,
    read_memory_state,
    write_memory_state,
)
from penguiflow.resources import AsyncResource, aclose_resource

from ._actions import SPECIAL_NODES
from ._key_locks import key_lock
from ._memory_types import (
    ConversationTurn,
    MemoryIsolation,
    ShortTermMemory,
    ShortTermMemoryConfig,
    TrajectoryDigest,
)
from ._rolling_summary import complete_text
from ._short_term_memory import DefaultShortTermMemory

__all__ = ["PlannerMemory", "key_from_tool_context"]

logger = logging.getLogger("penguiflow.planner.memory")

#: how much of one tool's observation a trajectory digest keeps (PenguiFlow's length)
_OBSERVATION_CHARS = 400

_SUMMARY_INSTRUCTIONS = (
    "You keep the running summary of a conversation between a user and an assistant. Merge "
    "the earlier summary with the new turns into one summary that keeps what later turns may "
    "need: facts, decisions, names, numbers, preferences and open questions. Drop greetings "
    'and repetition. Answer with JSON of the form {"summary": "..."}.'
)

#: PenguiFlow's OpenAI-style form; `call_client` hands our clients the schema inside it
_SUMMARY_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "short_term_memory_summary",
        "schema": {
            "type": "object",
            "properties": {"summary": {"type": "string"}},
            "required": ["summary"],
            "additionalProperties": False,
        },
    },
}


class PlannerMemory(AsyncResource):
    """The memory of one planner (see the module docstring); build it with `build()`."""

    def __init__(
        self,
        *,
        config: ShortTermMemoryConfig,
        shared: ShortTermMemory | None = None,
        strategy: MemoryStrategy | None = None,
        owns_strategy: bool = False,
        summarizer: Callable[[Mapping[str, Any]], Any] | None = None,
        state_store: Any = None,
        time_source: Callable[[], float] | None = None,
    ) -> None:
        self._config = config
        self._shared = shared
        self._strategy = strategy
        self._owns_strategy = owns_strategy
        self._summarizer = summarizer
        self._store = state_store
        self._time_source = time_source
        #: one memory per key (by its injective string), as PenguiFlow keeps one per key
        self._memories: dict[str, DefaultShortTermMemory] = {}
        #: per key, the state this process last saved or read: a different one in the store
        #: was written by someone else, and is read back before the next run
        self._known: dict[str, Any] = {}
        self._ephemeral: MemoryKey | None = None
        self._closed = False

    @classmethod
    def build(
        cls,
        short_term_memory: Any,
        *,
        summarizer_client: Any | None,
        state_store: Any | None,
        time_source: Callable[[], float] | None,
        options: Mapping[str, Any] | None = None,
    ) -> PlannerMemory:
        """The memory for `ReactPlanner(short_term_memory=...)`: None, a
        `ShortTermMemoryConfig`, a `ShortTermMemory` object, one of our `MemoryStrategy`
        objects or a memory strategy driver name (built with `options`, plus the summarizer
        client as `llm` and the state store for the built-in drivers)."""
        store = state_store if callable(getattr(state_store, "save_memory_state", None)) else None
        if options and not isinstance(short_term_memory, str):
            raise ConfigurationError(
                "memory options apply to a memory strategy driver given by name "
                "(short_term_memory='truncation', say); configure the object itself instead"
            )
        if short_term_memory is None:
            return cls(config=ShortTermMemoryConfig())
        if isinstance(short_term_memory, ShortTermMemoryConfig):
            summarizer = None
            if short_term_memory.strategy == "rolling_summary":
                client = _summary_client(short_term_memory, summarizer_client)
                summarizer = summarizer_from_client(client)
            return cls(
                config=short_term_memory,
                summarizer=summarizer,
                state_store=store,
                time_source=time_source,
            )
        if isinstance(short_term_memory, str):
            strategy = _strategy_by_name(short_term_memory, summarizer_client, store, options)
            return cls(config=_object_settings(), strategy=strategy, owns_strategy=True)
        if isinstance(short_term_memory, ShortTermMemory):
            return cls(config=_object_settings(), shared=short_term_memory, state_store=store)
        if isinstance(short_term_memory, MemoryStrategy):
            return cls(config=_object_settings(), strategy=short_term_memory)
        raise InvalidTypeError(
            "short_term_memory must be None, a ShortTermMemoryConfig, a memory object with "
            "add_turn(turn), get_llm_context(), estimate_tokens(), flush() and a health "
            "property (PenguiFlow's ShortTermMemory), a penguiflow.memory.MemoryStrategy, or "
            f"a memory strategy driver name such as 'truncation'; got "
            f"{type(short_term_memory).__name__}"
        )

    @property
    def enabled(self) -> bool:
        """Whether runs have memory at all (with a key)."""
        if self._strategy is not None:
            return not isinstance(self._strategy, NoMemory)
        return self._shared is not None or self._config.strategy != "none"

    def resolve_key(
        self, explicit: MemoryKey | None, tool_context: Mapping[str, Any] | None
    ) -> MemoryKey | None:
        """The run's memory key, by PenguiFlow's rules: `explicit`; else one read from
        `tool_context` through the isolation paths (a session is required); else None when
        `require_explicit_key` (fail closed: no memory); else this planner's own key."""
        if explicit is not None and not isinstance(explicit, MemoryKey):
            raise InvalidTypeError(
                "memory_key must be a MemoryKey (from penguiflow.planner.memory), e.g. "
                f"MemoryKey('acme', 'alice', 'chat-1'); got {type(explicit).__name__}"
            )
        if not self.enabled:
            return None
        if explicit is not None:
            return explicit
        isolation = self._config.isolation
        key = key_from_tool_context(tool_context or {}, isolation)
        if key is not None or isolation.require_explicit_key:
            return key
        if self._ephemeral is None:
            self._ephemeral = MemoryKey("default", "anonymous", uuid4().hex)
        return self._ephemeral

    async def llm_context_patch(self, key: MemoryKey | None) -> dict[str, Any]:
        """What memory adds to the run's `llm_context`: `{"conversation_memory": ...}`, or
        `{}` without memory, without a key, or when the memory failed (logged)."""
        if key is None or not self.enabled or self._closed:
            return {}
        try:
            if self._strategy is not None:
                patch = _patch_from_snapshot(
                    await self._strategy.snapshot(key), self._config.include_trajectory_digest
                )
            else:
                memory = self._memory_for(key)
                await self._refresh(memory, key)
                patch = dict(await memory.get_llm_context())
            if not patch:
                return {}
            json.dumps(patch, ensure_ascii=False)  # llm_context must be JSON, so must this
            return patch
        except Exception as exc:
            logger.warning(
                "short-term memory for %r gave no context (%s: %s); the run goes on without it",
                key,
                type(exc).__name__,
                describe_exception(exc),
            )
            return {}

    async def snapshot(self, key: MemoryKey) -> dict[str, Any] | None:
        """What is remembered for `key`, as JSON-able data, without changing anything; None
        when nothing is. A memory of ours reads what the state store holds (what this
        process or another saved), else what this process keeps; a strategy gives its
        snapshot; a memory object passed in, its `to_dict()` when it has one."""
        if not self.enabled or self._closed:
            return None
        if self._strategy is not None:
            taken = await self._strategy.snapshot(key)
            data = taken.model_dump(mode="json")
            return data if data.get("summary") or data.get("turns") else None
        if self._shared is not None:
            to_dict = getattr(self._shared, "to_dict", None)
            return dict(to_dict()) if callable(to_dict) else None
        if self._store is not None:
            async with self._lock(key):
                saved = await read_memory_state(self._store, key)
            if saved is not None:
                return dict(saved)
        memory = self._memories.get(key.as_string())
        return memory.to_dict() if memory is not None else None

    async def record_turn(
        self,
        key: MemoryKey | None,
        *,
        user_message: str,
        assistant_response: str,
        tools_invoked: Sequence[str],
        observations: Sequence[Any],
        reasoning: str | None = None,
    ) -> None:
        """Remember a finished run's turn. `observations[i]` is what `tools_invoked[i]`
        returned; the planner's opcodes (`final_response`, `parallel`) and missing
        observations are left out of the digest, built when `include_trajectory_digest`. A
        memory that fails raises what it raised (the caller reports it; the turn is not
        remembered)."""
        if key is None or not self.enabled or self._closed:
            return
        digest = None
        if self._config.include_trajectory_digest:
            digest = _digest(tools_invoked, observations, reasoning)
        turn = ConversationTurn(
            user_message=user_message,
            assistant_response=assistant_response,
            trajectory_digest=digest,
            ts=time.time(),
        )
        if self._strategy is not None:
            metadata = {"trajectory_digest": _digest_dict(digest)} if digest else {}
            stored = StoredTurn(
                user=user_message, assistant=assistant_response, ts=turn.ts, metadata=metadata
            )
            await self._strategy.add_turn(key, stored)  # it saves itself, if it can
            return
        memory = self._memory_for(key)
        async with self._lock(key):
            await memory.add_turn(turn)
        await self._save(memory, key)

    async def flush(self) -> None:
        """Wait for background summaries (and, for memories of ours, the saves after them)."""
        for memory in list(self._memories.values()):
            await memory.flush()
        for other in (self._shared, self._strategy):
            flush = getattr(other, "flush", None)
            if callable(flush):
                await flush()

    async def aclose(self) -> None:
        """Cancel the background summaries of the memories this made, and close a strategy it
        built by name (idempotent). A memory object passed in belongs to the caller."""
        if self._closed:
            return
        self._closed = True
        memories, self._memories = list(self._memories.values()), {}
        for memory in memories:
            await memory.aclose()
        if self._owns_strategy and self._strategy is not None:
            await aclose_resource(self._strategy)

    # -- internals ---------------------------------------------------------------------------

    def _memory_for(self, key: MemoryKey) -> ShortTermMemory:
        if self._shared is not None:
            return self._shared
        name = key.as_string()
        memory = self._memories.get(name)
        if memory is None:
            memory = DefaultShortTermMemory(
                config=self._config,
                summarizer=self._summarizer,
                time_source=self._time_source,
                memory_key=key,
                on_background_change=lambda: self._save(memory, key),
            )
            self._memories[name] = memory
        return memory

    def _lock(self, key: MemoryKey) -> Any:
        # The process-wide lock of this key in this store: two planners sharing a store (a
        # fork, say) never interleave a read and a write of one key's memory either.
        return key_lock(self._store if self._store is not None else self, key.as_string())

    async def _refresh(self, memory: Any, key: MemoryKey) -> None:
        """Read `key`'s memory from the state store before a run (see the module docstring)."""
        if self._store is None:
            return
        async with self._lock(key):
            if memory is self._shared:
                # The user's object holds every key's memory: PenguiFlow reads it each run.
                hydrate = getattr(memory, "hydrate", None)
                if callable(hydrate):
                    await hydrate(self._store, key.as_string())
                return
            saved = await read_memory_state(self._store, key)
            name = key.as_string()
            if saved is None or saved == self._known.get(name):
                return
            memory.from_dict(saved)
            self._known[name] = saved

    async def _save(self, memory: Any, key: MemoryKey) -> None:
        if self._store is None or self._closed:
            return
        try:
            async with self._lock(key):
                if memory is self._shared:
                    persist = getattr(memory, "persist", None)
                    if callable(persist):
                        await persist(self._store, key.as_string())
                    return
                state = memory.to_dict()
                await write_memory_state(self._store, key, state)
                self._known[key.as_string()] = state
        except Exception as exc:
            logger.warning(
                "short-term memory for %r was not saved (%s: %s)",
                key,
                type(exc).__name__,
                describe_exception(exc),
            )


def _object_settings() -> ShortTermMemoryConfig:
    """The settings of a memory given as an object: PenguiFlow's isolation and digest
    defaults (the strategy is the object's own)."""
    return ShortTermMemoryConfig(strategy="truncation")


def key_from_tool_context(
    tool_context: Mapping[str, Any], isolation: MemoryIsolation
) -> MemoryKey | None:
    """The memory key `tool_context` names through `isolation`'s dot-paths, or None.

    As in PenguiFlow, a session is required and a missing tenant or user is "default" or
    "anonymous". Unlike PenguiFlow, a part that is present but blank, or not a scalar (a
    mapping, a list), gives None rather than a key: a malformed identity has no memory
    rather than a memory it may share."""
    session = _lookup(tool_context, isolation.session_key)
    if session is None:
        return None
    parts: list[str] = []
    for path, default in (
        (isolation.tenant_key, "default"),
        (isolation.user_key, "anonymous"),
        (isolation.session_key, None),
    ):
        value = _lookup(tool_context, path)
        if value is None and default is not None:
            parts.append(default)
            continue
        text = _scalar(value)
        if text is None:
            logger.warning(
                "tool_context[%r] is %s, not an identifier: this run has no memory",
                path,
                "blank" if isinstance(value, str) else type(value).__name__,
            )
            return None
        parts.append(text)
    return MemoryKey(*parts)


def _lookup(mapping: Mapping[str, Any], path: str) -> Any:
    current: Any = mapping
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def _scalar(value: Any) -> str | None:
    if isinstance(value, (Mapping, list, tuple, Set, bytes, bytearray)):
        return None
    text = str(value).strip()
    return text or None


def _strategy_by_name(
    name: str, client: Any, store: Any, options: Mapping[str, Any] | None
) -> MemoryStrategy:
    from penguiflow.plugins import resolve_driver

    chosen = dict(options or {})
    # The built-in drivers get what the planner has; another driver gets only `options`,
    # since it may refuse keywords it does not know.
    if name in ("truncation", "rolling_summary") and store is not None:
        chosen.setdefault("state_store", store)
    if name == "rolling_summary":
        if client is None and "llm" not in chosen:
            raise ConfigurationError(
                "short_term_memory='rolling_summary' needs an LLM to write summaries: give the "
                "planner llm=, llm_client= or summarizer_llm="
            )
        chosen.setdefault("llm", client)
    strategy = resolve_driver("memory_strategy", name, **chosen)
    if not isinstance(strategy, MemoryStrategy):
        raise InvalidTypeError(
            f"the memory strategy driver {name!r} built a {type(strategy).__name__}, which has "
            "no add_turn(key, turn), snapshot(key) and clear(key)"
        )
    return strategy


def _summary_client(config: ShortTermMemoryConfig, client: Any) -> Any:
    if config.summarizer_model is not None:
        from ._llm_calls import resolve_llm

        return resolve_llm(config.summarizer_model, temperature=0.0)
    if client is None:
        raise ConfigurationError(
            "ShortTermMemoryConfig(strategy='rolling_summary') needs an LLM to write "
            "summaries: set its summarizer_model=, or give the planner llm=, llm_client= or "
            "summarizer_llm="
        )
    return client


def summarizer_from_client(client: Any) -> Callable[[Mapping[str, Any]], Any]:
    """A `DefaultShortTermMemory` summarizer that asks `client` for `{"summary": ...}` (a
    JSON-schema reply; a client that answers in plain text is taken at its word)."""

    async def summarize(request: Mapping[str, Any]) -> dict[str, str]:
        previous = str(request.get("previous_summary") or "")
        turns = list(request.get("turns") or [])
        content = json.dumps(
            {"summary_so_far": previous, "new_turns": turns}, ensure_ascii=False, default=str
        )
        messages = [
            {"role": "system", "content": _SUMMARY_INSTRUCTIONS},
            {"role": "user", "content": content},
        ]
        text = (await complete_text(client, messages, response_format=_SUMMARY_FORMAT)).strip()
        try:
            reply = json.loads(text)
        except ValueError:
            reply = None
        if isinstance(reply, Mapping):
            summary = reply.get("summary")
            if not isinstance(summary, str):
                raise InvalidTypeError(
                    f"the summary model answered JSON without a string 'summary': {text:.200}"
                )
            return {"summary": summary.strip()}
        if not text:
            raise ConfigurationError("the summary model returned an empty reply")
        return {"summary": text}

    return summarize


def _digest(
    tools: Sequence[str], observations: Sequence[Any], reasoning: str | None
) -> TrajectoryDigest | None:
    used: list[str] = []
    lines: list[str] = []
    for tool, observation in zip(tools, observations, strict=False):
        if tool in SPECIAL_NODES or observation is None:
            continue
        used.append(tool)
        text = _as_text(observation)
        if len(text) > _OBSERVATION_CHARS:
            text = text[:_OBSERVATION_CHARS] + "…"
        lines.append(f"- {tool}: {text}")
    if not used:
        return None
    return TrajectoryDigest(
        tools_invoked=used, observations_summary="\n".join(lines), reasoning_summary=reasoning
    )


def _as_text(observation: Any) -> str:
    if isinstance(observation, BaseModel):
        observation = observation.model_dump(mode="json")
    try:
        return json.dumps(observation, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # a circular structure, say
        return repr(observation)


def _digest_dict(digest: TrajectoryDigest) -> dict[str, Any]:
    return {
        "tools_invoked": list(digest.tools_invoked),
        "observations_summary": digest.observations_summary,
        "reasoning_summary": digest.reasoning_summary,
        "artifacts_refs": list(digest.artifacts_refs),
    }


def _patch_from_snapshot(snapshot: MemorySnapshot, include_digest: bool) -> dict[str, Any]:
    """A `MemoryStrategy`'s snapshot in PenguiFlow's `conversation_memory` shape."""
    recent: list[dict[str, Any]] = []
    for turn in snapshot.turns:
        shown: dict[str, Any] = {"user": turn.user, "assistant": turn.assistant}
        digest = turn.metadata.get("trajectory_digest")
        if include_digest and isinstance(digest, Mapping):
            shown["trajectory_digest"] = dict(digest)
        recent.append(shown)
    if not recent and not snapshot.summary:
        return {}
    memory: dict[str, Any] = {"recent_turns": recent}
    if snapshot.summary:
        memory["summary"] = snapshot.summary
    return {"conversation_memory": memory}
