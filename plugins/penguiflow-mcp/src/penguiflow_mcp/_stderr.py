"""What a stdio server writes on stderr: logged line by line and its tail kept for errors.

A server's stderr is its log, and the only place it says why it failed to start; inherited by
default, it goes to the host's terminal and never reaches an error message. Here it goes to a
pipe read by a daemon thread (a plain blocking read works on every platform and needs no
event loop, so a server that logs while the loop is busy never blocks on a full pipe).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import TextIO

import anyio

__all__ = ["StderrCapture", "server_logger"]

#: how many of the last stderr lines an error quotes
_TAIL_LINES = 20
#: how long to wait for the last lines of a server that died before quoting them
_DRAIN_S = 2.0


def server_logger(prefix: str, server: str) -> logging.Logger:
    """The logger a server's stderr goes to: `<prefix>.server.<name>` (one per server, so
    its level and handlers can be set apart from the others)."""
    return logging.getLogger(f"{prefix}.server.{server}")


class StderrCapture:
    """One pipe for one server process: `writer` is handed to the process as its stderr;
    each line it writes is logged (INFO) and the last ones are kept for `tail()`."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        read_fd, write_fd = os.pipe()
        self._reader = os.fdopen(read_fd, "rb")
        self.writer: TextIO = os.fdopen(write_fd, "w", encoding="utf-8")
        self._lines: deque[str] = deque(maxlen=_TAIL_LINES)
        self._thread = threading.Thread(
            target=self._pump, name=f"{logger.name}:stderr", daemon=True
        )
        self._thread.start()

    def _pump(self) -> None:
        try:
            for raw in self._reader:
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    self._lines.append(line)
                    self.logger.info("%s", line)
        except (OSError, ValueError):  # the pipe went away under us: nothing more to read
            pass
        finally:
            self._reader.close()

    def release(self) -> None:
        """Close this process's copy of the write end (idempotent). Call it once the server
        process has started (it holds its own copy), so the reader sees end-of-file when the
        server exits."""
        if not self.writer.closed:
            self.writer.close()

    async def drain(self) -> None:
        """Release the write end and wait (briefly) until every line the server wrote has
        been read. Bounded: a process the server started may still hold the pipe open."""
        self.release()
        await anyio.to_thread.run_sync(self._thread.join, _DRAIN_S)

    def tail(self) -> str:
        """The last lines read, joined by " | " (empty when the server wrote nothing)."""
        return " | ".join(self._lines)
