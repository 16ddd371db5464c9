"""The Server-Sent Events stream of one subscription."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ._wire import encode_sse, update_view

if TYPE_CHECKING:
    from ..models import StateUpdate

__all__ = ["sse_stream"]

# Sent first: the reconnect delay EventSource should use, and a comment telling the client
# that the subscription exists (anything emitted from now on reaches it).
_PREAMBLE = b"retry: 2000\n: subscribed\n\n"
_HEARTBEAT = b": ping\n\n"


#: The last updates encoded, by (object identity, public session id): every subscriber of a
#: session gets the same StateUpdate object, so it is encoded once, not once per subscriber.
#: Each entry holds its update, so an id cannot be reused while it is cached.
_ENCODED: OrderedDict[tuple[int, str], tuple[StateUpdate, bytes]] = OrderedDict()
_ENCODED_MAX = 512


def _encoded(update: StateUpdate, session_id: str) -> bytes:
    key = (id(update), session_id)
    cached = _ENCODED.get(key)
    if cached is not None and cached[0] is update:
        return cached[1]
    data = encode_sse(data=update_view(update, session_id), event_id=update.update_id)
    _ENCODED[key] = (update, data)
    if len(_ENCODED) > _ENCODED_MAX:
        _ENCODED.popitem(last=False)
    return data


#: How many updates the stream takes from its subscription ahead of writing them: enough to
#: write a burst as one chunk, few enough that a slow client leaves the rest in the
#: subscription's own bounded queue, where the broker drops and counts as it should.
_AHEAD = 64
_PING = object()
_END = object()


async def sse_stream(
    subscription: AsyncIterator[StateUpdate], session_id: str, *, heartbeat_s: float
) -> AsyncIterator[bytes]:
    """Each update as an event whose `id` is its `update_id` (the cursor a reconnecting
    client sends back as `Last-Event-ID`), with a comment every `heartbeat_s` of silence.

    The heartbeat keeps proxies from closing an idle stream, and writing it is how the server
    learns that a client went away, which ends the subscription. One reader task moves
    updates into a small queue; the stream writes whatever is queued as one chunk (a burst
    costs one write, not one per update) and encodes an update once for all its subscribers
    (`_encoded`)."""
    yield _PREAMBLE
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=_AHEAD)

    async def read() -> None:
        try:
            async for update in subscription:
                await queue.put(update)
        except Exception as exc:  # raised again by the stream, which the client sees end
            await queue.put(exc)
            return
        await queue.put(_END)

    def ping() -> None:
        # Only into an empty queue: a full one has updates to write, which do the same job.
        if queue.empty():
            queue.put_nowait(_PING)

    reader = asyncio.ensure_future(read())
    timer: asyncio.TimerHandle | None = None
    try:
        while True:
            timer = loop.call_later(heartbeat_s, ping)
            items = [await queue.get()]
            timer.cancel()
            while not queue.empty():
                items.append(queue.get_nowait())
            chunks: list[bytes] = []
            for item in items:
                if item is _PING:
                    chunks.append(_HEARTBEAT)
                elif item is _END:
                    # The session closed: say so, so the client does not reconnect in a loop.
                    chunks.append(encode_sse(event="end", data={"reason": "session closed"}))
                    yield b"".join(chunks)
                    return
                elif isinstance(item, Exception):
                    if chunks:
                        yield b"".join(chunks)
                    raise item
                else:
                    chunks.append(_encoded(item, session_id))  # type: ignore[arg-type]
            yield b"".join(chunks)
    finally:
        if timer is not None:
            timer.cancel()
        if not reader.done():
            # Cancelling the reader ends the subscription inside it; awaiting it here could
            # be cancelled again by the server's cancel scope, so it finishes on its own.
            reader.cancel()
