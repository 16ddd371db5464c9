"""UTCPConnector's structured concurrency against the real manual app: `async with` and an
idempotent `aclose()`, calls and manual fetches cut by their timeout, and a client whose
registration is cancelled or times out is closed, never left open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from penguiflow_utcp import UTCPConnectionError, UTCPConnector, UTCPError, UTCPToolError

from penguiflow.errors import PenguiFlowError
from penguiflow.testing import leftover_tasks, run_async


def test_async_with_closes_the_client_and_aclose_is_idempotent(manual_url: str) -> None:
    async def scenario() -> None:
        before = set(asyncio.all_tasks())
        async with UTCPConnector.http("notes", manual_url) as connector:
            assert (await connector.call_tool("add", {"a": 1, "b": 2})).structured == {"sum": 3}
        assert connector._client is None
        await connector.aclose()
        await connector.aclose()
        reconnected = await connector.call_tool("add", {"a": 2, "b": 2})
        assert reconnected.structured == {"sum": 4}
        await connector.aclose()
        assert await leftover_tasks(before) == set()

    run_async(scenario)


def test_a_call_past_timeout_s_is_cut_and_the_connector_goes_on(manual_url: str) -> None:
    async def scenario() -> None:
        async with UTCPConnector.http("notes", manual_url, timeout_s=0.5) as connector:
            with pytest.raises(UTCPToolError, match=r"notes\.slow did not answer within 0\.5s"):
                await connector.call_tool("slow", {"seconds": 30})
            assert (await connector.call_tool("add", {"a": 5, "b": 5})).structured == {"sum": 10}

    run_async(scenario)


def closes_recorded(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[Any], Any]:
    """Record every UTCP client made and every one closed; an event is set once one is made."""
    from utcp.utcp_client import UtcpClient

    made: list[Any] = []
    closed: list[Any] = []
    created = asyncio.Event()
    create = UtcpClient.create.__func__  # type: ignore[attr-defined]

    async def recording_create(cls: Any, *args: Any, **kwargs: Any) -> Any:
        client = await create(cls, *args, **kwargs)
        close = client.close

        async def recording_close() -> None:
            closed.append(client)
            await close()

        client.close = recording_close
        made.append(client)
        created.set()
        return client

    monkeypatch.setattr(UtcpClient, "create", classmethod(recording_create))
    return made, closed, created


def test_a_manual_that_does_not_arrive_in_time_closes_its_client(
    manual_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made, closed, _ = closes_recorded(monkeypatch)
    late = UTCPConnector.http("late", manual_url + "-slow", timeout_s=0.5)
    with pytest.raises(UTCPConnectionError, match=r"'late' could not be fetched .*within 0\.5s"):
        run_async(late.list_tools)
    assert len(made) == 1 and closed == made


def test_cancelling_the_first_call_while_the_manual_loads_closes_its_client(
    manual_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: a cancellation while the manual was being fetched skipped the clean-up
    # (it only ran for Exceptions), leaving the UTCP client open.
    made, closed, created = closes_recorded(monkeypatch)
    late = UTCPConnector.http("late", manual_url + "-slow")

    async def scenario() -> None:
        before = set(asyncio.all_tasks())
        call = asyncio.create_task(late.list_tools())
        await asyncio.wait_for(created.wait(), 10)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await leftover_tasks(before - {call}) == set()

    run_async(scenario)
    assert len(made) == 1 and closed == made
    assert late._client is None


def test_errors_are_penguiflow_errors_and_keep_their_builtin_bases() -> None:
    assert issubclass(UTCPError, PenguiFlowError) and issubclass(UTCPError, RuntimeError)
    assert issubclass(UTCPConnectionError, UTCPError)
    assert issubclass(UTCPConnectionError, ConnectionError)
    assert issubclass(UTCPToolError, UTCPError)
