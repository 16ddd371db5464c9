from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# playground_agents and _support are imported by name, as `penguiflow dev` imports a TARGET.
sys.path.insert(0, str(Path(__file__).parent))

from penguiflow.observability import CAPTURE_CONTENT_ENV


@pytest.fixture(autouse=True)
def _capture_content(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # What `penguiflow dev` turns on: thoughts, arguments and observations on events.
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "1")
    yield


@pytest.fixture
def reports_dir() -> Path:
    folder = Path(os.environ.get("PLAYGROUND_REPORTS", Path(__file__).parents[1] / ".reports"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def planner_app(tmp_path: Path) -> AsyncIterator[Any]:
    from penguiflow_playground import create_playground_app
    from playground_agents import build_planner

    from penguiflow.state.sqlite import SQLiteStateStore

    store = SQLiteStateStore(f"sqlite:///{tmp_path / 'playground.db'}")
    app = create_playground_app(build_planner(), state_store=store)
    async with app.router.lifespan_context(app):
        yield app
    await store.aclose()


@pytest.fixture
async def client(planner_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=planner_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://playground") as http:
        yield http
