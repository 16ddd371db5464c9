"""A credential the provider echoes is redacted in every encoding a body may hold it: in the
error's message and body, and in the retry log lines (real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import pytest
from penguiflow_llm_http import (
    Credential,
    HTTPXTransport,
    ModelProfile,
    ProviderClient,
    ProviderReply,
    ProviderRequest,
    RetryPolicy,
    SchemaMode,
    SSEEvent,
    StreamDelta,
    redact_secrets,
)
from penguiflow_llm_http.testing import RecordedRequest, ScriptedHTTPServer, ScriptedResponse

from penguiflow.llm import LLMError, LLMHTTPError, LLMStreamError
from penguiflow.testing import run_async

KEY = "sk-proj/Ab+9_xYz~secret-0123456789"


def json_escaped(text: str, chars: str | None = None) -> str:
    return "".join(f"\\u{ord(c):04x}" if chars is None or c in chars else c for c in text)


#: every spelling of KEY a provider's body may carry it in
ENCODINGS: dict[str, str] = {
    "raw": KEY,
    "json dash": json_escaped(KEY, "-"),
    "json every char": json_escaped(KEY),
    "json upper hex": json_escaped(KEY, "-").replace("\\u002d", "\\u002D"),
    "json slash": KEY.replace("/", "\\/"),
    "json twice": KEY.replace("-", "\\\\u002d").replace("/", "\\\\\\/"),
    "javascript hex": KEY.replace("-", "\\x2d"),
    "url": quote(KEY, safe=""),
    "url lower hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(KEY, safe="")),
    "url every byte": "".join(f"%{b:02X}" for b in KEY.encode()),
    "url twice": quote(quote(KEY, safe=""), safe=""),
    "form": quote_plus(KEY),
    "html decimal": "".join(f"&#{ord(c)};" for c in KEY),
    "html hex": KEY.replace("-", "&#x2d;").replace("/", "&#X2F;"),
    "mixed": "s%6B\\u002dproj\\/Ab%2B9_xYz&#126;secret-0123456789",
    "base64": base64.b64encode(KEY.encode()).decode(),
    "base64 basic auth": base64.b64encode(b"user:" + KEY.encode()).decode(),
    "base64 url-safe, offset": base64.urlsafe_b64encode(b"x" + KEY.encode()).decode(),
}


def decodings(text: str) -> list[str]:
    """`text` and what a reader could decode it into."""
    found = [text, unquote(text), unquote(unquote(text)), html.unescape(text)]
    with contextlib.suppress(UnicodeDecodeError):
        found.append(text.encode("latin-1", "replace").decode("unicode_escape"))
    return found


def assert_no_key(text: str, what: str) -> None:
    for spelling, encoded in ENCODINGS.items():
        assert encoded not in text, f"{what} holds the key ({spelling}): {text!r}"
    for decoded in decodings(text):
        assert KEY not in decoded, f"{what} holds the key once decoded: {text!r}"


@pytest.mark.parametrize("spelling", list(ENCODINGS))
def test_redact_secrets_masks_every_spelling(spelling: str) -> None:
    text = f"before {ENCODINGS[spelling]} after"
    redacted = redact_secrets(text, [KEY])
    assert_no_key(redacted, "the redacted text")
    if spelling.startswith("base64"):
        # What encodes the bytes around the key (`user:`) is kept.
        assert "***" in redacted and redacted.endswith(" after")
    else:
        assert redacted == "before *** after"


def test_redact_secrets_leaves_other_text_and_ignores_empty_secrets() -> None:
    text = "a-b %2D \\u002d sk-other"
    assert redact_secrets(text, [KEY, "", None]) == text
    assert redact_secrets(text, []) == text
    # A secret inside a longer one: the longer is masked whole.
    assert redact_secrets("abc-abcdef", ["abc", "abc-abcdef"]) == "***"


def test_a_body_made_of_escape_prefixes_is_redacted_without_backtracking() -> None:
    # The repeated prefixes (backslashes, %25, zeros) are bounded: unbounded, each start
    # position in a run re-scanned the rest of it (quadratic: seconds here, about half an
    # hour for a one-megabyte run of backslashes).
    for run in ("\\" * 50_000, "%25" * 20_000, "&#" + "0" * 50_000):
        text = run + " " + ENCODINGS["json twice"]
        assert redact_secrets(text, [KEY]) == run + " ***"


class EchoCodec:
    """A minimal wire format: `{"text": ...}` replies, `{"t": ...}` stream events; a reply
    with `refusal` and an event with `error` are the codec's own errors, quoting the body."""

    name = "Echo"

    def build_request(self, **kwargs: Any) -> ProviderRequest:
        return ProviderRequest("/v1/chat", {"stream": kwargs["stream"]})

    def parse_reply(self, body: Any) -> ProviderReply:
        if "refusal" in body:
            raise LLMHTTPError(
                f"the model refused: {body['refusal']}", status=200, body=json.dumps(body)
            )
        return ProviderReply(text=body["text"])

    def parse_event(self, event: SSEEvent) -> StreamDelta | None:
        data = json.loads(event.data)
        if "error" in data:
            raise LLMStreamError(f"the provider reported an error mid-stream: {data['error']}")
        return StreamDelta(text=data.get("t", ""), done=data.get("done", False))

    def rejects_mode(self, error: LLMHTTPError, mode: SchemaMode) -> bool:
        return False


def client(url: str, **options: Any) -> ProviderClient:
    transport = HTTPXTransport(
        url, provider="Echo", credential=Credential(key=KEY, source="test"), **options
    )
    return ProviderClient(
        model="m",
        codec=EchoCodec(),
        transport=transport,
        profile=ModelProfile(name="plain", schema_modes=("prompt",)),
        retry=RetryPolicy(max_retries=1, base_delay_s=0.0, jitter=0.0),
    )


async def complete(c: ProviderClient, *, stream: bool = False) -> Any:
    async with c:
        return await c.complete(messages=[{"role": "user", "content": "hi"}], stream=stream)


def raw_body(encoded: str) -> str:
    # Written by hand, not json.dumps: the escapes must reach the client as the server wrote them.
    return (
        '{"error": {"message": "invalid api key ' + encoded + '", "type": "auth"}, '
        '"echo": "' + encoded + '"}'
    )


@pytest.mark.parametrize("spelling", list(ENCODINGS))
def test_an_echoed_key_is_redacted_from_errors_and_retry_logs(
    spelling: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression: only the verbatim key was masked; `sk\u002d...` stayed in `body`.
    encoded = ENCODINGS[spelling]
    with ScriptedHTTPServer() as server:
        server.add(ScriptedResponse(status=503, body=raw_body(encoded)))  # retried, logged
        server.add(ScriptedResponse(status=400, body=raw_body(encoded)))  # raised
        with (
            caplog.at_level(logging.INFO, logger="penguiflow.llm"),
            pytest.raises(LLMHTTPError) as caught,
        ):
            run_async(lambda: complete(client(server.url)))
        assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    error = caught.value
    assert error.status == 400 and "***" in error.body
    assert_no_key(str(error), "str(error)")
    assert_no_key(error.body, "error.body")
    retries = [r for r in caplog.records if r.name == "penguiflow.llm"]
    assert retries and "answered 503" in retries[0].getMessage()
    for record in caplog.records:
        assert_no_key(record.getMessage(), f"log record {record.getMessage()!r}")


def test_a_body_that_cannot_be_read_and_a_codec_refusal_are_redacted() -> None:
    # Regression: a 200 body the codec could not read went into `body` as `str(body)`, with
    # the key that JSON decoding had unescaped.
    with ScriptedHTTPServer() as server:
        server.add(ScriptedResponse(body='{"unexpected": "' + ENCODINGS["json dash"] + '"}'))
        server.add(ScriptedResponse(body='{"refusal": "no, ' + ENCODINGS["json slash"] + '"}'))
        with pytest.raises(LLMHTTPError, match="cannot read") as unreadable:
            run_async(lambda: complete(client(server.url)))
        with pytest.raises(LLMHTTPError, match="the model refused: no, \\*\\*\\*") as refused:
            run_async(lambda: complete(client(server.url)))
    for error in (unreadable.value, refused.value):
        assert_no_key(str(error), "str(error)")
        assert_no_key(error.body, "error.body")
        assert error.__cause__ is None


def test_an_error_event_mid_stream_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    event = '{"error": "bad key ' + ENCODINGS["json every char"] + '"}'
    with ScriptedHTTPServer() as server:
        # Nothing was streamed yet, so the broken stream is retried once, then raised.
        server.add(ScriptedResponse.sse([event]), ScriptedResponse.sse([event]))
        with (
            caplog.at_level(logging.INFO, logger="penguiflow.llm"),
            pytest.raises(LLMError, match="mid-stream: bad key \\*\\*\\*") as caught,
        ):
            run_async(lambda: complete(client(server.url), stream=True))
    assert_no_key(str(caught.value), "str(error)")
    assert caplog.records
    for record in caplog.records:
        assert_no_key(record.getMessage(), "a log record")


def test_older_tokens_of_a_rotating_provider_stay_redacted() -> None:
    # Regression: only the last token sent was masked, so the answer to a request still in
    # flight when the provider handed out a new token showed the older one.
    issued: list[str] = []

    def tokens(*, force_refresh: bool) -> str:
        issued.append(f"tok-{len(issued)}-0123456789abcdef")
        return issued[-1]

    both_arrived = threading.Barrier(2, timeout=10)

    def echo(request: RecordedRequest) -> ScriptedResponse:
        both_arrived.wait()  # each answer is written once both tokens have been handed out
        token = request.headers["authorization"].removeprefix("Bearer ")
        return ScriptedResponse(status=400, body=raw_body(json_escaped(token, "-")))

    async def two_at_once(url: str) -> list[BaseException | Any]:
        credential = Credential(provider=tokens, source="token provider")
        async with HTTPXTransport(url, provider="Echo", credential=credential) as t:
            return await asyncio.gather(
                t.post_json("/a", {}), t.post_json("/b", {}), return_exceptions=True
            )

    with ScriptedHTTPServer() as server:
        server.add(echo, echo)
        errors = run_async(lambda: two_at_once(server.url))
    assert len(issued) == 2
    for error in errors:
        assert isinstance(error, LLMHTTPError) and "***" in error.body
        for token in issued:
            assert token not in str(error) and json_escaped(token, "-") not in error.body


def test_a_transport_without_redact_still_works_with_the_engine() -> None:
    """`redact` is optional in the Transport protocol: older transports keep working."""

    class Plain:
        async def post_json(self, path: str, body: Any) -> Any:
            return {"refusal": "nope"}

        def post_stream(self, path: str, body: Any) -> Any:
            raise AssertionError("not used")

        async def aclose(self) -> None:
            return None

    c = ProviderClient(
        model="m",
        codec=EchoCodec(),
        transport=Plain(),
        profile=ModelProfile(name="plain", schema_modes=("prompt",)),
    )
    call: Callable[[], Any] = lambda: complete(c)  # noqa: E731
    with pytest.raises(LLMError, match="the model refused: nope"):
        run_async(call)


def test_extra_headers_named_like_credentials_are_redacted_too() -> None:
    gateway = "gw-0123456789abcdef"
    echoed = json_escaped(gateway, "-") + " version 2023-06-01"
    headers = {"X-Gateway-Key": gateway, "anthropic-version": "2023-06-01"}

    async def post(url: str) -> Any:
        credential = Credential(key=KEY, source="test")
        async with HTTPXTransport(
            url, provider="Echo", credential=credential, headers=headers
        ) as t:
            return await t.post_json("/v1/x", {})

    with ScriptedHTTPServer() as server:
        server.add(ScriptedResponse(status=400, body=raw_body(echoed)))
        with pytest.raises(LLMHTTPError) as caught:
            run_async(lambda: post(server.url))
    assert gateway not in str(caught.value) and json_escaped(gateway, "-") not in caught.value.body
    assert "*** version 2023-06-01" in caught.value.body  # other headers are not secrets
