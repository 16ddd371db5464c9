"""`OpenAIEmbeddingsClient` against a real HTTP server on 127.0.0.1 answering `/embeddings`
as OpenAI does (issue 17, item 12): batching, order, usage, dimensions, errors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from penguiflow_llm_http import RetryPolicy
from penguiflow_llm_http.testing import RecordedRequest, ScriptedHTTPServer, ScriptedResponse
from penguiflow_openai import OpenAIEmbeddingsClient

from penguiflow.llm import EmbeddingsClient, LLMConfigurationError, LLMError, LLMHTTPError
from penguiflow.plugins import resolve_driver
from penguiflow.testing import EmbeddingsConformance, run_async

FAST = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=0.02)
MODEL = "text-embedding-3-small"


def vector_for(text: str, size: int) -> list[float]:
    return [float(len(text) + n) for n in range(size)]


def content_vector(text: str, size: int) -> list[float]:
    """A vector that depends on the whole text (not only its length), as the kernel's
    conformance suite asks, so a vector in the wrong place shows."""
    digest = hashlib.sha256(text.encode()).digest()
    return [float(digest[n % len(digest)] + n) for n in range(size)]


def embeddings_answer(
    *, size: int = 3, reverse: bool = False, vectors: Callable[[str, int], list[float]] = vector_for
) -> Any:
    """Answers each request with one vector per input, as OpenAI does; `reverse` lists the
    data items out of order (their `index` says where each belongs)."""

    def respond(request: RecordedRequest) -> ScriptedResponse:
        body = request.json()
        dims = body.get("dimensions", size)
        data = [
            {"object": "embedding", "index": i, "embedding": vectors(text, dims)}
            for i, text in enumerate(body["input"])
        ]
        if reverse:
            data.reverse()
        tokens = sum(len(text.split()) for text in body["input"])
        return ScriptedResponse(
            body={
                "object": "list",
                "data": data,
                "model": MODEL,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    return respond


def embedder(server: ScriptedHTTPServer, **options: Any) -> OpenAIEmbeddingsClient:
    options.setdefault("retry", FAST)
    return OpenAIEmbeddingsClient(MODEL, base_url=server.url, **options)


class TestOpenAIEmbeddingsConformance(EmbeddingsConformance):
    """The kernel's suite, against a loopback server that answers out of order (by `index`)."""

    batch_size = 2
    supports_dimensions = True

    async def make_client(self) -> EmbeddingsClient:
        self.server = ScriptedHTTPServer().start()
        # The suite's cases make up to about twenty requests each.
        self.server.add(*[embeddings_answer(reverse=True, vectors=content_vector)] * 40)
        return embedder(self.server, batch_size=self.batch_size, api_key="sk-test")

    async def close_client(self, client: Any) -> None:
        await client.aclose()
        self.server.stop()

    def batches_sent(self, client: EmbeddingsClient) -> list[int]:
        return [len(request.json()["input"]) for request in self.server.requests]


async def embed(client: OpenAIEmbeddingsClient, inputs: Any, **kwargs: Any) -> Any:
    async with client:
        return await client.embed(inputs, **kwargs)


def test_inputs_are_batched_and_vectors_come_back_in_order(server: ScriptedHTTPServer) -> None:
    server.add(*[embeddings_answer(reverse=True)] * 3)
    texts = ["one", "two words", "three more words", "four", "five five"]
    client = embedder(server, batch_size=2, api_key="sk-test")
    assert isinstance(client, EmbeddingsClient)
    reply = run_async(lambda: embed(client, texts))
    assert [request.json()["input"] for request in server.requests] == [
        texts[0:2],
        texts[2:4],
        texts[4:5],
    ]
    assert all(request.path == "/embeddings" for request in server.requests)
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"
    assert server.requests[0].json()["encoding_format"] == "float"
    assert reply.vectors == [vector_for(text, 3) for text in texts]
    assert reply.dimensions == 3 and reply.model == MODEL
    assert reply.usage is not None and reply.usage.input_tokens == 9
    assert reply.usage.output_tokens == 0
    assert reply.cost_usd == pytest.approx(9 * 0.02 / 1_000_000)


def test_dimensions_are_sent_and_checked(server: ScriptedHTTPServer) -> None:
    server.add(embeddings_answer(), embeddings_answer())
    reply = run_async(lambda: embed(embedder(server, dimensions=8), ["a"]))
    assert server.requests[0].json()["dimensions"] == 8 and reply.dimensions == 8
    per_call = run_async(lambda: embed(embedder(server, dimensions=8), ["a"], dimensions=2))
    assert server.requests[1].json()["dimensions"] == 2 and per_call.dimensions == 2


def test_a_server_ignoring_dimensions_is_reported(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(body={"data": [{"index": 0, "embedding": [0.1, 0.2, 0.3]}]}))
    with pytest.raises(LLMHTTPError, match=r"dimensions=2 was asked") as caught:
        run_async(lambda: embed(embedder(server), ["a"], dimensions=2))
    assert caught.value.status == 200


def test_a_short_answer_names_the_inputs(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(body={"data": [{"index": 0, "embedding": [1.0]}]}))
    with pytest.raises(LLMHTTPError, match=r"inputs 0\.\.1: 1 vector\(s\) for 2 input\(s\)"):
        run_async(lambda: embed(embedder(server), ["a", "b"]))


def test_provider_errors_are_llm_errors_and_rate_limits_are_retried(
    server: ScriptedHTTPServer,
) -> None:
    limited = {
        "error": {
            "message": "Rate limit reached for text-embedding-3-small in organization org-x on "
            "requests per min (RPM): Limit 3000, Used 3000, Requested 1.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    too_long = {
        "error": {
            "message": "This model's maximum context length is 8192 tokens, however you "
            "requested 9000 tokens (9000 in your prompt; 0 for the completion). Please reduce "
            "your prompt; or completion length.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    server.add(ScriptedResponse(status=429, body=limited), embeddings_answer())
    assert run_async(lambda: embed(embedder(server), ["a"])).vectors == [vector_for("a", 3)]
    server.add(ScriptedResponse(status=400, body=too_long))
    with pytest.raises(LLMHTTPError, match="maximum context length") as caught:
        run_async(lambda: embed(embedder(server), ["a"]))
    assert caught.value.status == 400 and isinstance(caught.value, LLMError)
    assert len(server.requests) == 3  # the 400 was not retried


def test_setup_mistakes_are_caught_before_any_request(server: ScriptedHTTPServer) -> None:
    cases: list[tuple[Any, dict[str, Any], str]] = [
        ("a lone string", {}, "list of strings"),
        ([], {}, "no inputs"),
        (["ok", ""], {}, r"inputs\[1\] is ''"),
        (["ok"], {"dimensions": 0}, "positive integer"),
    ]
    for inputs, kwargs, message in cases:
        with pytest.raises(LLMConfigurationError, match=message):
            run_async(lambda i=inputs, k=kwargs: embed(embedder(server), i, **k))
    with pytest.raises(LLMConfigurationError, match="batch_size"):
        embedder(server, batch_size=5000)
    assert server.requests == []


def test_the_real_endpoint_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LLMConfigurationError, match="OPENAI_API_KEY"):
        OpenAIEmbeddingsClient(MODEL)


def test_aclose_is_idempotent(server: ScriptedHTTPServer) -> None:
    client = embedder(server)

    async def twice() -> None:
        await client.aclose()
        await client.aclose()

    run_async(twice)


# -- the `embeddings` driver kind --------------------------------------------------------------


def test_the_embeddings_driver_url_sets_base_url_and_model(server: ScriptedHTTPServer) -> None:
    server.add(embeddings_answer())
    host = server.url.removeprefix("http://")
    client: Any = resolve_driver("embeddings", f"openai://{host}/?model=nomic", retry=FAST)
    assert isinstance(client, OpenAIEmbeddingsClient) and isinstance(client, EmbeddingsClient)
    assert client.model == "nomic" and client.base_url == server.url.rstrip("/")
    response = run_async(lambda: embed(client, ["a b"]))
    assert response.vectors == [vector_for("a b", 3)]
    assert server.requests[0].json()["model"] == "nomic"


def test_the_embeddings_driver_by_name_and_its_mistakes() -> None:
    client: Any = resolve_driver("embeddings", "openai", model=MODEL, api_key="sk-test")
    assert client.model == MODEL and client.base_url == "https://api.openai.com/v1"
    with pytest.raises(LLMConfigurationError, match=r"embeddings client needs model=\.\.\."):
        resolve_driver("embeddings", "openai")
    # `?profile=` is a chat adapter's parameter: an embeddings URL refuses it by name.
    with pytest.raises(LLMConfigurationError, match=r"unknown parameter\(s\) \['profile'\]"):
        resolve_driver("embeddings", "openai://127.0.0.1:9/v1?model=m&profile=x")
