"""Streaming the final answer while the model writes its action (`stream_final_response`):
PenguiFlow 3.11's `llm_stream_chunk` events, checked on `AnswerStreamer` with a recording
`emit` and replies split every way."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from penguiflow_planner._actions import PlannerAction
from penguiflow_planner._answer_stream import AnswerStreamer, action_finished, action_started


class Recorder:
    """An `emit` that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(
        self, event_type: str, extra: Mapping[str, Any], *, node_name: str | None = None
    ) -> None:
        self.events.append((event_type, dict(extra)))

    def chunks(self, phase: str) -> list[dict[str, Any]]:
        return [e for t, e in self.events if t == "llm_stream_chunk" and e["phase"] == phase]

    def text(self, phase: str = "answer") -> str:
        return "".join(e["text"] for e in self.chunks(phase) if not e["done"])


def pieces(text: str, cuts: Sequence[int]) -> list[str]:
    points = sorted({min(max(c, 0), len(text)) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


async def stream(
    reply: str,
    chunks: Sequence[str] | None = None,
    *,
    action: PlannerAction | None = None,
    **options: Any,
) -> tuple[str | None, Recorder, AnswerStreamer]:
    recorder = Recorder()
    streamer = AnswerStreamer(recorder, action_seq=7, **options)
    for chunk in chunks if chunks is not None else [reply]:
        await streamer.feed(chunk)
    return await streamer.finish(action=action), recorder, streamer


# -- PenguiFlow's event shape --------------------------------------------------------------------


async def test_a_finish_streams_its_answer_then_one_done_chunk() -> None:
    reply = json.dumps(
        {"thought": "all done", "next_node": "final_response", "args": {"answer": "Hello, world"}}
    )
    result, recorder, _ = await stream(reply, pieces(reply, range(0, len(reply), 5)))
    assert result == "Hello, world"
    answer = recorder.chunks("answer")
    assert answer[-1] == {
        "text": "", "done": True, "phase": "answer", "channel": "answer", "action_seq": 7
    }  # fmt: skip
    assert all(c["channel"] == "answer" and c["action_seq"] == 7 for c in answer)
    assert [c["done"] for c in answer].count(True) == 1
    assert recorder.text() == "Hello, world"
    assert len(answer) > 2  # it came in pieces, as the model wrote it
    thinking = recorder.chunks("observation")
    assert {c["channel"] for c in thinking} == {"thinking"}
    assert recorder.text("observation") == "all done"


async def test_action_markers_frame_every_model_call() -> None:
    recorder = Recorder()
    await action_started(recorder, action_seq=3)
    await action_finished(recorder, action_seq=3)
    assert [e for _, e in recorder.events] == [
        {"text": "", "done": False, "phase": "action", "channel": "thinking", "action_seq": 3},
        {"text": "", "done": True, "phase": "action", "channel": "thinking", "action_seq": 3},
    ]


async def test_raw_answer_and_the_legacy_null_finish_stream_too() -> None:
    result, recorder, _ = await stream('{"next_node": null, "args": {"raw_answer": "legacy"}}')
    assert result == "legacy"
    assert recorder.text() == "legacy"


async def test_the_thought_can_be_left_out() -> None:
    reply = '{"thought": "secret plan", "next_node": "final_response", "args": {"answer": "x"}}'
    _, recorder, _ = await stream(reply, stream_thought=False)
    assert recorder.chunks("observation") == []
    assert recorder.text() == "x"


# -- decoding ------------------------------------------------------------------------------------


async def test_escapes_decode_exactly_whatever_the_split() -> None:
    answer = 'line one\nline "two"\t\\ caf\u00e9 \U0001f600 \u2603 end/'
    reply = json.dumps({"next_node": "final_response", "args": {"answer": answer}})
    assert "\\ud83d\\ude00" in reply  # a surrogate pair, escaped
    for cut in range(len(reply) + 1):
        result, _, _ = await stream(reply, pieces(reply, [cut]))
        assert result == answer, cut
    # one character at a time: every escape is split between chunks
    result, _, _ = await stream(reply, list(reply))
    assert result == answer


async def test_lone_surrogates_stay_as_json_loads_leaves_them() -> None:
    reply = '{"next_node": "final_response", "args": {"answer": "a\\ud83d b \\udc00 c\\ud83dX"}}'
    result, _, _ = await stream(reply, list(reply))
    assert result == json.loads(reply)["args"]["answer"]


async def test_a_fence_and_prose_around_the_json_are_skipped() -> None:
    reply = (
        'Here is my action {as you asked}: ```json\n{"next_node": "final_response", '
        '"args": {"answer": "fenced"}}\n```\nThat is all, {"next_node": "x"}'
    )
    result, recorder, _ = await stream(reply, list(reply))
    assert result == "fenced"
    assert recorder.text() == "fenced"


async def test_only_the_answer_at_the_top_of_args_is_streamed() -> None:
    reply = json.dumps(
        {
            "next_node": "final_response",
            "args": {
                "structured": {"answer": "nested, not this", "list": ["answer", {"answer": 1}]},
                "note": '"answer": "a decoy in a string"',
                "answer": "the real one",
                "raw_answer": "second key, not streamed twice",
            },
        }
    )
    result, _, _ = await stream(reply, list(reply))
    assert result == "the real one"


async def test_a_non_string_answer_streams_nothing_but_still_ends() -> None:
    result, recorder, _ = await stream('{"next_node": "final_response", "args": {"answer": 42}}')
    assert result == ""
    assert [c["done"] for c in recorder.chunks("answer")] == [True]


# -- replies that are not a finish ---------------------------------------------------------------


async def test_a_tool_call_streams_no_answer_whatever_the_key_order() -> None:
    for reply in (
        '{"next_node": "search", "args": {"answer": "not an answer", "q": "x"}}',
        '{"args": {"q": "x", "answer": "not an answer"}, "next_node": "search"}',
        '{"thought": "t", "args": {"answer": "nope"}, "next_node": "parallel"}',
    ):
        result, recorder, streamer = await stream(reply, list(reply))
        assert result is None
        assert recorder.chunks("answer") == []
        assert streamer.is_finish is False


async def test_args_before_next_node_are_held_then_sent_at_once() -> None:
    reply = '{"args": {"answer": "held back"}, "next_node": "final_response"}'
    recorder = Recorder()
    streamer = AnswerStreamer(recorder, action_seq=1)
    split = reply.index("next_node")
    for char in reply[:split]:
        await streamer.feed(char)
    assert recorder.chunks("answer") == []  # not known to be a finish yet
    assert streamer.is_finish is None
    await streamer.feed(reply[split:])
    assert [c["text"] for c in recorder.chunks("answer")] == ["held back"]
    assert await streamer.finish() == "held back"


# -- the parsed action decides -------------------------------------------------------------------


async def test_the_parsed_action_completes_what_the_stream_could_not_see() -> None:
    # no next_node in the reply: held back; the parser made it a finish
    action = PlannerAction(next_node="final_response", args={"answer": "held"})
    result, recorder, _ = await stream('{"args": {"answer": "held"}}', action=action)
    assert result == "held"
    assert recorder.text() == "held"
    # the answer was somewhere the stream does not look: sent whole at the end
    action = PlannerAction(next_node="final_response", args={"answer": "from the parser"})
    result, recorder, _ = await stream('{"final": "from the parser"}', action=action)
    assert result == "from the parser"
    # a cut reply: the rest of the answer is sent
    reply = '{"next_node": "final_response", "args": {"answer": "abc'
    action = PlannerAction(next_node="final_response", args={"answer": "abcdef"})
    result, recorder, _ = await stream(reply, action=action)
    assert result == "abcdef"
    assert [c["text"] for c in recorder.chunks("answer")] == ["abc", "def", ""]


async def test_the_parsed_action_can_say_it_was_not_a_finish() -> None:
    reply = '{"args": {"answer": "held"}}'
    action = PlannerAction(next_node="search", args={"q": "x"})
    result, recorder, _ = await stream(reply, action=action)
    assert result is None
    assert recorder.chunks("answer") == []


async def test_finish_is_idempotent_and_feed_after_it_is_ignored() -> None:
    reply = '{"next_node": "final_response", "args": {"answer": "once"}}'
    result, recorder, streamer = await stream(reply)
    assert await streamer.finish() == result == "once"
    await streamer.feed("more")
    assert [c["done"] for c in recorder.chunks("answer")].count(True) == 1


# -- cost --------------------------------------------------------------------------------------


async def test_a_200kb_answer_fed_one_character_at_a_time_is_scanned_once() -> None:
    rng = random.Random(14)
    alphabet = 'abc de\n"\\\u00e9\U0001f600'
    answer = "".join(rng.choice(alphabet) for _ in range(200_000))
    reply = json.dumps({"thought": "t", "next_node": "final_response", "args": {"answer": answer}})
    calls = 0
    recorder = Recorder()

    async def counting(event_type: str, extra: Mapping[str, Any], **kw: Any) -> None:
        nonlocal calls
        calls += 1
        await recorder(event_type, extra)

    streamer = AnswerStreamer(counting, action_seq=1)
    for char in reply:
        await streamer.feed(char)
    assert await streamer.finish() == answer
    # every character of the reply examined exactly once: linear, whatever the chunking
    assert streamer.chars_scanned == len(reply)
    # at most one event per chunk, plus the final one
    assert calls <= len(reply) + 1
    # the same reply in large chunks costs the same scan
    big = AnswerStreamer(Recorder(), action_seq=1)
    for start in range(0, len(reply), 4096):
        await big.feed(reply[start : start + 4096])
    assert big.chars_scanned == len(reply)
    assert await big.finish() == answer


# -- properties ----------------------------------------------------------------------------------

_json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["answer", "raw_answer", "k", "x y", "é"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)
_other_args = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k not in ("answer", "raw_answer")),
    _json_values,
    max_size=3,
)


@st.composite
def replies(draw: st.DrawFn, *, finish: bool) -> tuple[str, str, dict[str, Any]]:
    answer = draw(st.text(max_size=80))
    key = draw(st.sampled_from(["answer", "raw_answer"]))
    args = draw(_other_args)
    arg_items = [*args.items(), (key, answer)]
    arg_items = draw(st.permutations(arg_items))
    node: Any = draw(st.sampled_from(["final_response", None])) if finish else "search"
    top = [("next_node", node), ("args", dict(arg_items))]
    if draw(st.booleans()):
        top.append(("thought", draw(st.text(max_size=20))))
    top = draw(st.permutations(top))
    text = json.dumps(
        dict(top),
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 2])),
    )
    wrap = draw(st.sampled_from(["none", "fence", "prose"]))
    if wrap == "fence":
        text = f"```json\n{text}\n```"
    elif wrap == "prose":
        text = f"Sure. My action is:\n{text}\nDone."
    return text, answer, dict(top)


_SPLITS = st.lists(st.integers(min_value=0, max_value=2000), max_size=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replies(finish=True), _SPLITS)
async def test_any_finish_in_any_split_streams_exactly_its_answer(
    case: tuple[str, str, dict[str, Any]], cuts: list[int]
) -> None:
    reply, answer, _ = case
    result, recorder, _ = await stream(reply, pieces(reply, cuts))
    assert result == answer
    assert recorder.text() == answer
    assert [c["done"] for c in recorder.chunks("answer")].count(True) == 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replies(finish=False), _SPLITS)
async def test_no_tool_call_in_any_split_streams_an_answer(
    case: tuple[str, str, dict[str, Any]], cuts: list[int]
) -> None:
    reply, _, _ = case
    result, recorder, _ = await stream(reply, pieces(reply, cuts))
    assert result is None
    assert recorder.chunks("answer") == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replies(finish=True), _SPLITS)
async def test_the_thought_streams_exactly_too(
    case: tuple[str, str, dict[str, Any]], cuts: list[int]
) -> None:
    reply, _, top = case
    _, recorder, _ = await stream(reply, pieces(reply, cuts))
    assert recorder.text("observation") == top.get("thought", "")


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
async def test_parsed_action_agrees_with_the_stream(chunk: int) -> None:
    reply = json.dumps({"next_node": "final_response", "args": {"answer": "agreed \u00e9"}})
    action = PlannerAction.model_validate(json.loads(reply))
    chunks = [reply[i : i + chunk] for i in range(0, len(reply), chunk)]
    result, recorder, _ = await stream(reply, chunks, action=action)
    assert result == action.answer == recorder.text()


# -- with the planner's client call --------------------------------------------------------------


class StreamingJSONClient:
    """A PenguiFlow-style client: calls `on_stream_chunk(text, done)` without awaiting it."""

    def __init__(self, reply: str, size: int) -> None:
        self.reply = reply
        self.size = size

    async def complete(
        self,
        *,
        messages: list[dict[str, str]],
        response_format: Any = None,
        stream: bool = False,
        on_stream_chunk: Any = None,
    ) -> str:
        if stream and on_stream_chunk is not None:
            for start in range(0, len(self.reply), self.size):
                on_stream_chunk(self.reply[start : start + self.size], False)
            on_stream_chunk("", True)
        return self.reply


async def test_feed_is_a_client_stream_callback() -> None:
    from penguiflow_planner._llm_calls import call_client

    answer = "streamed through \u00e9 the client \U0001f600"
    reply = json.dumps({"next_node": "final_response", "args": {"answer": answer}})
    recorder = Recorder()
    streamer = AnswerStreamer(recorder, action_seq=4)
    result = await call_client(
        StreamingJSONClient(reply, 3),
        [{"role": "user", "content": "hi"}],
        stream=True,
        on_stream_chunk=streamer.feed,
    )
    action = PlannerAction.model_validate(json.loads(result.text))
    assert await streamer.finish(action=action) == answer
    assert recorder.text() == answer
    assert len(recorder.chunks("answer")) > 3
