"""Conformance suite for embeddings clients (the `penguiflow.embeddings` driver kind)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest

from ..llm import EmbeddingsClient, EmbeddingsResponse, LLMConfigurationError
from ._support import close_quietly, run_with_resource

__all__ = ["EmbeddingsConformance"]

#: Distinct texts of distinct lengths, so a vector in the wrong place shows.
TEXTS = [
    "penguins swim",
    "emperor penguins huddle in the antarctic winter",
    "tax forms",
    "a",
    "the quarterly report is due on friday afternoon",
]


class EmbeddingsConformance:
    """Subclass and implement `make_client()`: an `EmbeddingsClient` whose model gives each
    text a vector that depends only on the text (the same text, the same vector; different
    texts, different vectors), for any number of calls (a loopback server speaking the
    provider's API, for an HTTP adapter).

    Flags: `batch_size` (the most inputs the client sends in one request, as `make_client`
    configures it; None when it never splits) with `batches_sent(client)` (how many inputs
    each request carried, oldest first); `supports_dimensions` (the `dimensions` argument
    shortens vectors); `reports_usage` (responses carry usage). A case whose flag is off
    skips and says why."""

    batch_size: ClassVar[int | None] = None
    supports_dimensions: ClassVar[bool] = False
    reports_usage: ClassVar[bool] = True

    async def make_client(self) -> EmbeddingsClient:
        raise NotImplementedError("implement make_client() for your embeddings client")

    async def close_client(self, client: EmbeddingsClient) -> None:
        await close_quietly(client)

    def batches_sent(self, client: EmbeddingsClient) -> list[int] | None:
        """Inputs per request sent so far; None when the client makes no requests to count."""
        return None

    def _run(self, scenario: Callable[[Any], Awaitable[None]]) -> None:
        run_with_resource(self.make_client, self.close_client, scenario)

    def test_one_vector_per_input_in_input_order(self) -> None:
        async def scenario(client: Any) -> None:
            assert isinstance(client, EmbeddingsClient)
            response = await client.embed(TEXTS)
            assert isinstance(response, EmbeddingsResponse)
            _assert_vectors(response, len(TEXTS))
            assert len({tuple(vector) for vector in response.vectors}) == len(TEXTS), (
                "different texts got the same vector: make_client's model must tell them apart "
                "so the order can be checked"
            )
            # One text at a time, last first: each vector must be its own text's.
            alone = [(await client.embed([text])).vectors[0] for text in reversed(TEXTS)]
            alone.reverse()
            for index, (together, single) in enumerate(zip(response.vectors, alone, strict=True)):
                assert together == pytest.approx(single), (
                    f"vectors[{index}] is not TEXTS[{index}]'s"
                )
            repeated = await client.embed(["tax forms", "penguins swim", "tax forms"])
            assert repeated.vectors[0] == pytest.approx(repeated.vectors[2])
            assert repeated.vectors[0] == pytest.approx(response.vectors[2])

        self._run(scenario)

    def test_long_input_lists_are_batched_in_order(self) -> None:
        size = self.batch_size
        if size is None:
            pytest.skip(f"{type(self).__name__}.batch_size is None: the client never batches")

        async def scenario(client: Any) -> None:
            texts = [f"{TEXTS[i % len(TEXTS)]} number {i}" for i in range(2 * size + 1)]
            before = self.batches_sent(client)
            if before is None:
                raise NotImplementedError(
                    "implement batches_sent(client) to test batching (batch_size is set)"
                )
            response = await client.embed(texts)
            sent = self.batches_sent(client) or []
            assert sent[len(before) :] == [size, size, 1]
            _assert_vectors(response, len(texts))
            for index in (0, size - 1, size, 2 * size):
                single = (await client.embed([texts[index]])).vectors[0]
                assert response.vectors[index] == pytest.approx(single), f"vectors[{index}]"
            if self.reports_usage:
                # Usage is added up over the batches, not the last batch's alone.
                total = 0
                for text in texts:
                    usage = (await client.embed([text])).usage
                    assert usage is not None
                    total += usage.input_tokens
                assert response.usage is not None and response.usage.input_tokens == total

        self._run(scenario)

    def test_usage_and_cost(self) -> None:
        if not self.reports_usage:
            pytest.skip(f"{type(self).__name__}.reports_usage is False: no usage is reported")

        async def scenario(client: Any) -> None:
            response = await client.embed(TEXTS[:2])
            assert response.usage is not None, "reports_usage is True but usage is None"
            assert response.usage.input_tokens > 0
            # Embeddings produce no output tokens.
            assert response.usage.output_tokens == 0
            assert response.cost_usd is None or response.cost_usd >= 0
            assert response.model is None or isinstance(response.model, str)

        self._run(scenario)

    def test_dimensions_shorten_the_vectors(self) -> None:
        if not self.supports_dimensions:
            pytest.skip(f"{type(self).__name__}.supports_dimensions is False")

        async def scenario(client: Any) -> None:
            response = await client.embed(TEXTS[:3], dimensions=8)
            _assert_vectors(response, 3)
            assert response.dimensions == 8

        self._run(scenario)

    def test_bad_input_is_refused_before_any_request(self) -> None:
        async def scenario(client: Any) -> None:
            before = self.batches_sent(client)
            # The errors name the input at fault where there is one.
            bad: list[tuple[Any, str | None]] = [
                ("one text", None),
                ([], None),
                (["fine", ""], r"inputs\[1\]"),
                (["fine", 3], r"inputs\[1\]"),
            ]
            for inputs, message in bad:
                with pytest.raises(LLMConfigurationError, match=message):
                    await client.embed(inputs)
            with pytest.raises(LLMConfigurationError, match="dimensions"):
                await client.embed(["fine"], dimensions=0)
            assert self.batches_sent(client) == before, "a refused input was sent anyway"

        self._run(scenario)


def _assert_vectors(response: EmbeddingsResponse, count: int) -> None:
    assert len(response.vectors) == count, f"{len(response.vectors)} vectors for {count} inputs"
    sizes = {len(vector) for vector in response.vectors}
    assert len(sizes) == 1 and response.dimensions in sizes and response.dimensions, (
        f"vectors of mixed or zero lengths: {sorted(sizes)}"
    )
    for vector in response.vectors:
        assert all(isinstance(value, float) and math.isfinite(value) for value in vector)
