"""The serving commands' `--log-level` and `--log-format`: one setup for our logs and uvicorn's."""

from __future__ import annotations

import logging
from typing import IO

from penguiflow.logging import LOG_FORMATS

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "configure_logging"]

# `LOG_FORMATS` (what `--log-format` accepts) is the kernel's: one list for every command.
#: What `--log-level` accepts.
LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(
    level: str, log_format: str = "text", *, stream: IO[str] | None = None
) -> logging.Logger:
    """Every logger of the process (root: PenguiFlow's, the plugins', uvicorn's) writes
    `text` or `json` lines with trace and span ids to stderr at `level`.

    `serve_app` hands uvicorn no logging configuration of its own, so its error and access
    records reach these handlers and come out in the same format; its access lines appear at
    `info` and below."""
    from penguiflow.logging import configure_command_logging

    return configure_command_logging(level.upper(), log_format.lower(), stream=stream)
