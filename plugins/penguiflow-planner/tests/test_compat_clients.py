"""Calling the planner's model through any client (`call_client`), and building one from
PenguiFlow's `llm=` (`resolve_llm`), written from PenguiFlow 3.11's client contract.

No test sleeps to synchronise: waits between attempts go to a recording fake, and hanging
clients wait on events that never fire until a timeout or a cancel scope ends them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse
from penguiflow_planner._action_schema import action_response_format
from penguiflow_planner._llm_calls import (
    LLMReply,
    LLMReplyTypeError,
    call_client,
    client_expects_json_schema,
    resolve_llm,
)
from pydantic import BaseModel

from penguiflow.errors import ConfigurationError, PenguiFlowError
from penguiflow.llm import (
    LLMConfigurationError,
    LLMError,
    LLMHTTPError,
    LLMMessage,
    LLMReplyError,
    LLMTimeoutError,
    LLMUsage,
    ScriptedLLMClient,
)
from penguiflow.plugins import DriverNotFoundError, PluginSettings

USER = [{"role": "user", "content": "hi"}]
ACTION = json.dumps({"next_node": "final_response", "args": {"answer": "hello"}})
SCHEMA = action_response_format(["search"])


class PenguiFlowClient:
    """A user's JSONLLMClient as PenguiFlow documents it: plain dict messages in, text (or
    text and cost) out; the chunk callback is called without awaiting it."""

    def __init__(self, *replies: Any, pieces: list[str] | None = None) -> None:
        self.replies = list(replies)
        self.pieces = pieces
        self.calls: list[dict[str, Any]] = []

    async def complete(
        self,
        *,
        messages: list[dict[str, str]],
        response_format: dict[str, Any] | None = None,
        stream: bool = False,
        on_stream_chunk: Callable[[str, bool], None] | None = None,
    ) -> Any:
        self.calls.append(
            {"messages": messages, "response_format": response_format, "stream": stream}
        )
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        if stream and on_stream_chunk is not None and self.pieces is not None:
            for piece in self.pieces:
                on_stream_chunk(piece, False)
            on_stream_chunk("", True)
        return reply


class Recorder:
    """The delays `call_client` waited, instead of waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def server() -> Iterator[ScriptedHTTPServer]:
    with ScriptedHTTPServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real key must never reach the loopback server or change an outcome.
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def chat_completion(text: str, usage: tuple[int, int] = (12, 5)) -> ScriptedResponse:
    return ScriptedResponse(
        body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
        }
    )


# -- what a client returns --------------------------------------------------------------------


async def test_text_text_and_cost_and_llm_response_all_become_one_reply() -> None:
    assert await call_client(PenguiFlowClient("plain"), USER) == LLMReply("plain", 0.0, None)
    assert await call_client(PenguiFlowClient(("priced", 0.25)), USER) == LLMReply(
        "priced", 0.25, None
    )
    assert await call_client(PenguiFlowClient(("free", None)), USER) == LLMReply("free")
    ours = await call_client(ScriptedLLMClient([ACTION]), USER)
    assert ours.text == ACTION and ours.cost_usd == 0.0
    assert isinstance(ours.usage, LLMUsage) and ours.usage.output_tokens == len(ACTION) // 4


@pytest.mark.parametrize(
    ("returned", "shown"),
    [
        ({"text": "x"}, "dict {'text': 'x'}"),
        (None, "NoneType None"),
        (["x", 1.0], "list ['x', 1.0]"),
        (("x", 1.0, 2.0), "tuple ('x', 1.0, 2.0)"),
        ((b"x", 1.0), "tuple (b'x', 1.0)"),
    ],
)
async def test_a_reply_of_another_type_names_the_client_and_what_it_must_return(
    returned: Any, shown: str
) -> None:
    with pytest.raises(LLMReplyTypeError) as caught:
        await call_client(PenguiFlowClient(returned), USER)
    assert str(caught.value) == (
        f"PenguiFlowClient.complete() returned {shown}; a planner client must return the reply "
        "text (str), a (text, cost_usd) tuple, or a penguiflow.llm.LLMResponse"
    )
    error = caught.value
    assert isinstance(error, LLMError | TypeError | PenguiFlowError)
    assert isinstance(error, TypeError) and isinstance(error, PenguiFlowError)


@pytest.mark.parametrize("cost", ["0.1", float("nan"), -1.0, True])
async def test_a_cost_that_is_not_a_usd_amount_is_refused(cost: Any) -> None:
    with pytest.raises(LLMReplyTypeError, match="cost"):
        await call_client(PenguiFlowClient(("x", cost)), USER)


# -- what a client receives -------------------------------------------------------------------


async def test_messages_go_out_as_plain_role_content_dicts() -> None:
    client = PenguiFlowClient("ok")
    messages: list[Any] = [
        LLMMessage(role="system", content="rules", name="ignored"),
        {"role": "user", "content": "q", "name": "also dropped"},
    ]
    await call_client(client, messages)
    assert client.calls[0]["messages"] == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "q"},
    ]
    assert all(type(m) is dict for m in client.calls[0]["messages"])
    with pytest.raises(ConfigurationError, match=r"messages\[0\] needs a text 'role'"):
        await call_client(client, [{"content": "no role"}])
    with pytest.raises(ConfigurationError, match="messages is empty"):
        await call_client(client, [])


async def test_each_kind_of_client_gets_response_format_in_its_own_form() -> None:
    penguiflow = PenguiFlowClient("a", "b")
    await call_client(penguiflow, USER, response_format=SCHEMA)
    assert penguiflow.calls[0]["response_format"] == SCHEMA  # PenguiFlow's form, as given

    class Answer(BaseModel):
        text: str

    await call_client(penguiflow, USER, response_format=Answer)
    assert penguiflow.calls[1]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": Answer.model_json_schema()},
    }
    ours = ScriptedLLMClient([ACTION, ACTION, '{"a": 1}'])
    await call_client(ours, USER, response_format=SCHEMA)
    inner = SCHEMA["json_schema"]["schema"]
    assert ours.calls[0].response_format == {**inner, "title": "planner_action"}
    await call_client(ours, USER, response_format=Answer)
    assert ours.calls[1].response_format is Answer
    await call_client(ours, USER, response_format={"type": "json_object"})
    assert ours.calls[2].response_format == {"type": "object"}


async def test_a_client_that_ignores_the_annotation_is_learnt_from_its_first_reply() -> None:
    class Unannotated:
        def __init__(self) -> None:
            self.formats: list[Any] = []

        async def complete(self, **kwargs: Any):  # type: ignore[no-untyped-def]
            self.formats.append(kwargs.get("response_format"))
            return await ScriptedLLMClient([ACTION]).complete(**kwargs)

    client = Unannotated()
    await call_client(client, USER, response_format=SCHEMA)
    await call_client(client, USER, response_format=SCHEMA)
    assert client.formats[0] == SCHEMA  # a guess: PenguiFlow's form
    assert client.formats[1]["title"] == "planner_action"  # its LLMResponse said it is ours


async def test_a_subclass_of_our_client_gets_our_form_from_its_first_call() -> None:
    # Regression: a wrapper overriding complete() without an annotation was taken for a
    # PenguiFlow client until its first reply, so that reply (asked for with PenguiFlow's
    # wrapper as if it were a schema) was garbage on a grammar server.
    class Logged(ScriptedLLMClient):
        async def complete(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
            return await super().complete(*args, **kwargs)

    client = Logged([ACTION])
    await call_client(client, USER, response_format=SCHEMA)
    assert client.calls[0].response_format["title"] == "planner_action"


def test_a_client_may_ask_for_the_schema_even_without_json_schema_mode() -> None:
    class DSPyLike:
        expects_json_schema = True

    class Broken:
        @property
        def expects_json_schema(self) -> bool:
            raise RuntimeError("no")

    assert client_expects_json_schema(DSPyLike())
    assert not client_expects_json_schema(PenguiFlowClient()) and not client_expects_json_schema(
        Broken()
    )


# -- clients that cannot do schemas -----------------------------------------------------------


async def test_a_client_without_response_format_is_called_without_it_once_and_for_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Minimal:
        def __init__(self) -> None:
            self.calls = 0

        async def complete(self, *, messages: list[dict[str, str]]) -> str:
            self.calls += 1
            return "minimal"

    client = Minimal()
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        first = await call_client(client, USER, response_format=SCHEMA, stream=False)
        second = await call_client(client, USER, response_format=SCHEMA)
    assert first.text == second.text == "minimal"
    assert client.calls == 2  # the refusals cost no call of their own after the first reply
    refusals = [r for r in caplog.records if "refused the action schema" in r.getMessage()]
    assert len(refusals) == 1 and "Minimal" in refusals[0].getMessage()
    other = Minimal()  # remembered per client, not per class
    with caplog.at_level(logging.WARNING, logger="penguiflow.planner"):
        await call_client(other, USER, response_format=SCHEMA)
    assert len([r for r in caplog.records if "refused the action schema" in r.getMessage()]) == 2


async def test_a_typeerror_of_the_clients_own_is_not_taken_for_a_refusal() -> None:
    class Buggy:
        async def complete(self, **kwargs: Any) -> str:
            raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    with pytest.raises(TypeError, match="unsupported operand"):
        await call_client(Buggy(), USER, response_format=SCHEMA)


async def test_one_of_ours_refusing_the_schema_falls_back_and_is_remembered() -> None:
    class NoSchemas(ScriptedLLMClient):
        async def complete(self, **kwargs: Any) -> Any:
            if kwargs.get("response_format") is not None:
                raise LLMConfigurationError("this provider takes no response schema")
            return await super().complete(**kwargs)

    client = NoSchemas([ACTION, ACTION])
    assert (await call_client(client, USER, response_format=SCHEMA)).text == ACTION
    assert (await call_client(client, USER, response_format=SCHEMA)).text == ACTION
    assert [call.response_format for call in client.calls] == [None, None]

    class NoKey(ScriptedLLMClient):
        async def complete(self, **kwargs: Any) -> Any:
            raise LLMConfigurationError("OPENAI_API_KEY is not set")

    keyless = NoKey([])
    for _ in range(2):  # not the schema's fault: raised, and not remembered as schema-less
        with pytest.raises(LLMConfigurationError, match="OPENAI_API_KEY"):
            await call_client(keyless, USER, response_format=SCHEMA)


async def test_one_of_ours_giving_up_on_a_reply_hands_its_text_to_the_planners_repair() -> None:
    class GivesUp(ScriptedLLMClient):
        async def complete(self, **kwargs: Any) -> Any:
            raise LLMReplyError("no JSON after 3 attempts", text="not json", errors=["x"])

    assert (await call_client(GivesUp(), USER, response_format=SCHEMA)).text == "not json"


async def test_a_reply_cut_by_max_tokens_ends_the_step_without_repair_rounds() -> None:
    # Asked again under the same limit, the reply is cut the same way: the planner's repair
    # rounds would only spend calls. The run ends naming max_tokens (issue 17, item 8).
    from penguiflow_planner import PlannerFinish, ReactPlanner

    from penguiflow.llm import LLMTruncationError

    class Cut(ScriptedLLMClient):
        async def complete(self, **kwargs: Any) -> Any:
            self.calls.append(kwargs)  # type: ignore[arg-type]
            raise LLMTruncationError(
                "the reply stopped at max_tokens=64 before its JSON was complete; raise max_tokens",
                text='{"next_node": "search", "args": {"query": "pengu',
                errors=["truncated"],
                max_tokens=64,
            )

    with pytest.raises(LLMTruncationError):
        await call_client(Cut([]), USER, response_format=SCHEMA)
    client = Cut([])
    planner = ReactPlanner(llm_client=client, catalog=[], repair_attempts=3)
    result = await planner.run("q")
    assert isinstance(result, PlannerFinish) and result.reason == "no_path"
    assert "max_tokens" in result.metadata["error"]
    assert len(client.calls) == 1 and result.metadata["repair_attempts"] == 0


# -- streaming --------------------------------------------------------------------------------


async def test_sync_and_async_chunk_callbacks_with_a_penguiflow_client() -> None:
    received: list[tuple[str, bool]] = []

    def sync_chunk(text: str, done: bool) -> None:
        received.append((text, done))

    client = PenguiFlowClient("abc", pieces=["a", "b", "c"])
    await call_client(client, USER, stream=True, on_stream_chunk=sync_chunk)
    assert received == [("a", False), ("b", False), ("c", False), ("", True)]

    async_received: list[tuple[str, bool]] = []

    async def async_chunk(text: str, done: bool) -> None:
        await anyio.lowlevel.checkpoint()
        async_received.append((text, done))

    # PenguiFlow's clients call the callback without awaiting it: the pieces still arrive,
    # in order, and nothing is left un-awaited (warnings are errors in this suite).
    client = PenguiFlowClient("abc", pieces=["a", "b", "c"])
    await call_client(client, USER, stream=True, on_stream_chunk=async_chunk)
    assert async_received == [("a", False), ("b", False), ("c", False), ("", True)]


async def test_our_clients_await_an_async_callback_as_they_stream() -> None:
    order: list[str] = []

    async def chunk(text: str, done: bool) -> None:
        order.append(f"chunk {text!r} {done}")

    def reply(messages: list[LLMMessage]) -> str:
        order.append("reply computed")
        return "abcdefghij"

    client = ScriptedLLMClient([reply], chunk_size=4)
    await call_client(client, USER, stream=True, on_stream_chunk=chunk)
    assert order == [
        "reply computed",
        "chunk 'abcd' False",
        "chunk 'efgh' False",
        "chunk 'ij' True",
    ]  # exactly one done, the client's own


async def test_a_client_that_does_not_stream_still_ends_the_stream_once_with_the_text() -> None:
    received: list[tuple[str, bool]] = []
    await call_client(
        PenguiFlowClient("whole"),
        USER,
        stream=True,
        on_stream_chunk=lambda text, done: received.append((text, done)),
    )
    assert received == [("whole", True)]

    class NoStreamKeywords:
        async def complete(self, *, messages: list[dict[str, str]], response_format: Any) -> str:
            return "still works"

    received.clear()
    reply = await call_client(
        NoStreamKeywords(),
        USER,
        stream=True,
        on_stream_chunk=lambda text, done: received.append((text, done)),
    )
    assert reply.text == "still works" and received == [("still works", True)]


async def test_a_failing_callback_is_logged_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(text: str, done: bool) -> None:
        raise ValueError("observer bug")

    with caplog.at_level(logging.ERROR, logger="penguiflow.planner"):
        reply = await call_client(
            PenguiFlowClient("fine", pieces=["f", "ine"]),
            USER,
            stream=True,
            on_stream_chunk=broken,
        )
    assert reply.text == "fine"
    assert len([r for r in caplog.records if "on_stream_chunk raised" in r.getMessage()]) == 1


# -- timeouts and retries ---------------------------------------------------------------------


class Hangs:
    """Never answers, until cancelled; counts its calls and its cancellations."""

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0

    async def complete(self, **kwargs: Any) -> str:
        self.calls += 1
        try:
            await asyncio.Event().wait()
        except BaseException:
            self.cancelled += 1
            raise
        return "never"


async def test_a_call_past_timeout_s_is_an_llm_timeout_and_is_retried() -> None:
    client, sleep = Hangs(), Recorder()
    with pytest.raises(LLMTimeoutError, match=r"Hangs did not answer within 0.05 s"):
        await call_client(client, USER, timeout_s=0.05, max_retries=3, sleep=sleep)
    assert client.calls == 3 and client.cancelled == 3
    assert sleep.delays == [1.0, 2.0]  # PenguiFlow's backoff: 1 s, then doubling
    with pytest.raises(ConfigurationError, match="timeout_s must be > 0"):
        await call_client(client, USER, timeout_s=0)


async def test_the_runs_deadline_cancels_the_call_and_is_never_retried() -> None:
    client, sleep = Hangs(), Recorder()
    with anyio.move_on_after(0.05) as deadline:
        await call_client(client, USER, timeout_s=30, max_retries=5, sleep=sleep)
    assert deadline.cancelled_caught
    assert client.calls == 1 and client.cancelled == 1 and sleep.delays == []


class RateLimitError(Exception):
    """An SDK's error outside our tree, recognised by its name (as PenguiFlow does)."""


class Flaky:
    """Fails with each of `failures` in turn, then answers."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def complete(self, **kwargs: Any) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "recovered"


@pytest.mark.parametrize(
    "failure",
    [
        LLMHTTPError("rate limited", status=429),
        LLMHTTPError("overloaded", status=529),
        ConnectionResetError("reset by peer"),
        RateLimitError("slow down"),
    ],
    ids=["429", "529", "connection", "sdk-name"],
)
async def test_transient_failures_are_retried_with_backoff(failure: Exception) -> None:
    client, sleep = Flaky(failure, failure), Recorder()
    reply = await call_client(client, USER, max_retries=3, sleep=sleep)
    assert reply.text == "recovered" and client.calls == 3 and sleep.delays == [1.0, 2.0]


async def test_retry_after_is_honoured_up_to_a_minute() -> None:
    client, sleep = Flaky(LLMHTTPError("slow", status=429, retry_after_s=7.5)), Recorder()
    assert (await call_client(client, USER, max_retries=2, sleep=sleep)).text == "recovered"
    assert sleep.delays == [7.5]
    too_long = LLMHTTPError("come back tomorrow", status=429, retry_after_s=3600)
    client, sleep = Flaky(too_long), Recorder()
    with pytest.raises(LLMHTTPError, match="tomorrow"):
        await call_client(client, USER, max_retries=3, sleep=sleep)
    assert client.calls == 1 and sleep.delays == []


@pytest.mark.parametrize(
    "failure",
    [
        LLMHTTPError("bad request", status=400),
        LLMHTTPError("unauthorised", status=401),
        ValueError("client bug"),
        type("NotNow", (Exception,), {"retryable": False})("flagged"),
    ],
    ids=["400", "401", "bug", "retryable-false"],
)
async def test_other_failures_are_raised_at_once(failure: Exception) -> None:
    client, sleep = Flaky(failure), Recorder()
    with pytest.raises(type(failure)):
        await call_client(client, USER, max_retries=3, sleep=sleep)
    assert client.calls == 1 and sleep.delays == []


async def test_max_retries_counts_attempts_as_penguiflow_does() -> None:
    for max_retries, calls in ((0, 1), (1, 1), (2, 2)):
        failures = [LLMHTTPError("busy", status=503)] * 5
        client, sleep = Flaky(*failures), Recorder()
        with pytest.raises(LLMHTTPError, match="busy"):  # the last error, as it is
            await call_client(client, USER, max_retries=max_retries, sleep=sleep)
        assert client.calls == calls


async def test_no_retry_once_text_reached_the_caller() -> None:
    class CutMidStream:
        calls = 0

        async def complete(self, *, on_stream_chunk: Any = None, **kwargs: Any) -> str:
            self.calls += 1
            on_stream_chunk("partial", False)
            raise LLMHTTPError("server went away", status=502)

    client, sleep = CutMidStream(), Recorder()
    with pytest.raises(LLMHTTPError):
        await call_client(
            client, USER, stream=True, on_stream_chunk=lambda t, d: None, max_retries=3, sleep=sleep
        )
    assert client.calls == 1 and sleep.delays == []


# -- llm= through the installed adapter drivers -----------------------------------------------


async def test_a_config_dict_builds_the_openai_adapter_against_a_real_http_server(
    server: ScriptedHTTPServer,
) -> None:
    from penguiflow_openai import OpenAIClient

    client = resolve_llm(
        {"model": "gpt-4o-mini", "api_base": server.url, "api_key": "sk-test", "timeout": 30},
        temperature=0.0,
        timeout_s=120,
    )
    assert isinstance(client, OpenAIClient) and client.model == "gpt-4o-mini"
    server.add(chat_completion(ACTION))
    try:
        reply = await call_client(client, USER, response_format=SCHEMA)
    finally:
        await client.aclose()
    assert reply.text == ACTION and reply.usage == LLMUsage(input_tokens=12, output_tokens=5)
    assert reply.cost_usd > 0  # gpt-4o-mini has a list price
    body = server.requests[0].json()
    assert body["model"] == "gpt-4o-mini" and body["temperature"] == 0.0
    assert body["messages"] == USER
    sent = body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "planner_action"
    assert sent["json_schema"]["schema"]["properties"]["next_node"]["enum"] == [
        "search",
        "final_response",
        "parallel",
    ]
    assert server.requests[0].headers.get("authorization") == "Bearer sk-test"


async def test_an_openai_compatible_server_and_its_model_names(server: ScriptedHTTPServer) -> None:
    # A model with a slash, on an OpenAI-compatible server: the name is kept whole.
    client = resolve_llm(
        {"model": "meta-llama/Llama-3.1-8B", "base_url": server.url}, temperature=0.3
    )
    server.add(chat_completion("ok"))
    try:
        assert (await call_client(client, USER)).text == "ok"
    finally:
        await client.aclose()
    assert server.requests[0].json()["model"] == "meta-llama/Llama-3.1-8B"
    assert server.requests[0].json()["temperature"] == 0.3
    # LiteLLM's hosted_vllm/ prefix, and a reasoning model that takes no temperature
    vllm = resolve_llm({"model": "hosted_vllm/qwen2.5", "base_url": server.url}, temperature=0)
    reasoning = resolve_llm({"model": "o3-mini", "base_url": server.url}, temperature=0)
    server.add(chat_completion("a"), chat_completion("b"))
    try:
        await call_client(vllm, USER)
        await call_client(reasoning, USER)
    finally:
        await vllm.aclose()
        await reasoning.aclose()
    assert server.requests[1].json()["model"] == "qwen2.5"
    assert "temperature" not in server.requests[2].json()


async def test_anthropic_models_build_the_anthropic_adapter(
    server: ScriptedHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from penguiflow_anthropic import AnthropicClient

    client = resolve_llm(
        {"model": "anthropic/claude-3-5-haiku-latest", "base_url": server.url, "api_key": "k"},
        temperature=0.0,
    )
    assert isinstance(client, AnthropicClient) and client.model == "claude-3-5-haiku-latest"
    server.add(
        ScriptedResponse(
            body={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-3-5-haiku-20241022",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "planner_action",
                        "input": json.loads(ACTION),
                    }
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 20, "output_tokens": 6},
            }
        )
    )
    try:
        reply = await call_client(client, USER, response_format=SCHEMA)
    finally:
        await client.aclose()
    assert json.loads(reply.text) == json.loads(ACTION)
    body = server.requests[0].json()
    assert body["tools"][0]["name"] == "planner_action"
    assert body["tools"][0]["input_schema"]["properties"]["next_node"]["enum"][0] == "search"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    bare = resolve_llm("claude-3-5-haiku-latest", temperature=0.0)
    assert isinstance(bare, AnthropicClient)
    await bare.aclose()


async def test_openai_model_names_build_the_openai_adapter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from penguiflow_openai import OpenAIClient

    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    for name in ("gpt-4o-mini", "openai/gpt-4o-mini"):
        client = resolve_llm(name, temperature=0.0)
        assert isinstance(client, OpenAIClient) and client.model == "gpt-4o-mini"
        assert client.max_repairs == 0 and client.retry.max_retries == 0  # the planner's job
        await client.aclose()


def test_models_no_adapter_serves_say_what_to_do() -> None:
    with pytest.raises(DriverNotFoundError) as caught:
        resolve_llm("gemini/gemini-2.0-flash", temperature=0.0)
    text = str(caught.value)
    assert "'gemini/gemini-2.0-flash'" in text and "no LLM adapter for name 'gemini'" in text
    disabled = PluginSettings(disabled=frozenset({"openai"}))
    with pytest.raises(DriverNotFoundError) as caught:
        resolve_llm({"model": "gpt-4o", "api_key": "sk-secret"}, temperature=0, settings=disabled)
    text = str(caught.value)
    assert "'gpt-4o'" in text and "penguiflow-openai" in text and "sk-secret" not in text
    with pytest.raises(ConfigurationError, match="cannot tell which LLM adapter serves"):
        resolve_llm("llama3", temperature=0.0)
    with pytest.raises(ConfigurationError, match="needs 'model'"):
        resolve_llm({"api_key": "sk-secret"}, temperature=0.0)
    with pytest.raises(ConfigurationError, match="llm is empty"):
        resolve_llm("  ", temperature=0.0)
