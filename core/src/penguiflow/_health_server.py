"""`/healthz` and `/readyz` from a plain asyncio server, for processes without a web framework.

The worker has no ASGI stack and should not need one to answer a probe: this speaks just
enough HTTP/1.1 for kubelet, load balancers, curl and `penguiflow health` (a GET or HEAD,
one request per connection, a JSON answer, the connection closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .resources import AsyncResource

if TYPE_CHECKING:
    from .health import HealthChecks

__all__ = ["HealthServer", "liveness_body", "serve_health"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}
#: A request head longer than this is refused: probes send a few short lines.
_MAX_HEAD = 16 * 1024
#: A client that has not sent its request line within this is dropped.
_READ_TIMEOUT_S = 5.0


def liveness_body() -> dict[str, Any]:
    """What `/healthz` answers (with status 200): the process is alive."""
    return {"status": "ok"}


class HealthServer(AsyncResource):
    """Serves `/healthz` (alive) and `/readyz` (`checks`) until closed."""

    def __init__(self, checks: HealthChecks) -> None:
        self.checks = checks
        self._server: asyncio.Server | None = None
        self._host = ""
        self._closed = False

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host:port` (0 picks a free port: read it from `port`)."""
        if self._server is not None or self._closed:
            raise UsageError("a HealthServer starts once; make a new one to listen again")
        self._host = host
        self._server = await asyncio.start_server(self._handle, host, port, limit=_MAX_HEAD)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise UsageError("the health server is not listening; await start() first")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """`http://host:port` (an IPv6 host in brackets)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def aclose(self) -> None:
        """Stop listening (idempotent); requests being answered finish."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            except (asyncio.IncompleteReadError, TimeoutError):
                return  # the client went away or never asked: nobody to answer
            except asyncio.LimitOverrunError:
                await _respond(writer, 400, {"error": "request head too large"}, head_only=False)
                return
            status, body, head_only = await self._answer(head)
            await _respond(writer, status, body, head_only=head_only)
        except ConnectionError:
            pass  # the client hung up while we answered
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> tuple[int, dict[str, Any], bool]:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, {"error": f"not an HTTP request line: {request_line[:80]!r}"}, False
        method, target = parts[0].upper(), parts[1]
        head_only = method == "HEAD"
        if method not in ("GET", "HEAD"):
            return 405, {"error": f"{method} is not allowed; use GET"}, False
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return 200, liveness_body(), head_only
        if path == "/readyz":
            report = await self.checks.run()
            return report.status_code, report.to_dict(), head_only
        return 404, {"error": f"no endpoint at {path}; try /healthz or /readyz"}, head_only


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: dict[str, Any], *, head_only: bool
) -> None:
    payload = json.dumps(body).encode()
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    if status == 405:
        lines.append("Allow: GET, HEAD")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if not head_only:
        writer.write(payload)
    await writer.drain()


async def serve_health(
    checks: HealthChecks, *, host: str = "127.0.0.1", port: int = 0
) -> HealthServer:
    """A started `HealthServer` for `checks` on `host:port`; close it with `aclose()` (or use
    it with `async with`)."""
    server = HealthServer(checks)
    await server.start(host, port)
    return server
