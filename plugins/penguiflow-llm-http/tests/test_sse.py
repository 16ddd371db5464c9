"""Server-sent events, line by line."""

from __future__ import annotations

from collections.abc import AsyncIterator

from penguiflow_llm_http import SSEEvent, SSEParser, iter_sse

from penguiflow.testing import run_async


def test_sse_parser_handles_names_multiline_comments_and_a_missing_final_blank() -> None:
    parser = SSEParser()
    lines = [": keep-alive", "event: delta", "id: 7", "data: a", "data: b", "", "data: last"]
    events = [e for e in (parser.feed(line) for line in lines) if e is not None]
    assert events == [SSEEvent(event="delta", data="a\nb", id="7")]
    assert parser.flush() == SSEEvent(event="message", data="last", id="7")
    assert parser.flush() is None


async def _lines(lines: list[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


def test_iter_sse_strips_line_breaks_and_yields_the_unterminated_last_event() -> None:
    async def scenario() -> list[SSEEvent]:
        return [e async for e in iter_sse(_lines(["data: 1\r\n", "\n", "", "data: 2"]))]

    assert [e.data for e in run_async(scenario)] == ["1", "2"]
