"""Logging setup for PenguiFlow: JSON lines or readable lines with the events' extras."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

__all__ = ["ExtraFormatter", "StructuredFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRS}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


class StructuredFormatter(logging.Formatter):
    """One JSON object per record: level, logger, message, timestamp, extra, exception."""

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
        extra = {key: _jsonable(value) for key, value in _extras(record).items()}
        if extra:
            entry["extra"] = extra
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, indent=self.indent, ensure_ascii=False)


class ExtraFormatter(logging.Formatter):
    """Standard formatting followed by ` [key=value, ...]` for the record's extras."""

    _MAX_VALUE = 100

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if not extras:
            return text
        parts = []
        for key, value in extras.items():
            if isinstance(value, str):
                shown = value if len(value) <= self._MAX_VALUE else value[: self._MAX_VALUE] + "..."
                parts.append(f'{key}="{shown}"')
            else:
                parts.append(f"{key}={value}")
        return f"{text} [{', '.join(parts)}]"


def configure_logging(
    level: int | str = logging.INFO,
    *,
    structured: bool = False,
    include_extras: bool = True,
    logger_name: str = "penguiflow",
) -> logging.Logger:
    """Give the `penguiflow` logger one stream handler (JSON, extras, or plain)."""
    logger = logging.getLogger(logger_name)
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler()
    formatter: logging.Formatter
    if structured:
        formatter = StructuredFormatter()
    elif include_extras:
        formatter = ExtraFormatter("%(levelname)s:%(name)s:%(message)s")
    else:
        formatter = logging.Formatter("%(levelname)s:%(name)s:%(message)s")
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.propagate = False
    return logger
