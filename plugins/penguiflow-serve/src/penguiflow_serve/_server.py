"""An ASGI app under uvicorn, on a socket bound beforehand, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator
from typing import Any

__all__ = ["serve_app"]


def _server_class() -> type[Any]:
    import uvicorn

    class CommandServer(uvicorn.Server):
        """uvicorn's server without its own signal handling: once stopped, uvicorn re-raises
        SIGTERM, which would end the process before the command closes what it made. The
        command's loop handles the signals instead, and the process exits 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        def request_exit(self) -> None:
            # A second signal stops at once, without waiting for open streams.
            self.force_exit = self.should_exit
            self.should_exit = True

    return CommandServer


async def serve_app(
    app: Any,
    sock: socket.socket,
    *,
    log_level: str = "warning",
    graceful_shutdown_s: int = 3,
) -> None:
    """Serve `app` on `sock` until SIGINT or SIGTERM (a second one stops at once), then
    return. Open streams (SSE, WebSocket) get `graceful_shutdown_s` to end before they are
    cut: they would otherwise hold the shutdown for as long as clients stay. Run it from the
    main thread's event loop (signal handlers are installed there).

    uvicorn gets no logging configuration of its own (`log_config=None`): its records go to
    the handlers `configure_logging` installed, in the command's format; `log_level` still
    sets its loggers' levels."""
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level=log_level.lower(),
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=graceful_shutdown_s,
    )
    server = _server_class()(config)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, server.request_exit)
    try:
        await server.serve(sockets=[sock])
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
