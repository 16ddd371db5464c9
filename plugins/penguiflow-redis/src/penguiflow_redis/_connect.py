"""Redis URLs of every deployment form, and the redis-py clients they open.

The forms (schemes are case-insensitive; a password in any of them is masked in every message):

- `redis://[user:pass@]host:port/db`, `rediss://...`, `unix:///path.sock`: one server, one
  `Redis` client;
- `redis://h1:p1,h2:p2/db` (`rediss://` too): independent servers, the runtime's shards (shard
  k on server k mod N), one `Redis` client per server in URL order;
- `redis+cluster://[user:pass@]h:p[,h:p]`: a Redis Cluster (any of its nodes; the others are
  discovered), one `RedisCluster` client;
- `redis+sentinel://h:p[,h:p]/<master name>[/db]`: a primary watched by Sentinels, one `Redis`
  client from `Sentinel.master_for`, which follows failovers.

The query string (`?socket_timeout=5`) holds redis-py's connection options, for every form; the
runtime takes its own options out of it first (runtime.py). With Sentinel the user and password
of the URL are the primary's and replicas'; the Sentinels are reached without authentication.
Parsing a cluster or Sentinel URL uses redis-py's option parser, so its query accepts what
a `redis://` URL accepts.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode

from penguiflow.errors import ConfigurationError, describe_exception
from penguiflow.resources import AsyncResource, redact_url

__all__ = [
    "SCHEMES",
    "RedisAddress",
    "RedisConnections",
    "open_connections",
    "parse_redis_url",
]

Kind = Literal["server", "servers", "cluster", "sentinel"]

#: Every scheme this module understands.
SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "redis+sentinel")

_EXAMPLES = (
    "redis://127.0.0.1:6379/0 (one server), redis://10.0.0.1:6379,10.0.0.2:6379/0 (several "
    "independent servers), redis+cluster://10.0.0.1:7000,10.0.0.2:7000 (a Redis Cluster), "
    "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0 (Sentinel)"
)


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """A parsed Redis URL: what to connect to, not yet connected.

    `servers` (kinds `server` and `servers`): one redis-py URL per server, in the order given.
    `nodes` (kinds `cluster` and `sentinel`): the cluster's startup nodes or the Sentinels.
    `service`: the Sentinel master name. `options`: redis-py keyword arguments read from the
    URL's user, password and query (cluster and Sentinel; a server URL carries its own)."""

    kind: Kind
    url: str = field(repr=False)
    servers: tuple[str, ...] = field(default=(), repr=False)
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    options: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def shown(self) -> str:
        """The URL with its password masked: the only form that goes into a message."""
        return redact_url(self.url)

    @property
    def server_count(self) -> int | None:
        """How many independent servers hold the data (None for a cluster: ask it)."""
        if self.kind == "cluster":
            return None
        return len(self.servers) if self.kind == "servers" else 1

    def __str__(self) -> str:
        return self.shown


def parse_redis_url(url: str, *, what: str = "Redis URL", several: bool = True) -> RedisAddress:
    """Parse any of the forms in this module's docstring; `what` names the URL's use in errors
    ("redis runtime URL", "state store URL"). `several=False` refuses a list of independent
    servers (a state store or a bus writes to one place). Raises `ConfigurationError`, naming
    the part that is wrong and giving correct examples, with the password masked."""
    shown = redact_url(url)
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise ConfigurationError(
            f"bad {what} {shown!r}: it must start with one of "
            f"{', '.join(s + '://' for s in SCHEMES)}; for example {_EXAMPLES}"
        )
    url = f"{scheme}://{rest}"
    rest, _, query = rest.partition("?")
    rest = rest.split("#", 1)[0]
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    prefix = f"{userinfo}@" if at else ""

    def bad(part: str, why: str, example: str) -> ConfigurationError:
        return ConfigurationError(f"bad {what} {shown!r}: {part} {why}; for example {example}")

    if scheme == "unix":
        if "," in hosts or not path:
            raise bad(
                "the socket path",
                "must be one absolute path (a unix socket cannot list several servers)",
                "unix:///var/run/redis/redis.sock?db=0",
            )
        return RedisAddress("server", url, servers=(url,))
    if not hosts and scheme in ("redis", "rediss"):
        return RedisAddress("server", url, servers=(url,))  # redis-py's default host
    default_port = 26379 if scheme == "redis+sentinel" else 6379
    nodes = _host_list(hosts, default_port, lambda why: bad("the host list", why, _EXAMPLES))
    if scheme in ("redis", "rediss"):
        db = _db(path, lambda why: bad("the database", why, "redis://127.0.0.1:6379/0"))
        if len(nodes) == 1:
            return RedisAddress("server", url, servers=(url,), nodes=nodes, db=db)
        if not several:
            raise bad(
                "the host list",
                "names several servers, which only the redis runtime can use (as shards); a "
                "state store or a message bus needs one server, a cluster or a Sentinel set",
                "redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
            )
        tail = f"/{path}" if slash else ""
        tail += f"?{query}" if query else ""
        servers = tuple(f"{scheme}://{prefix}{_netloc(h, p)}{tail}" for h, p in nodes)
        return RedisAddress("servers", url, servers=servers, nodes=nodes, db=db)
    options = _options(scheme, prefix, query, what, shown)
    if scheme == "redis+cluster":
        if path.strip("/") not in ("", "0"):
            raise bad(
                "the path",
                "must be empty or /0: a Redis Cluster has only database 0",
                "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
            )
        return RedisAddress("cluster", url, nodes=nodes, options=options)
    service, _, db_text = path.partition("/")
    if not service or "/" in db_text:
        raise bad(
            "the path",
            "must be /<master name> or /<master name>/<db>, the name the Sentinels monitor",
            "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0",
        )
    db = _db(db_text, lambda why: bad("the database", why, "redis+sentinel://h:26379/mymaster/0"))
    options["db"] = db
    return RedisAddress(
        "sentinel", url, nodes=nodes, service=unquote(service), db=db, options=options
    )


def _host_list(hosts: str, default_port: int, bad: Any) -> tuple[tuple[str, int], ...]:
    found: list[tuple[str, int]] = []
    for item in hosts.split(","):
        item = item.strip()
        if item.startswith("["):  # [IPv6]:port
            host, close, port_text = item[1:].partition("]")
            if not close or (port_text and not port_text.startswith(":")):
                raise bad(f"has a malformed IPv6 address {item!r} (write [::1]:6379)")
            port_text = port_text[1:]
        else:
            host, _, port_text = item.partition(":")
        if not host:
            raise bad(f"has an empty host in {hosts!r}")
        port = default_port
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise bad(f"has the port {port_text!r} for {host}, which is not 1..65535")
            port = int(port_text)
        if (host, port) in found:
            raise bad(f"lists {host}:{port} twice")
        found.append((host, port))
    return tuple(found)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _db(text: str, bad: Any) -> int:
    text = text.strip("/")
    if not text:
        return 0
    if not text.isdigit():
        raise bad(f"{text!r} is not a database number")
    return int(text)


def _options(scheme: str, prefix: str, query: str, what: str, shown: str) -> dict[str, Any]:
    """redis-py's keyword arguments from the user, password and query, typed as redis-py
    types them for a `redis://` URL (its own parser, so both forms accept the same options)."""
    from redis.asyncio.connection import parse_url

    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key == "db" for key, _ in pairs):
        raise ConfigurationError(
            f"bad {what} {shown!r}: give the database in the path, not as ?db= "
            f"(a cluster has only database 0; Sentinel: /<master name>/<db>)"
        )
    try:
        options: dict[str, Any] = dict(parse_url(f"redis://{prefix}localhost/?{urlencode(pairs)}"))
    except ValueError as exc:
        raise ConfigurationError(
            f"bad {what} {shown!r}: {redact_url(describe_exception(exc))}"
        ) from None
    for key in ("host", "port", "db", "connection_class"):
        options.pop(key, None)
    return options


class RedisConnections(AsyncResource):
    """The open clients of one `RedisAddress`.

    `clients` holds one client per independent server (in URL order), or the one cluster or
    Sentinel-managed client; `for_shard(k)` is the client of shard k. Close with `aclose()`
    (idempotent), or use `async with`."""

    def __init__(self, address: RedisAddress, clients: Sequence[Any], owned: Sequence[Any]) -> None:
        self.address = address
        self.clients: tuple[Any, ...] = tuple(clients)
        self._owned = tuple(owned)  # what else to close (the Sentinel's own connections)
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisConnections({self.address.shown!r}, kind={self.address.kind!r})"

    @property
    def client(self) -> Any:
        """The one client of a single server, a cluster or a Sentinel set."""
        if len(self.clients) != 1:
            raise ConfigurationError(
                f"{self.address.shown!r} names {len(self.clients)} servers; use for_shard()"
            )
        return self.clients[0]

    def for_shard(self, shard: int) -> Any:
        """The client holding shard `shard` (server `shard mod N`; the same cluster or
        Sentinel client for every shard)."""
        return self.clients[shard % len(self.clients)]

    async def primaries(self) -> int:
        """How many masters hold the data: the cluster's masters, else the servers."""
        if self.address.kind != "cluster":
            return len(self.clients)
        cluster = self.clients[0]
        await cluster.initialize()
        return len(cluster.get_primaries())

    async def aclose(self) -> None:
        """Close every client (idempotent); errors of one do not stop the others closing."""
        if self._closed:
            return
        self._closed = True
        failure: BaseException | None = None
        for client in (*self.clients, *self._owned):
            try:
                await client.aclose()
            except Exception as exc:  # close the rest; report the first
                failure = failure or exc
        if failure is not None:
            raise failure


@functools.cache
def _cluster_class() -> Any:
    """redis-py's `RedisCluster`, discovering the cluster before its first command.

    redis-py 8.1 discovers the cluster lazily, and commands sent at once by several tasks to
    a client that has not discovered it yet can fail (`'NoneType' object has no attribute
    'writelines'`: a connection of the startup node is closed under a task that is using
    it). Discovering first, once, under redis-py's own lock, avoids it
    (tests/test_store_bus_cluster.py: the store conformance suite's concurrent writers)."""
    from redis.asyncio.cluster import ClusterPipeline, RedisCluster

    class DiscoveringCluster(RedisCluster):
        async def initialize(self, *args: Any, **kwargs: Any) -> Any:
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import RedisClusterException

            try:
                return await super().initialize(*args, **kwargs)
            except RedisClusterException as exc:
                if "cannot be connected" not in str(exc):
                    raise
                # No node answered: an outage like any other (retried, reported as one), not
                # a misuse of the client.
                raise RedisConnectionError(describe_exception(exc)) from exc

        async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
            if self._initialize:
                await self.initialize()
            with _closed_under_use():
                return await super().execute_command(*args, **kwargs)

        def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
            if shard_hint:
                return super().pipeline(transaction, shard_hint)  # redis-py's own refusal
            return GuardedPipeline(self, transaction)  # type: ignore[abstract]

    class GuardedPipeline(ClusterPipeline):
        async def execute(self, *args: Any, **kwargs: Any) -> Any:
            with _closed_under_use():
                return await super().execute(*args, **kwargs)

    return DiscoveringCluster


@contextlib.contextmanager
def _closed_under_use() -> Iterator[None]:
    """The same redis-py race after a cluster node failed: the client rediscovers the cluster
    and closes the node's connections while other tasks use them, which raises that
    `AttributeError` mid-command. It is a lost connection: say so, so that callers retry it
    as one (a worker would otherwise stop on it)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        yield
    except AttributeError as exc:
        if "writelines" not in str(exc) and "NoneType" not in str(exc):
            raise
        raise RedisConnectionError(
            f"a cluster connection was closed while in use ({describe_exception(exc)})"
        ) from exc


def open_connections(address: RedisAddress, **redis_options: Any) -> RedisConnections:
    """Open (lazily: redis-py connects at the first command) the clients of `address`;
    `redis_options` (`decode_responses=True`...) apply to every client."""
    from redis.asyncio import Redis

    try:
        if address.kind in ("server", "servers"):
            clients = [Redis.from_url(url, **redis_options) for url in address.servers]
            return RedisConnections(address, clients, ())
        options = {**address.options, **redis_options}
        if address.kind == "cluster":
            from redis.asyncio.cluster import ClusterNode

            startup = [ClusterNode(host, port) for host, port in address.nodes]
            cluster = _cluster_class()(startup_nodes=startup, **options)
            return RedisConnections(address, [cluster], ())
        from redis.asyncio.sentinel import Sentinel

        sentinel = Sentinel(list(address.nodes), **options)  # type: ignore[no-untyped-call]
        client = sentinel.master_for(str(address.service))
        return RedisConnections(address, [client], [sentinel])
    except (TypeError, ValueError) as exc:
        # An unknown or mistyped option in the query reaches redis-py's constructors.
        raise ConfigurationError(
            f"cannot open {address.shown!r}: {redact_url(describe_exception(exc))}; check the "
            "options in the URL's query (redis-py's connection options)"
        ) from None
