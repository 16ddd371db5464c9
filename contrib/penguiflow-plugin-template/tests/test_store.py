"""The store passes the kernel's state-store conformance suite, reopen included."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from penguiflow_plugin_template import JsonLinesStateStore

from penguiflow.plugins import resolve_driver
from penguiflow.state import StateStore
from penguiflow.testing import StateStoreConformance


class TestJsonLinesStore(StateStoreConformance):
    async def make_store(self) -> StateStore:
        folder = Path(tempfile.mkdtemp(prefix="pf-template-"))
        store: StateStore = resolve_driver("state_store", f"jsonl://{folder}/events.jsonl")
        return store

    async def reopen_store(self, store: StateStore) -> StateStore:
        assert isinstance(store, JsonLinesStateStore)
        return JsonLinesStateStore(store.url)


def test_bad_url_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match=r"expected jsonl:///absolute/path/events\.jsonl"):
        JsonLinesStateStore("jsonl://")
