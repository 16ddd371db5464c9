"""Redis key layout of one distributed flow, and the atomic commit of a processed entry.

Every key of a flow lives under `<prefix>:<flow name>`:
- `...:in:<node>`: the node's input stream, read by the consumer group `workers`. An entry is
  deleted once processed, so its length is the node's backlog (what backpressure bounds).
- `...:reply:<client>`: results and stream chunks for one client process.
- `...:cancelled:<trace>`: set (with a TTL) when a trace is cancelled; `...:cancel` is the
  pub/sub channel that tells running workers at once.
- `...:dead`: entries no worker could decode, kept for inspection (capped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "COMMIT_SCRIPT",
    "GROUP",
    "FlowKeys",
    "RedisRuntimeUnavailable",
    "ensure_group",
]

GROUP = "workers"

# Ack the input entry and add the outputs in one step. XACK answers 1 only for the first
# process to finish an entry (a slow worker whose entry was claimed by another, or a
# redelivered copy, gets 0), so outputs are written exactly once even when the node ran twice.
# A cancelled trace's outputs are dropped here, after the node ran, wherever it ran.
# Answers {status} or, when written, {1, length of each output stream}: the lengths keep the
# worker's backpressure view fresh without a round trip of its own.
COMMIT_SCRIPT = """
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if acked == 0 then return {0} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {2} end
local answer = {1}
for i = 3, #KEYS do
  redis.call('XADD', KEYS[i], '*', 'e', ARGV[i])
  answer[i - 1] = redis.call('XLEN', KEYS[i])
end
return answer
"""


class RedisRuntimeUnavailable(ConnectionError):
    """Redis could not be reached; what was being sent was not sent (emit it again later)."""


@dataclass(frozen=True, slots=True)
class FlowKeys:
    """Key names of one flow (`prefix:name`)."""

    namespace: str

    def node_stream(self, node: str) -> str:
        return f"{self.namespace}:in:{node}"

    def reply_stream(self, client: str) -> str:
        return f"{self.namespace}:reply:{client}"

    def cancelled(self, trace_id: str | None) -> str:
        return f"{self.namespace}:cancelled:{trace_id or ''}"

    @property
    def cancel_channel(self) -> str:
        return f"{self.namespace}:cancel"

    @property
    def dead_letters(self) -> str:
        return f"{self.namespace}:dead"


async def ensure_group(client: Any, stream: str) -> None:
    """Create the consumer group (and the stream) unless it exists."""
    from redis.exceptions import ResponseError

    try:
        await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
