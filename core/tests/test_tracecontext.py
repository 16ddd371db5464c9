"""W3C trace context: traceparent parsing and formatting, spans in code, on messages and HTTP."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from pydantic import PrivateAttr

from penguiflow.tracecontext import (
    _STAMPED_MAX,
    TRACEPARENT,
    SpanContext,
    SpanContextError,
    _parent_of,
    _stamped,
    current_span,
    extract,
    inject,
    message_span,
    new_span_id,
    root_span,
    stamp_message,
    using_span,
)
from penguiflow.types import Headers, Message, StreamChunk

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


def make_message(**kwargs: Any) -> Message:
    return Message(payload="x", headers=Headers(tenant="acme"), **kwargs)


# -- parse and format --------------------------------------------------------------------------


def test_a_valid_traceparent_round_trips() -> None:
    span = SpanContext.parse(VALID)
    assert span == SpanContext(TRACE, SPAN, True)
    assert span is not None and span.traceparent == VALID and span.parent_span_id is None
    unsampled = SpanContext.parse(f"00-{TRACE}-{SPAN}-00")
    assert unsampled is not None and not unsampled.sampled
    assert unsampled.traceparent.endswith("-00")
    # Only the sampled bit counts; other flags are kept out of what we send on.
    other_flags = SpanContext.parse(f"00-{TRACE}-{SPAN}-03")
    assert other_flags is not None and other_flags.sampled and other_flags.traceparent == VALID


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(f"ff-{TRACE}-{SPAN}-01", id="version ff is invalid"),
        pytest.param(f"00-{TRACE}-{SPAN}-01-extra", id="version 00 has nothing after flags"),
        pytest.param(f"00-{'0' * 32}-{SPAN}-01", id="zero trace id"),
        pytest.param(f"00-{TRACE}-{'0' * 16}-01", id="zero span id"),
        pytest.param(VALID.upper(), id="upper case is not W3C"),
        pytest.param(f"00-{TRACE[:-1]}-{SPAN}-01", id="short trace id"),
        pytest.param(f"00-{TRACE}-{SPAN}0-01", id="long span id"),
        pytest.param(f"00-{TRACE}-{SPAN}-1", id="one-digit flags"),
        pytest.param(f"0-{TRACE}-{SPAN}-01", id="one-digit version"),
        pytest.param(f"00_{TRACE}_{SPAN}_01", id="wrong separator"),
        pytest.param(f"00-{TRACE}-{SPAN}-01\n", id="trailing newline"),
        pytest.param(f"00-{TRACE[:-1]}g-{SPAN}-01", id="not hex"),
        pytest.param("", id="empty"),
        pytest.param("garbage", id="junk"),
        pytest.param(None, id="None"),
        pytest.param(42, id="not a string"),
        pytest.param(VALID.encode(), id="bytes"),
    ],
)
def test_an_invalid_traceparent_is_none_never_an_error(value: object) -> None:
    assert SpanContext.parse(value) is None


def test_future_versions_and_surrounding_blanks_are_accepted() -> None:
    # A later version may append fields; the first four are read as version 00's.
    future = SpanContext.parse(f"cc-{TRACE}-{SPAN}-01-what-the-future-adds")
    assert future == SpanContext(TRACE, SPAN)
    assert future is not None and future.traceparent == VALID  # we speak version 00
    assert SpanContext.parse(f" \t{VALID}\t ") == SpanContext(TRACE, SPAN)


@pytest.mark.parametrize(
    ("trace_id", "span_id", "parent"),
    [
        ("0" * 32, SPAN, None),
        (TRACE.upper(), SPAN, None),
        (TRACE + "\n", SPAN, None),
        (TRACE, "0" * 16, None),
        (TRACE, "xyz", None),
        (TRACE, SPAN, "short"),
    ],
)
def test_span_context_refuses_bad_ids(trace_id: str, span_id: str, parent: str | None) -> None:
    with pytest.raises(SpanContextError, match="hex digits"):
        SpanContext(trace_id, span_id, True, parent)


def test_child_is_a_new_span_of_the_same_trace_naming_its_parent() -> None:
    parent = SpanContext(TRACE, SPAN, sampled=False)
    child = parent.child()
    assert child.trace_id == TRACE and child.span_id != SPAN and not child.sampled
    assert child.parent_span_id == SPAN
    # The parent takes no part in equality: the same ids are the same span.
    assert child == SpanContext(TRACE, child.span_id, False)
    assert len({new_span_id() for _ in range(200)}) == 200


# -- root span -------------------------------------------------------------------------------


def test_root_span_uses_a_w3c_shaped_trace_id_as_is_and_hashes_others() -> None:
    assert root_span(TRACE).trace_id == TRACE
    assert root_span(TRACE) == root_span(TRACE)
    hashed = root_span("order-42")
    assert hashed.trace_id != "order-42" and len(hashed.trace_id) == 32
    # Regression: upper-case ids were lower-cased, so two PenguiFlow traces differing only in
    # case shared one W3C trace.
    assert root_span(TRACE.upper()).trace_id != root_span(TRACE).trace_id
    assert root_span("0" * 32).trace_id != "0" * 32


def test_root_span_is_the_same_in_every_process() -> None:
    code = (
        "from penguiflow.tracecontext import root_span\n"
        "for t in ('order-42', '4bf92f3577b34da6a3ce929d0e0e4736'):\n"
        "    print(root_span(t).traceparent)\n"
    )
    # A fresh interpreter has another hash seed: nothing may depend on hash().
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    expected = [root_span("order-42").traceparent, root_span(TRACE).traceparent]
    assert result.stdout.split() == expected


# -- in code -----------------------------------------------------------------------------------


async def test_using_span_sets_and_restores_and_tasks_inherit_it() -> None:
    outer = SpanContext(TRACE, SPAN)
    inner = outer.child()
    assert current_span() is None
    with using_span(outer):
        assert current_span() == outer
        with using_span(inner):
            assert current_span() == inner
            seen = await asyncio.create_task(_read_current())
            assert seen == inner
            with using_span(None):
                assert current_span() is None
        assert current_span() == outer
    assert current_span() is None


async def _read_current() -> SpanContext | None:
    return current_span()


def test_message_span_prefers_the_carried_traceparent() -> None:
    message = make_message(meta={TRACEPARENT: VALID})
    assert message_span(message) == SpanContext(TRACE, SPAN)
    bare = make_message()
    assert message_span(bare) == root_span(bare.trace_id)
    broken = make_message(meta={TRACEPARENT: "junk"})
    assert message_span(broken) == root_span(broken.trace_id)
    assert message_span("a plain payload") is None


def test_stamp_message_copies_and_respects_what_the_user_set() -> None:
    parent = SpanContext(TRACE, SPAN)
    span = parent.child()
    message = make_message()
    stamped = stamp_message(message, span)
    assert stamped is not message and message.meta == {}
    assert stamped.meta[TRACEPARENT] == span.traceparent
    # Inherited from the message the span was made for: replaced.
    inherited = make_message(meta={TRACEPARENT: parent.traceparent, "k": 1})
    assert stamp_message(inherited, span).meta == {TRACEPARENT: span.traceparent, "k": 1}
    assert inherited.meta[TRACEPARENT] == parent.traceparent  # never changed in place
    # Set by the user (another span): kept.
    own = make_message(meta={TRACEPARENT: f"00-{'a' * 32}-{'b' * 16}-01"})
    assert stamp_message(own, span) is own
    # Invalid: read as none everywhere, so replaced.
    junk = make_message(meta={TRACEPARENT: "junk"})
    assert stamp_message(junk, span).meta[TRACEPARENT] == span.traceparent
    # Outside any span, and for values that are not messages: unchanged.
    assert stamp_message(message) is message
    with using_span(span):
        assert stamp_message(message).meta[TRACEPARENT] == span.traceparent
        assert stamp_message({"meta": {}}) == {"meta": {}}
        already = stamp_message(message)
        assert stamp_message(already) is already


class Tagged(Message):
    """A subclass with a private attribute: stamped through `model_copy`, which keeps it."""

    _note: str = PrivateAttr(default="")


def test_a_stamped_copy_is_the_copy_model_copy_makes() -> None:
    """`stamp_message` builds the copy of a Message or StreamChunk directly (faster than
    `model_copy`); it must be the very copy `model_copy(update={"meta": ...})` gives."""
    span = SpanContext(TRACE, SPAN).child()
    message = make_message(meta={"k": [1]}, deadline_s=5.0)
    chunk = StreamChunk(stream_id="s", seq=1, text="t")
    for original in (message, chunk):
        stamped = stamp_message(original, span)
        meta = {**original.meta, TRACEPARENT: span.traceparent}
        expected = original.model_copy(update={"meta": meta})
        assert type(stamped) is type(original) and stamped == expected
        assert stamped.model_fields_set == expected.model_fields_set
        assert stamped.__pydantic_extra__ is None and stamped.__pydantic_private__ is None
        assert stamped.model_dump() == expected.model_dump()
        assert original.meta.get(TRACEPARENT) is None  # never changed in place
        # A shallow copy, as model_copy: the other fields are the same objects.
        assert stamped.__dict__.keys() == original.__dict__.keys()
    fresh = Message(payload="x", headers=Headers(tenant="acme"))
    assert stamp_message(fresh, span).model_fields_set == {"payload", "headers", "meta"}
    # A subclass goes through model_copy, which keeps its private attribute.
    tagged = Tagged(payload="x", headers=Headers(tenant="acme"))
    tagged._note = "mine"
    stamped_tagged = stamp_message(tagged, span)
    assert isinstance(stamped_tagged, Tagged) and stamped_tagged._note == "mine"
    assert stamped_tagged.meta[TRACEPARENT] == span.traceparent


def test_the_parent_of_a_stamped_message_is_read_back_with_the_same_ids() -> None:
    span = SpanContext(TRACE, SPAN).child()
    unsampled = SpanContext(TRACE, SPAN, sampled=False).child()
    for stamped in (stamp_message(make_message(), span), stamp_message(make_message(), unsampled)):
        parent = _parent_of(stamped)
        parsed = message_span(stamped)
        assert parent == parsed and parent is not None and parsed is not None
        assert parent.sampled == parsed.sampled
    # Not stamped here (another process, the user): parsed, as message_span does.
    theirs = make_message(meta={TRACEPARENT: VALID})
    assert _parent_of(theirs) == SpanContext(TRACE, SPAN)
    bare = make_message()
    assert _parent_of(bare) == root_span(bare.trace_id)
    assert _parent_of("a plain payload") is None
    # What is remembered is bounded.
    for _ in range(_STAMPED_MAX + 10):
        stamp_message(make_message(), SpanContext(TRACE, SPAN).child())
    assert 0 < len(_stamped) <= _STAMPED_MAX


def test_parse_builds_the_context_the_constructor_would() -> None:
    parsed = SpanContext.parse(VALID)
    assert parsed == SpanContext(TRACE, SPAN) and parsed.parent_span_id is None
    assert type(parsed) is SpanContext and hash(parsed) == hash(SpanContext(TRACE, SPAN))

    class Mine(SpanContext):
        pass

    assert type(Mine.parse(VALID)) is Mine
    root = root_span("not a w3c id")
    assert root == SpanContext(root.trace_id, root.span_id)


# -- HTTP --------------------------------------------------------------------------------------


def test_inject_adds_the_current_span_and_never_overwrites() -> None:
    span = SpanContext(TRACE, SPAN)
    headers: dict[str, str] = {}
    inject(headers)
    assert headers == {}  # outside a span: nothing
    with using_span(span):
        inject(headers)
    assert headers == {TRACEPARENT: VALID}
    theirs = {"TraceParent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    inject(theirs, span.child())
    assert list(theirs) == ["TraceParent"]  # a header set by the caller wins, whatever its case
    explicit: dict[str, str] = {}
    inject(explicit, span)
    assert explicit == {TRACEPARENT: VALID}


def test_extract_is_case_insensitive_and_never_raises() -> None:
    assert extract({"Content-Type": "x", "TRACEPARENT": VALID}) == SpanContext(TRACE, SPAN)
    assert extract({"traceparent": "junk"}) is None
    assert extract({}) is None
    assert extract({1: VALID, "other": "x"}) is None  # type: ignore[dict-item]
