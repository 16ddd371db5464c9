"""A template PenguiFlow plugin: copy it, rename it, keep the tests passing."""

from __future__ import annotations

__all__ = ["EchoConnector", "JsonLinesStateStore"]

from .connector import EchoConnector
from .store import JsonLinesStateStore
