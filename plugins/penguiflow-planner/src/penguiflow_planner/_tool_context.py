"""`PlannerToolContext`: the `ctx` a tool receives from the planner (satisfies
`penguiflow_planner.context.ToolContext`).

The planner builds one per tool call. What it holds, and who may see it:

- `llm_context`: a read-only view of a private deep copy of what the model sees; a tool
  cannot change the model's context through it, even in nested values.
- `tool_context`: this call's own shallow copy of the caller's `tool_context` (the objects in
  it are the caller's), with `_current_tool_name` and `_current_tool_call_id` added. A copy,
  as in PenguiFlow, so parallel calls each see their own name and id. It is for tools only:
  nothing here puts it in a prompt, and `repr(ctx)` leaves it out, so an error message that
  quotes the context cannot carry it to the model.
- `artifacts`/`_artifacts`, `kv`, `pause`, `emit_chunk`, `emit_artifact`: see each.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from collections import ChainMap
from collections.abc import Callable, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any, NoReturn, get_args

from pydantic import BaseModel

from penguiflow.errors import ConfigurationError, UsageError
from penguiflow.memory import MemoryKey

from ._artifact_models import ArtifactRef, ArtifactScope, ArtifactStore
from ._artifact_stores import NoOpArtifactStore
from ._events import EmitFn
from ._executor import PauseRequested
from ._kv import PlannerSessionKV, SessionKVConfig, identity_part, resolve_owner
from ._results import PlannerPauseReason
from .artifacts import ScopedArtifacts

__all__ = [
    "EventEmittingArtifactStore",
    "InvalidPauseReasonError",
    "PauseUnavailableError",
    "PlannerToolContext",
    "StreamChunkError",
]

_PAUSE_REASONS: tuple[str, ...] = get_args(PlannerPauseReason)

#: For runs without an artifact store: one for the process, so its warning is logged once
#: rather than once per tool call.
_NO_STORE = NoOpArtifactStore()


class InvalidPauseReasonError(ConfigurationError):
    """`ctx.pause()` was given a reason that is not one of the four pause reasons."""


class PauseUnavailableError(UsageError):
    """`ctx.pause()` in a planner built with `pause_enabled=False` (a `RuntimeError`, as in
    PenguiFlow): the tool call fails with this error, and the model sees it."""


class StreamChunkError(ConfigurationError):
    """A streamed chunk out of order: a `seq` not above the stream's previous one, or a chunk
    after the stream's `done=True`."""


class EventEmittingArtifactStore:
    """The artifact store a tool reaches (`ctx._artifacts`): writes go to `inner`, publish an
    `artifact_stored` event, and are listed in `stored`; a write without a scope gets the
    context's, when the context names a session (PenguiFlow's rule)."""

    def __init__(
        self,
        inner: ArtifactStore,
        *,
        emit: EmitFn,
        default_scope: ArtifactScope | None,
        node_name: str | None,
    ) -> None:
        self.inner = inner
        self._emit = emit
        self._default_scope = default_scope
        self._node_name = node_name
        #: every reference written through this proxy, in order
        self.stored: list[ArtifactRef] = []

    def _scope(self, scope: ArtifactScope | None) -> ArtifactScope | None:
        return scope if scope is not None else self._default_scope

    async def _announce(self, ref: ArtifactRef, size: int, namespace: str | None) -> None:
        self.stored.append(ref)
        await self._emit(
            "artifact_stored",
            {
                "artifact_id": ref.id,
                "mime_type": ref.mime_type,
                "size_bytes": size,
                # `filename` would clash with a log record's attribute of that name.
                "artifact_filename": ref.filename,
                "source": {"namespace": namespace},
            },
            node_name=self._node_name,
        )

    async def put_bytes(
        self,
        data: bytes,
        *,
        mime_type: str | None = None,
        filename: str | None = None,
        namespace: str | None = None,
        scope: ArtifactScope | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ArtifactRef:
        ref = await self.inner.put_bytes(
            data,
            mime_type=mime_type,
            filename=filename,
            namespace=namespace,
            scope=self._scope(scope),
            meta=meta,
        )
        await self._announce(ref, len(data), namespace)
        return ref

    async def put_text(
        self,
        text: str,
        *,
        mime_type: str = "text/plain",
        filename: str | None = None,
        namespace: str | None = None,
        scope: ArtifactScope | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ArtifactRef:
        ref = await self.inner.put_text(
            text,
            mime_type=mime_type,
            filename=filename,
            namespace=namespace,
            scope=self._scope(scope),
            meta=meta,
        )
        await self._announce(ref, len(text.encode("utf-8")), namespace)
        return ref

    async def get(self, artifact_id: str) -> bytes | None:
        return await self.inner.get(artifact_id)

    async def get_ref(self, artifact_id: str) -> ArtifactRef | None:
        return await self.inner.get_ref(artifact_id)

    async def delete(self, artifact_id: str) -> bool:
        return await self.inner.delete(artifact_id)

    async def exists(self, artifact_id: str) -> bool:
        return await self.inner.exists(artifact_id)

    async def list(self, *, scope: ArtifactScope | None = None) -> list[ArtifactRef]:
        return await self.inner.list(scope=scope)


def _jsonable_chunk(chunk: Any) -> Any:
    """An artifact chunk as JSON data: a model's JSON form, JSON as it is, other values with
    what JSON cannot hold turned to strings (its `repr` as a last resort)."""
    if isinstance(chunk, BaseModel):
        return chunk.model_dump(mode="json")
    try:
        json.dumps(chunk, allow_nan=False)
        return chunk
    except (TypeError, ValueError):
        pass
    try:
        return json.loads(json.dumps(chunk, default=str))
    except (TypeError, ValueError):
        return repr(chunk)


class PlannerToolContext:
    """The context of one tool call (see the module docstring).

    The planner's loop passes `emit` (publishes one event of the run), the run's
    `state_store` and `artifact_store` (None: a `NoOpArtifactStore`), `memory_key` (the
    run's owner, used before `tool_context`'s ids), `trace_id` (the run's), and
    `pause_enabled`. `time_source` stamps the recorded chunks (the planner's clock).
    """

    def __init__(
        self,
        *,
        llm_context: Mapping[str, Any],
        tool_context: dict[str, Any],
        tool_name: str,
        tool_call_id: str,
        emit: EmitFn,
        state_store: Any | None,
        artifact_store: ArtifactStore | None,
        memory_key: MemoryKey | None,
        trace_id: str | None,
        pause_enabled: bool = True,
        time_source: Callable[[], float] = time.monotonic,
        kv_config: SessionKVConfig | None = None,
    ) -> None:
        self._llm_context = copy.deepcopy(dict(llm_context))
        self._tool_context = dict(tool_context)
        self._tool_context["_current_tool_name"] = tool_name
        self._tool_context["_current_tool_call_id"] = tool_call_id
        self._tool_name = tool_name
        self._tool_call_id = tool_call_id
        self._emit = emit
        self._state_store = state_store
        self._memory_key = memory_key
        self._trace_id = identity_part(self._tool_context.get("trace_id")) or trace_id
        self._pause_enabled = pause_enabled
        self._now = time_source
        self._kv_config = kv_config
        self._kv: PlannerSessionKV | None = None
        self._meta_warned = False
        owner, _ = resolve_owner(self._tool_context, memory_key)
        tenant, user, session = owner if owner is not None else self._partial_owner()
        self._proxy = EventEmittingArtifactStore(
            artifact_store if artifact_store is not None else _NO_STORE,
            emit=emit,
            default_scope=ArtifactScope(
                tenant_id=tenant, user_id=user, session_id=session, trace_id=self._trace_id
            )
            if session is not None
            else None,
            node_name=tool_name,
        )
        self._scoped = ScopedArtifacts(
            self._proxy, tenant_id=tenant, user_id=user, session_id=session, trace_id=self._trace_id
        )
        self._streams: dict[str, list[dict[str, Any]]] = {}
        self._text_seq: dict[str, int] = {}
        self._artifact_seq: dict[str, int] = {}
        self._done: set[tuple[str, str]] = set()

    def _partial_owner(self) -> tuple[str | None, str | None, str | None]:
        # Without a whole owner the artifacts still record what is known (PenguiFlow's rule).
        context = self._tool_context
        return (
            identity_part(context.get("tenant_id")),
            identity_part(context.get("user_id")),
            identity_part(context.get("session_id")),
        )

    def __repr__(self) -> str:
        return f"PlannerToolContext(tool={self._tool_name!r}, call={self._tool_call_id!r})"

    # -- what the tool reads --------------------------------------------------------------------

    @property
    def llm_context(self) -> Mapping[str, Any]:
        """What the model sees of the caller's context (read-only)."""
        return MappingProxyType(self._llm_context)

    @property
    def tool_context(self) -> dict[str, Any]:
        """The caller's tool-only context (this call's copy; never shown to the model)."""
        return self._tool_context

    @property
    def meta(self) -> MutableMapping[str, Any]:
        """Deprecated: `tool_context` over `llm_context` in one mapping (writes go to
        `tool_context`). Warns once per context; use the two properties instead."""
        if not self._meta_warned:
            self._meta_warned = True
            warnings.warn(
                "ctx.meta is deprecated: read ctx.llm_context (what the model sees) or "
                "ctx.tool_context (tool-only values) instead",
                DeprecationWarning,
                stacklevel=2,
            )
        return ChainMap(self._tool_context, self._llm_context)

    @property
    def _artifacts(self) -> ArtifactStore:
        """The raw artifact store (no scope checks), for framework code."""
        return self._proxy

    @property
    def artifacts(self) -> ScopedArtifacts:
        """Artifacts of this run's owner: `upload`, `download`, `get_metadata`, `list`,
        `exists`, `delete`."""
        return self._scoped

    @property
    def stored_artifacts(self) -> list[ArtifactRef]:
        """Every artifact written during this call, in order (for the planner's records)."""
        return list(self._proxy.stored)

    @property
    def kv(self) -> PlannerSessionKV:
        """This session's key-value storage (docs/planner-tools.md, "Session KV")."""
        if self._kv is None:
            self._kv = PlannerSessionKV(
                state_store=self._state_store,
                artifacts=self._proxy,
                tool_context=self._tool_context,
                memory_key=self._memory_key,
                trace_id=self._trace_id,
                emit=self._emit,
                config=self._kv_config,
            )
        return self._kv

    # -- what the tool does ---------------------------------------------------------------------

    async def pause(
        self, reason: PlannerPauseReason, payload: Mapping[str, Any] | None = None
    ) -> NoReturn:
        """Stop the run and wait for a human; `payload` goes to the `PlannerPause`. Raises
        `PauseRequested`: let it propagate out of the tool."""
        if reason not in _PAUSE_REASONS:
            raise InvalidPauseReasonError(
                f"ctx.pause() reason must be one of {', '.join(map(repr, _PAUSE_REASONS))}; "
                f"got {reason!r}"
            )
        if not self._pause_enabled:
            raise PauseUnavailableError(
                f"tool {self._tool_name!r} asked to pause ({reason}), but this planner has "
                "pause_enabled=False; build ReactPlanner(pause_enabled=True) to allow pauses"
            )
        if payload is not None and not isinstance(payload, Mapping):
            raise InvalidPauseReasonError(
                f"ctx.pause() payload must be a mapping or None, got {type(payload).__name__}"
            )
        raise PauseRequested(reason, dict(payload or {}))

    async def emit_chunk(
        self,
        stream_id: str,
        seq: int,
        text: str,
        *,
        done: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Stream `text` as chunk `seq` of `stream_id` (a `stream_chunk` event). Within a
        call, each stream's `seq` must increase (gaps allowed) and nothing may follow its
        `done=True` chunk; `meta` defaults its `channel` to `thinking`."""
        self._check_stream(stream_id, "text")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise StreamChunkError(f"stream {stream_id!r}: seq must be an int >= 0, got {seq!r}")
        last = self._text_seq.get(stream_id)
        if last is not None and seq <= last:
            raise StreamChunkError(
                f"stream {stream_id!r}: seq {seq} does not follow {last}; number each "
                "stream's chunks in increasing order"
            )
        if not isinstance(text, str):
            raise StreamChunkError(
                f"stream {stream_id!r}: text must be a str, got {type(text).__name__}"
            )
        self._text_seq[stream_id] = seq
        chunk_meta = {"channel": "thinking", **dict(meta or {})}
        self._record(
            stream_id, "text", done, {"seq": seq, "text": text, "done": done, "meta": chunk_meta}
        )
        await self._emit(
            "stream_chunk",
            {"stream_id": stream_id, "seq": seq, "text": text, "done": done, "meta": chunk_meta},
            node_name=self._tool_name,
        )

    async def emit_artifact(
        self,
        stream_id: str,
        chunk: Any,
        *,
        done: bool = False,
        artifact_type: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Stream a piece of a structured artifact (a chart's config, a table's rows) as an
        `artifact_chunk` event. Chunks of a stream are numbered from 0 in order;
        `artifact_type` defaults to the chunk's type name."""
        self._check_stream(stream_id, "artifact")
        seq = self._artifact_seq.get(stream_id, -1) + 1
        self._artifact_seq[stream_id] = seq
        data = _jsonable_chunk(chunk)
        kind = artifact_type or type(chunk).__name__
        chunk_meta = dict(meta or {})
        self._record(
            stream_id,
            "artifact",
            done,
            {"seq": seq, "chunk": data, "artifact_type": kind, "done": done, "meta": chunk_meta},
        )
        await self._emit(
            "artifact_chunk",
            {
                "stream_id": stream_id,
                "seq": seq,
                "chunk": data,
                "done": done,
                "artifact_type": kind,
                "meta": chunk_meta,
            },
            node_name=self._tool_name,
        )

    def _check_stream(self, stream_id: str, kind: str) -> None:
        if not isinstance(stream_id, str) or not stream_id:
            raise StreamChunkError(f"stream_id must be a non-empty str, got {stream_id!r}")
        if (kind, stream_id) in self._done:
            raise StreamChunkError(
                f"stream {stream_id!r} already ended (done=True); start another stream_id"
            )

    def _record(self, stream_id: str, kind: str, done: bool, entry: dict[str, Any]) -> None:
        if done:
            self._done.add((kind, stream_id))
        entry["ts"] = self._now()
        self._streams.setdefault(stream_id, []).append(entry)

    @property
    def streams(self) -> dict[str, list[dict[str, Any]]]:
        """Every chunk emitted in this call, by stream id, in the order emitted (text chunks:
        `seq`, `text`, `done`, `meta`, `ts`; artifact chunks: `seq`, `chunk`,
        `artifact_type`, `done`, `meta`, `ts`), for `TrajectoryStep.streams`."""
        return {sid: [dict(entry) for entry in chunks] for sid, chunks in self._streams.items()}
