"""`redis://host:port/db`: the distributed runtime (entry points `penguiflow.runtimes`: `redis`,
`redis+cluster`, `redis+sentinel`).

    flow = create(a.to(b), b.to(), runtime="redis://127.0.0.1:6379/0")   # client process
    penguiflow worker myapp.flows:build --runtime redis://127.0.0.1:6379/0 # each worker

Each node has an input stream read by a consumer group; any number of workers share it. See
docs/deployment.md for what is guaranteed (at-least-once delivery, outputs written once per
message, per-trace cancel and deadlines across processes, bounded backlogs). The URL may also
list several independent servers (`redis://h1:6379,h2:6379/0`), name a Redis Cluster
(`redis+cluster://h:7000`) or a primary watched by Sentinels
(`redis+sentinel://h:26379/mymaster/0`); the flow's keys are then split into shards
(`_shards`), each trace living in one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel

from penguiflow.errors import ConfigurationError, InvalidTypeError
from penguiflow.registry import ModelRegistry
from penguiflow.resources import AsyncResource, aclose_resource, redact_url
from penguiflow.runtime import FlowDefinition, FlowTarget

from ._chain import check_boundaries
from ._client import RedisFlow
from ._codec import PayloadCodec, PayloadTypeError, annotated_models
from ._connect import SCHEMES, RedisConnections, open_connections, parse_redis_url
from ._shards import MAX_SHARDS, record_shard_count, shard_count
from ._streams import FlowKeys, RedisRuntimeUnavailable, flow_keys
from ._worker import WorkerPool, WorkerSettings

__all__ = ["PayloadTypeError", "RedisFlow", "RedisRuntime", "RedisRuntimeUnavailable"]


class RedisRuntime(AsyncResource):
    """Runs flows on Redis Streams with consumer groups.

    Options (keyword arguments, or the same names in the URL's query string, e.g.
    `redis://127.0.0.1:6379/0?claim_idle_s=5&concurrency=4`): `prefix` of every key
    (default `penguiflow`); `flow_name` (default: the graph's signature, so a changed graph
    never reads an old deployment's queues);
    `payload_types`, models allowed to cross processes besides those named in node
    annotations and the registry; `concurrency`, messages at once per node per worker (8);
    `claim_idle_s`, after how long a dead worker's messages are taken over (30);
    `max_backlog`, the most entries a node's input stream holds before senders wait (1000);
    `cancel_ttl_s`, how long a cancellation is remembered (3600); `join_ttl_s`, how long a
    join_k node keeps the messages of a trace that never completes (86400); `reply_ttl_s`, how
    long results wait for a client that stopped reading (86400); `max_deliveries`, how many
    workers may die while processing a message (a crash, kill or out-of-memory each time)
    before it goes to the dead letters instead of to another worker (5);
    `embedded_workers`, worker loops started inside the client process by `run()` (0: workers
    are separate processes); `connect_timeout_s`, how long a starting worker waits for Redis
    before it gives up with an error (30); `forget_consumers_after_s`, after how long a silent
    consumer holding nothing (a dead worker) is removed from a node's group (600);
    `dedup_ttl_s`, how long a trace's emitted messages are remembered so that emitting one
    again after an ambiguous failure does not enqueue it twice (3600); `stats_interval_s`, how
    often a worker publishes its streams' backlog, pending entries and dead letters as
    observability events, while event sinks listen (5); `chain`, whether a worker runs a
    node's output through the next node itself when it serves that node instead of writing
    it to Redis (operator chaining, `true`; see docs/deployment.md for what changes);
    `commit_after`, nodes whose outputs are always committed to Redis, durability boundaries
    of a chain (in the URL `commit_after=a,b`; none); `shards`, how many shards the flow's
    keys are split into (default: one per server listed, one per master of a cluster, 1 for
    one server or Sentinel; every process of a flow must use the same count, which the first
    one records: see docs/deployment.md, "Shards and high availability");
    `shutdown_grace_s`, how long a stopping worker (SIGTERM) lets the messages in progress
    finish before it cancels them and leaves them pending for other workers (10; keep it below
    your orchestrator's grace period, Kubernetes' `terminationGracePeriodSeconds`).
    """

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "penguiflow",
        flow_name: str | None = None,
        payload_types: Iterable[type[BaseModel]] = (),
        concurrency: int = 8,
        claim_idle_s: float = 30.0,
        max_backlog: int = 1000,
        cancel_ttl_s: float = 3600.0,
        join_ttl_s: float = 86400.0,
        reply_ttl_s: float = 86400.0,
        max_deliveries: int = 5,
        block_s: float = 1.0,
        embedded_workers: int = 0,
        connect_timeout_s: float = 30.0,
        forget_consumers_after_s: float = 600.0,
        dedup_ttl_s: float = 3600.0,
        stats_interval_s: float = 5.0,
        shutdown_grace_s: float = 10.0,
        chain: bool = True,
        commit_after: Iterable[str] = (),
        shards: int | None = None,
    ) -> None:
        if not url.lower().startswith(tuple(f"{scheme}://" for scheme in SCHEMES)):
            raise ConfigurationError(
                f"redis runtime URL {redact_url(url)!r} must start with redis://, rediss://, "
                "unix://, redis+cluster:// or redis+sentinel:// (for example "
                "redis://127.0.0.1:6379/0)"
            )
        url, from_url = _split_options(url)
        #: what the URL points at (one server, several, a cluster, a Sentinel set)
        self.address = parse_redis_url(url, what="redis runtime URL")
        explicit: dict[str, Any] = {
            "prefix": prefix,
            "flow_name": flow_name,
            "concurrency": concurrency,
            "claim_idle_s": claim_idle_s,
            "max_backlog": max_backlog,
            "cancel_ttl_s": cancel_ttl_s,
            "join_ttl_s": join_ttl_s,
            "reply_ttl_s": reply_ttl_s,
            "max_deliveries": max_deliveries,
            "block_s": block_s,
            "embedded_workers": embedded_workers,
            "connect_timeout_s": connect_timeout_s,
            "forget_consumers_after_s": forget_consumers_after_s,
            "dedup_ttl_s": dedup_ttl_s,
            "stats_interval_s": stats_interval_s,
            "shutdown_grace_s": shutdown_grace_s,
            "chain": chain,
            "commit_after": _node_names(commit_after),
            "shards": shards,
        }
        defaults = _DEFAULTS
        for key, value in from_url.items():
            if explicit[key] != defaults[key] and explicit[key] != value:
                raise ConfigurationError(
                    f"option {key!r} is given twice, as {value!r} in the URL and as "
                    f"{explicit[key]!r} in the arguments; keep one"
                )
            explicit[key] = value
        prefix = str(explicit["prefix"])
        flow_name = None if explicit["flow_name"] is None else str(explicit["flow_name"])
        concurrency = int(explicit["concurrency"])
        claim_idle_s = float(explicit["claim_idle_s"])
        max_backlog = int(explicit["max_backlog"])
        cancel_ttl_s = float(explicit["cancel_ttl_s"])
        join_ttl_s = float(explicit["join_ttl_s"])
        reply_ttl_s = float(explicit["reply_ttl_s"])
        max_deliveries = int(explicit["max_deliveries"])
        block_s = float(explicit["block_s"])
        embedded_workers = int(explicit["embedded_workers"])
        connect_timeout_s = float(explicit["connect_timeout_s"])
        forget_consumers_after_s = float(explicit["forget_consumers_after_s"])
        dedup_ttl_s = float(explicit["dedup_ttl_s"])
        stats_interval_s = float(explicit["stats_interval_s"])
        shutdown_grace_s = float(explicit["shutdown_grace_s"])
        chain = bool(explicit["chain"])
        commit_after = _node_names(explicit["commit_after"])
        shards = None if explicit["shards"] is None else int(explicit["shards"])
        if shards is not None and not 1 <= shards <= MAX_SHARDS:
            raise ConfigurationError(
                f"shards must be between 1 and {MAX_SHARDS}, got {shards}; for example "
                "shards=3 for a cluster of three masters"
            )
        for option, value in (
            ("connect_timeout_s", connect_timeout_s),
            ("forget_consumers_after_s", forget_consumers_after_s),
            ("dedup_ttl_s", dedup_ttl_s),
            ("stats_interval_s", stats_interval_s),
            ("shutdown_grace_s", shutdown_grace_s),
        ):
            if not value > 0:
                raise ConfigurationError(f"{option} must be positive, got {value}")
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
        if claim_idle_s <= 0:
            raise ConfigurationError(f"claim_idle_s must be positive, got {claim_idle_s}")
        for option, value in (("join_ttl_s", join_ttl_s), ("reply_ttl_s", reply_ttl_s)):
            if value <= 0:
                raise ConfigurationError(f"{option} must be positive, got {value}")
        if max_deliveries < 1:
            raise ConfigurationError(
                f"max_deliveries must be at least 1, got {max_deliveries}; it is how many "
                "times a message is handed to a worker before it goes to the dead letters"
            )
        self.url = url
        #: the configured shard count (None: from the URL's servers, see `connect`)
        self.shards = shards
        self.prefix = prefix
        self.flow_name = flow_name
        self.payload_types = tuple(payload_types)
        PayloadCodec(self.payload_types)  # reject non-models now, not at the first emit
        self.embedded_workers = embedded_workers
        self.dedup_ttl_s = dedup_ttl_s
        self.settings = WorkerSettings(
            concurrency=concurrency,
            claim_idle_s=claim_idle_s,
            block_s=block_s,
            max_backlog=max_backlog,
            cancel_ttl_s=cancel_ttl_s,
            join_ttl_s=join_ttl_s,
            reply_ttl_s=reply_ttl_s,
            max_deliveries=max_deliveries,
            connect_timeout_s=connect_timeout_s,
            forget_consumers_after_s=forget_consumers_after_s,
            stats_interval_s=stats_interval_s,
            shutdown_grace_s=shutdown_grace_s,
            chain=chain,
            commit_after=commit_after,
        )

    def __repr__(self) -> str:
        return f"RedisRuntime({redact_url(self.url)!r}, prefix={self.prefix!r})"

    def namespace_for(self, definition: FlowDefinition) -> str:
        """`<prefix>:<flow name or signature>`: what every key of the flow starts with."""
        return f"{self.prefix}:{self.flow_name or definition.signature}"

    def keys_for(self, definition: FlowDefinition) -> FlowKeys:
        """The keys of shard 0 (all of them with one plain server and one shard).

        Kept for callers that knew one shard only: the shard count of a cluster without the
        `shards` option is only known once connected (`connect`, `shard_keys`)."""
        count = self.shards or self.address.server_count or 1
        return self.shard_keys(definition, count)[0]

    def shard_keys(self, definition: FlowDefinition, shards: int) -> tuple[FlowKeys, ...]:
        """The keys of each of `shards` shards, in shard order: tagged on a cluster (even one
        shard's keys must share a slot) and whenever there are several shards; with one plain
        server and one shard, the names used before shards existed."""
        tagged = self.address.kind == "cluster" or shards > 1
        return flow_keys(self.namespace_for(definition), shards, tagged=tagged)

    def open_connections(self, **redis_options: Any) -> RedisConnections:
        """The clients of the URL's servers (lazily connected; see `_connect`)."""
        return open_connections(self.address, **redis_options)

    async def connect(
        self, definition: FlowDefinition, connections: RedisConnections
    ) -> tuple[FlowKeys, ...]:
        """Resolve the shard count (the option, else one per server or cluster master, else
        1), record it on the servers or check it against the recorded one
        (`ShardCountMismatch` names both), and answer every shard's keys."""
        count = await shard_count(connections, self.shards)
        namespace = self.namespace_for(definition)
        await record_shard_count(connections.clients, namespace, count, where=self.address.shown)
        return self.shard_keys(definition, count)

    def codec_for(self, definition: FlowDefinition, registry: ModelRegistry | None) -> PayloadCodec:
        """The payload types both sides know: explicit, node annotations, the registry."""
        codec = PayloadCodec((*self.payload_types, *definition.payload_types))
        for name, node in definition.nodes.items():
            codec.register(*annotated_models(node.func))
            if registry is not None and registry.has(name):
                codec.register(*(m for m in registry.models(name) if _is_model(m)))
        return codec

    def create_flow(self, definition: FlowDefinition, **options: Any) -> RedisFlow:
        """Build the client side of a flow; `create(..., runtime=...)` calls this.

        `middlewares` and `state_store` are kept with the flow: a worker process takes them
        from the flow its own copy of the code builds (`penguiflow worker app:build`), so
        events are delivered where the nodes run (see docs/deployment.md)."""
        if options.get("message_bus") is not None:
            raise InvalidTypeError(
                "create(..., message_bus=...) is not supported by the redis runtime yet: its "
                "streams already carry every message; drop it or use the local runtime"
            )
        options.pop("message_bus", None)
        check_boundaries(self.settings.commit_after, definition.nodes)
        unknown = sorted(set(options) - {"middlewares", "state_store"})
        if unknown:
            raise InvalidTypeError(
                f"create() got unknown option(s) {unknown} for the redis runtime; accepted: "
                "['middlewares', 'state_store'] besides the flow's definition"
            )
        return RedisFlow(
            self,
            definition,
            middlewares=options.get("middlewares"),
            state_store=options.get("state_store"),
        )

    async def aclose(self) -> None:
        """The runtime holds no connection itself (its flows and workers do)."""

    def health_checks(self) -> dict[str, Callable[[], Awaitable[str | None]]]:
        """`redis`: the server answers PING (what `penguiflow worker --health-port` serves
        as readiness, with the kernel's `penguiflow.health` checks)."""
        address = self.address

        async def redis_check() -> str:
            # Connections of its own per probe: the worker's may be busy in a blocking read,
            # and a probe must not wait behind it. Every server must answer (each holds shards).
            async with open_connections(
                address, socket_connect_timeout=1.5, socket_timeout=1.5
            ) as connections:
                for client in connections.clients:
                    await client.ping()
            return f"{address.shown} answers"

        return {"redis": redis_check}

    async def serve_worker(
        self,
        target: FlowTarget,
        *,
        nodes: tuple[str, ...] = (),
        concurrency: int | None = None,
        stop: asyncio.Event,
        on_ready: Callable[[str], None] | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        """Run `target`'s nodes (all, or `nodes`) from their streams until `stop` is set."""
        definition = target.definition
        for name in nodes:
            definition.node(name)
        settings = self.settings
        if concurrency is not None:
            settings = dataclasses.replace(settings, concurrency=concurrency)
        if connect_timeout_s is not None:
            settings = dataclasses.replace(settings, connect_timeout_s=connect_timeout_s)
        flow = target.flow
        pool = WorkerPool(
            runtime=self,
            definition=definition,
            registry=target.registry,
            codec=self.codec_for(definition, target.registry),
            settings=settings,
            nodes=nodes,
            flow=flow,
            # A copy: the client's own sinks (role "client") are not this worker's listeners.
            middlewares=list(getattr(flow, "middlewares", ()) or ()),
            state_store=getattr(flow, "state_store", None),
        )
        try:
            await pool.serve(stop, on_ready)
        finally:
            if target.source != "embedded" and flow is not None:
                # The flow the worker's copy of the code built: close what it opened.
                await aclose_resource(flow)


_DEFAULTS: dict[str, object] = {
    "prefix": "penguiflow",
    "flow_name": None,
    "concurrency": 8,
    "claim_idle_s": 30.0,
    "max_backlog": 1000,
    "cancel_ttl_s": 3600.0,
    "join_ttl_s": 86400.0,
    "reply_ttl_s": 86400.0,
    "max_deliveries": 5,
    "block_s": 1.0,
    "embedded_workers": 0,
    "connect_timeout_s": 30.0,
    "forget_consumers_after_s": 600.0,
    "dedup_ttl_s": 3600.0,
    "stats_interval_s": 5.0,
    "shutdown_grace_s": 10.0,
    "chain": True,
    "commit_after": (),
    "shards": None,
}
_CONVERTERS: dict[str, Callable[[str], object]] = {
    "prefix": str,
    "flow_name": str,
    "concurrency": int,
    "claim_idle_s": float,
    "max_backlog": int,
    "cancel_ttl_s": float,
    "join_ttl_s": float,
    "reply_ttl_s": float,
    "max_deliveries": int,
    "block_s": float,
    "embedded_workers": int,
    "connect_timeout_s": float,
    "forget_consumers_after_s": float,
    "dedup_ttl_s": float,
    "stats_interval_s": float,
    "shutdown_grace_s": float,
    "chain": lambda value: _boolean(value),
    "commit_after": lambda value: _node_names(value.split(",")),
    "shards": int,
}
#: what an option's value must be, where the converter's name does not say it
_KINDS = {"chain": "boolean (true or false)"}


def _split_options(url: str) -> tuple[str, dict[str, object]]:
    """Take the runtime's own options out of the URL's query (`?claim_idle_s=5`); the rest
    of the query (redis-py's connection options) stays in the URL."""
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    options: dict[str, object] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        convert = _CONVERTERS.get(key)
        if convert is None:
            kept.append((key, value))
            continue
        try:
            options[key] = convert(value)
        except ValueError:
            raise ConfigurationError(
                f"option {key}={value!r} in the redis runtime URL is not a valid "
                f"{_KINDS.get(key, convert.__name__)}"
            ) from None
    return urlunsplit(parts._replace(query=urlencode(kept))), options


def _boolean(value: str) -> bool:
    """`true`/`false` (also 1/0, yes/no, on/off) from a URL's query."""
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{value!r} is not a boolean")  # a ValueError: see _split_options


def _node_names(value: object) -> tuple[str, ...]:
    """Node names from an iterable of names (or one comma-separated string); blanks dropped."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, Iterable):
        raise ConfigurationError(
            f"commit_after must be node names, for example commit_after=('fetch', 'store'); "
            f"got {value!r}"
        )
    return tuple(str(name).strip() for name in names if str(name).strip())


def _is_model(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)
