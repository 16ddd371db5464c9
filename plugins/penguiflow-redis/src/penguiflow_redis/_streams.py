"""Redis key layout of one distributed flow, and the atomic commit of a processed entry.

Every key of a flow lives under `<prefix>:<flow name>`, followed by its shard's hash tag
(`:{pf<k>.<n>}`, see `_shards`) when the flow has several shards or runs on a Redis Cluster; a
trace's keys all live in one shard. With one plain server and one shard there is no tag:
- `...:in:<node>`: the node's input stream, read by the consumer group `workers`. An entry is
  deleted once processed, so its length is the node's backlog (what backpressure bounds).
- `...:reply:<client>`: results and stream chunks for one client process.
- `...:cancelled:<trace>`: set (with a TTL) when a trace is cancelled; `...:cancel` is the
  pub/sub channel that tells running workers at once.
- `...:join:<node>:<trace>`: messages a join_k node holds for a trace until all k arrived.
- `...:dead`: entries no worker could decode or whose workers kept dying, kept for inspection
  (capped); `...:deaths:<node>:<entry>` counts the workers that died holding an entry.
- `...:alive:<consumer>`: a worker's heartbeat (expires when the worker stops renewing it).
- `...:emitted:<trace>`: digests of the messages a client emitted for a trace, so emitting one
  again after an ambiguous failure does not enqueue it twice (`EMIT_SCRIPT`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from penguiflow.errors import ConfigurationError, PenguiFlowError

from ._shards import shard_tags

__all__ = [
    "COMMIT_SCRIPT",
    "EMIT_SCRIPT",
    "GROUP",
    "JOIN_SCRIPT",
    "FlowKeys",
    "RedisRuntimeUnavailable",
    "ensure_group",
    "flow_keys",
    "lost_group",
]

GROUP = "workers"

# Ack the input entry and add the outputs in one step. XACK answers 1 only for the first
# process to finish an entry (a slow worker whose entry was claimed by another, or a
# redelivered copy, gets 0), so outputs are written exactly once even when the node ran twice.
# A cancelled trace's outputs are dropped here, after the node ran, wherever it ran.
# KEYS: input stream, cancel key, N output streams, then keys to delete once committed (a
# completed join's bucket). ARGV: group, entry id, N, N encoded outputs, N expiry times in ms
# (0: none; a client's reply stream expires unless results keep arriving, so the results of a
# client that died do not stay forever).
# Answers {status} or, when written, {1, length of each output stream}: the lengths keep the
# worker's backpressure view fresh without a round trip of its own.
#: Emit a traced message once: KEYS[1] the trace's `emitted` hash, KEYS[2..] the ingress
#: streams; ARGV[1] the message's digest, ARGV[2] the hash's time to live (ms), ARGV[3] the
#: entry. Returns 1 when the entry was added to every stream, 0 when this message of this trace
#: was emitted already (a retry after a lost reply: nothing is added again). The client puts in
#: the digest how many results of the trace its caller has fetched, so the same message sent
#: after a result is a new request.
EMIT_SCRIPT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 0 then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
for i = 2, #KEYS do
  redis.call('XADD', KEYS[i], '*', 'e', ARGV[3])
end
return 1
"""

COMMIT_SCRIPT = """
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if acked == 0 then return {0} end
local n = tonumber(ARGV[3])
for i = 3 + n, #KEYS do redis.call('DEL', KEYS[i]) end
if redis.call('EXISTS', KEYS[2]) == 1 then return {2} end
local answer = {1}
for i = 1, n do
  redis.call('XADD', KEYS[2 + i], '*', 'e', ARGV[3 + i])
  local ttl = tonumber(ARGV[3 + n + i])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2 + i], ttl) end
  answer[i + 1] = redis.call('XLEN', KEYS[2 + i])
end
return answer
"""

# One message arriving at a join_k node. The bucket of a trace (a list) lives in Redis, so the
# messages of one trace may reach any workers. Until the k-th arrives each message is pushed
# and acked (status 3, held). The k-th is not acked here: it answers the k-1 held items
# (status 1) and marks the bucket as closing by its entry id; its commit (COMMIT_SCRIPT, with
# the bucket and the mark to delete) writes the joined message exactly once. If that worker
# dies first, whoever claims the entry completes the join again from the same items. A
# message of the same trace arriving while the bucket is closing waits and retries (status 4).
# KEYS: input stream, cancel key, bucket, closing mark. ARGV: group, entry id, k, item, ttl ms.
JOIN_SCRIPT = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return {0} end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[3], KEYS[4])
  return {2}
end
local closing = redis.call('GET', KEYS[4])
if closing and closing ~= ARGV[2] then return {4} end
local k = tonumber(ARGV[3])
if closing == ARGV[2] or redis.call('LLEN', KEYS[3]) + 1 >= k then
  redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[5])
  local answer = {1}
  for _, item in ipairs(redis.call('LRANGE', KEYS[3], 0, k - 2)) do
    answer[#answer + 1] = item
  end
  return answer
end
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return {3}
"""


class RedisRuntimeUnavailable(PenguiFlowError, ConnectionError):
    """Redis could not be reached; what was being sent was not sent (emit it again later)."""


@dataclass(frozen=True, slots=True)
class FlowKeys:
    """Key names of one shard of one flow (`prefix:name`).

    `tag` is the shard's Redis Cluster hash tag (`_shards.shard_tag`), put in every key as
    `<namespace>:{<tag>}:...` so that all the keys of one shard share one slot (a Lua script or
    a transaction may only touch one slot on a cluster). The empty tag (one plain server, one
    shard) gives the names used before shards existed. Use `flow_keys` for every shard."""

    namespace: str
    tag: str = ""

    def __post_init__(self) -> None:
        if self.tag and ("{" in self.namespace or "}" in self.namespace):
            # Redis hashes the first {...} of a key: a brace in the prefix or the flow name
            # would become the tag and put the shards' keys in the wrong slots.
            raise ConfigurationError(
                f"the flow namespace {self.namespace!r} holds '{{' or '}}', which Redis would "
                "take as the keys' hash tag; choose a prefix and flow_name without braces "
                "(for example prefix='penguiflow')"
            )

    @property
    def base(self) -> str:
        """What every key of this shard starts with."""
        return f"{self.namespace}:{{{self.tag}}}" if self.tag else self.namespace

    def node_stream(self, node: str) -> str:
        return f"{self.base}:in:{node}"

    def is_reply_stream(self, key: str) -> bool:
        return key.startswith(f"{self.base}:reply:")

    def reply_stream(self, client: str) -> str:
        return f"{self.base}:reply:{client}"

    def join_bucket(self, node: str, trace_id: str) -> str:
        return f"{self.base}:join:{node}:{trace_id}"

    def join_closing(self, node: str, trace_id: str) -> str:
        return f"{self.base}:join:{node}:{trace_id}:closing"

    def cancelled(self, trace_id: str | None) -> str:
        return f"{self.base}:cancelled:{trace_id or ''}"

    @property
    def cancel_channel(self) -> str:
        """Pub/sub channel of this shard's cancellations (a sharded channel on a cluster:
        SPUBLISH/SSUBSCRIBE route it by its tag, like the shard's keys)."""
        return f"{self.base}:cancel"

    @property
    def dead_letters(self) -> str:
        return f"{self.base}:dead"

    def alive(self, consumer: str) -> str:
        """A worker's heartbeat: present (with a time to live) while the worker runs.

        Kept in each shard the worker reads, next to the entries it holds there, so taking
        over a shard's entries never depends on another server."""
        return f"{self.base}:alive:{consumer}"

    def emitted(self, trace_id: str) -> str:
        return f"{self.base}:emitted:{trace_id}"

    def deaths(self, node: str, entry_id: str) -> str:
        """How many workers died holding an entry (see `WorkerPool._claim_stale`)."""
        return f"{self.base}:deaths:{node}:{entry_id}"


def flow_keys(
    namespace: str, shards: int = 1, *, tagged: bool | None = None
) -> tuple[FlowKeys, ...]:
    """The keys of every shard of the flow `namespace`, in shard order.

    `tagged` defaults to `shards > 1`; pass True on a Redis Cluster, where even one shard
    needs a tag (its keys must share a slot). Untagged, a single shard keeps the key names
    used before shards existed."""
    if tagged is None:
        tagged = shards > 1
    if not tagged:
        if shards != 1:
            raise ConfigurationError(
                f"{shards} shards need hash tags to keep their keys apart; pass tagged=True"
            )
        return (FlowKeys(namespace),)
    return tuple(FlowKeys(namespace, tag) for tag in shard_tags(shards))


def lost_group(exc: BaseException) -> bool:
    """Whether Redis answered NOGROUP: the stream or its consumer group is gone, because
    Redis lost its data (restarted without persistence, or failed over to a replica that had
    not received it). The readers make the groups again; what was in them is gone."""
    from redis.exceptions import ResponseError

    return isinstance(exc, ResponseError) and "NOGROUP" in str(exc)


async def ensure_group(client: Any, stream: str) -> None:
    """Create the consumer group (and the stream) unless it exists."""
    from redis.exceptions import ResponseError

    try:
        await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
