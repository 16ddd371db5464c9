"""Logging setup for PenguiFlow: JSON lines or readable lines, with the events' extras and the
ids of the trace and span the logging code ran in.

A record logged while a node, planner step, tool or request runs inside a span
(`penguiflow.tracecontext.current_span()`) carries that span's W3C `trace_id` and `span_id`,
and a record logged while a node handles a message carries the PenguiFlow trace id
(`penguiflow_trace_id`), so a log line can be found from a trace in a tracing backend and the
other way round. `TraceContextFilter` stamps them on the record where it is logged (put it on
a handler of your own, or on a `QueueHandler` before records change thread); the formatters
read them from the record, or from the running context when no filter stamped them.

`log_options(level_help=...)` gives a click command the `--log-level` and `--log-format`
options every long-running command shares (`penguiflow worker`, `penguiflow dev`,
`penguiflow serve-session`, `penguiflow a2a serve`); the command hands their values to
`configure_command_logging`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any, Literal, TypeVar

__all__ = [
    "LOG_FORMATS",
    "ExtraFormatter",
    "StructuredFormatter",
    "TraceContextFilter",
    "configure_command_logging",
    "configure_logging",
    "log_options",
    "trace_ids",
]

#: The formats the commands' `--log-format` accepts.
LOG_FORMATS = ("text", "json")

# The levels `--log-level` offers; `log_options` writes them in its default's case.
_LEVELS = ("debug", "info", "warning", "error")

_FORMAT_HELP = "Readable lines, or one JSON object per line; both carry trace and span ids."

_Command = TypeVar("_Command", bound=Callable[..., Any])


def log_options(
    *,
    level_help: str,
    default_level: str = "WARNING",
    format_help: str = _FORMAT_HELP,
) -> Callable[[_Command], _Command]:
    """A click decorator adding `--log-level` (parameter `log_level`) and `--log-format`
    (parameter `log_format`, one of `LOG_FORMATS`, default `text`) to a command.

    `--log-level` offers debug, info, warning and error, written in the case of
    `default_level` (`"WARNING"`: the command receives `"INFO"`; `"warning"`: `"info"`).
    Both options take any case and hand the command the choice as declared, so it need not
    normalise them; pass them to `configure_command_logging`, which takes either case.
    `level_help` says what the command logs; `format_help` has a default shared by all."""
    # click is imported here, not at module level: `import penguiflow` imports this module
    # and must stay fast for code that never builds a command.
    import click

    levels = _LEVELS if default_level.islower() else tuple(n.upper() for n in _LEVELS)
    if default_level not in levels:
        from .errors import ConfigurationError

        raise ConfigurationError(
            f"default_level {default_level!r} is not a --log-level choice; pass one of "
            f"{', '.join(levels)} (all lower or all upper case)"
        )
    level_option = click.option(
        "--log-level",
        "log_level",
        type=click.Choice(levels, case_sensitive=False),
        default=default_level,
        show_default=True,
        help=level_help,
    )
    format_option = click.option(
        "--log-format",
        "log_format",
        type=click.Choice(LOG_FORMATS, case_sensitive=False),
        default="text",
        show_default=True,
        help=format_help,
    )

    def decorate(command: _Command) -> _Command:
        # Decorators apply inside out: the format option goes on first so `--help` lists
        # --log-level above --log-format, as the commands always have.
        return level_option(format_option(command))

    return decorate


#: The record attribute `TraceContextFilter` fills: a dict of the ids below, maybe empty.
_IDS_ATTR = "penguiflow_ids"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    _IDS_ATTR,
}


def trace_ids() -> dict[str, str]:
    """The ids of the running code: `trace_id` and `span_id` (W3C, of `current_span()`) when
    it runs inside a span, `penguiflow_trace_id` while a node handles a message; empty
    outside both."""
    # Imported here: `penguiflow.logging` must stay importable without the engine's modules.
    from ._engine import current_trace
    from .tracecontext import current_span

    ids: dict[str, str] = {}
    span = current_span()
    if span is not None:
        ids["trace_id"] = span.trace_id
        ids["span_id"] = span.span_id
    trace_id = current_trace.get()
    if trace_id is not None:
        ids["penguiflow_trace_id"] = trace_id
    return ids


def _ids_of(record: logging.LogRecord) -> dict[str, str]:
    ids = getattr(record, _IDS_ATTR, None)
    return ids if isinstance(ids, dict) else trace_ids()


class TraceContextFilter(logging.Filter):
    """Stamps `trace_ids()` on every record it sees (it never drops one). Attach it to a
    handler: handler filters run where the record is logged, so they see its context."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(getattr(record, _IDS_ATTR, None), dict):
            setattr(record, _IDS_ATTR, trace_ids())
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRS}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


class StructuredFormatter(logging.Formatter):
    """One JSON object per record: level, logger, message, timestamp, the trace ids
    (`trace_id`, `span_id`, `penguiflow_trace_id`, each only when known), extra, exception."""

    def __init__(self, include_timestamp: bool = True, indent: int | None = None) -> None:
        super().__init__()
        self.include_timestamp = include_timestamp
        self.indent = indent

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.include_timestamp:
            entry["timestamp"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat()
        entry.update(_ids_of(record))
        extra = {key: _jsonable(value) for key, value in _extras(record).items()}
        if extra:
            entry["extra"] = extra
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, indent=self.indent, ensure_ascii=False)


class ExtraFormatter(logging.Formatter):
    """Standard formatting followed by ` [key=value, ...]` for the record's extras, then
    ` trace_id=... span_id=...` when the record was logged inside a span (and
    ` penguiflow_trace_id=...` when that differs from the W3C trace id)."""

    _MAX_VALUE = 100

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            parts = []
            for key, value in extras.items():
                if isinstance(value, str):
                    shown = (
                        value if len(value) <= self._MAX_VALUE else value[: self._MAX_VALUE] + "..."
                    )
                    parts.append(f'{key}="{shown}"')
                else:
                    parts.append(f"{key}={value}")
            text = f"{text} [{', '.join(parts)}]"
        ids = _ids_of(record)
        if ids.get("penguiflow_trace_id") == ids.get("trace_id"):
            # A trace with no incoming context: its W3C id is the PenguiFlow id; say it once.
            ids = {k: v for k, v in ids.items() if k != "penguiflow_trace_id"}
        if ids:
            text += "".join(f" {key}={value}" for key, value in ids.items())
        return text


def configure_logging(
    level: int | str = logging.INFO,
    *,
    structured: bool = False,
    include_extras: bool = True,
    logger_name: str = "penguiflow",
    stream: IO[str] | None = None,
) -> logging.Logger:
    """Give the `penguiflow` logger (or `logger_name`; `""` is the root logger, which the
    commands configure so every library's records come out alike) one stream handler writing
    to `stream` (default stderr): JSON lines when `structured`, else readable lines with the
    extras (unless `include_extras` is false). Both formats carry the trace ids
    (`TraceContextFilter` is on the handler). Returns the logger."""
    logger = logging.getLogger(logger_name)
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter
    if structured:
        formatter = StructuredFormatter()
    elif include_extras:
        formatter = ExtraFormatter("%(levelname)s:%(name)s:%(message)s")
    else:
        formatter = logging.Formatter("%(levelname)s:%(name)s:%(message)s")
    handler.setFormatter(formatter)
    handler.addFilter(TraceContextFilter())
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def configure_command_logging(
    level: str, log_format: Literal["text", "json"] | str, *, stream: IO[str] | None = None
) -> logging.Logger:
    """What a long-running command (`penguiflow worker`, the serving commands) does with its
    `--log-level` and `--log-format`: every logger of the process (the root logger) writes
    `text` (readable lines with extras) or `json` lines to stderr at `level`."""
    if log_format not in LOG_FORMATS:
        from .errors import ConfigurationError

        raise ConfigurationError(
            f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}"
        )
    return configure_logging(level, structured=log_format == "json", logger_name="", stream=stream)
