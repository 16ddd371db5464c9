"""`ScriptedHTTPServer`: a real HTTP server on 127.0.0.1 that answers from a script.

For testing LLM adapters over real sockets: queue the replies the next requests get, in
order, and read back what each request sent. It runs in its own thread, so an asyncio client
in the test's event loop talks to it as to any remote server. Only the standard library is
used, so importing it costs nothing beyond this package.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeAlias

__all__ = ["RecordedRequest", "ScriptedHTTPServer", "ScriptedResponse"]


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    """One answer. `body` is sent whole; or `chunks` are sent one by one with `chunk_delay_s`
    between them and the connection closed after them (a stream). `cut_after` closes the
    connection after that many chunks, or for `body` after half of it, without finishing."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    chunks: list[bytes | str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunk_delay_s: float = 0.0
    cut_after: int | None = None
    delay_s: float = 0.0

    @classmethod
    def sse(
        cls,
        events: list[dict[str, Any] | str],
        *,
        event_names: list[str | None] | None = None,
        **options: Any,
    ) -> ScriptedResponse:
        """A text/event-stream of `data:` events (dicts sent as JSON)."""
        chunks: list[bytes | str] = []
        for index, event in enumerate(events):
            name = event_names[index] if event_names else None
            data = event if isinstance(event, str) else json.dumps(event)
            prefix = f"event: {name}\n" if name else ""
            chunks.append(f"{prefix}data: {data}\n\n")
        headers = {"content-type": "text/event-stream", **options.pop("headers", {})}
        return cls(chunks=chunks, headers=headers, **options)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


#: A response, or a function of the request returning one (e.g. SSE only when it streams).
Scripted: TypeAlias = "ScriptedResponse | Callable[[RecordedRequest], ScriptedResponse]"


class ScriptedHTTPServer:
    """`with ScriptedHTTPServer() as server:` ... `server.url`, `server.add(...)`,
    `server.requests`. A request with no scripted response left gets a 500 saying so."""

    def __init__(self) -> None:
        self._responses: deque[Scripted] = deque()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, *responses: Scripted) -> None:
        with self._lock:
            self._responses.extend(responses)

    @property
    def remaining(self) -> int:
        return len(self._responses)

    def start(self) -> ScriptedHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedHTTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next(self, request: RecordedRequest) -> ScriptedResponse:
        with self._lock:
            self.requests.append(request)
            scripted = self._responses.popleft() if self._responses else None
        if isinstance(scripted, ScriptedResponse):
            return scripted
        if scripted is not None:
            return scripted(request)
        return ScriptedResponse(
            status=500, body={"error": {"message": "ScriptedHTTPServer has no response left"}}
        )


def _encode(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def _handler_for(server: ScriptedHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output clean

        def do_POST(self) -> None:
            self._answer()

        def do_GET(self) -> None:
            self._answer()

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            reply = server._next(RecordedRequest(self.command, self.path, headers, body))
            if reply.delay_s:
                time.sleep(reply.delay_s)
            try:
                self._send(reply)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up first (a timeout test): nobody is left to answer, and a
                # traceback on stderr would only look like a failure.
                self.close_connection = True

        def _send(self, reply: ScriptedResponse) -> None:
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            if reply.chunks is None:
                data = _encode(reply.body)
                is_json = reply.body is not None and not isinstance(reply.body, bytes | str)
                if is_json and "content-type" not in {k.lower() for k in reply.headers}:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if reply.cut_after is not None:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)
                return
            # A stream: no length, the end of the body is the end of the connection.
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            for index, chunk in enumerate(reply.chunks):
                if reply.cut_after is not None and index >= reply.cut_after:
                    return
                self.wfile.write(_encode(chunk))
                self.wfile.flush()
                if reply.chunk_delay_s:
                    time.sleep(reply.chunk_delay_s)

    return Handler
