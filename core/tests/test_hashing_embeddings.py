"""The built-in `hashing` embeddings driver, and the embeddings conformance suite it passes."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest

from penguiflow.llm import EmbeddingsClient, HashingEmbeddingsClient, LLMConfigurationError
from penguiflow.llm.hashing import DEFAULT_DIMENSIONS
from penguiflow.plugins import resolve_driver
from penguiflow.testing import EmbeddingsConformance, run_async
from penguiflow.testing._llm_tools import contains_shape


class TestHashingEmbeddings(EmbeddingsConformance):
    supports_dimensions = True

    async def make_client(self) -> EmbeddingsClient:
        client: EmbeddingsClient = resolve_driver("embeddings", "hashing")
        return client


def embed(texts: list[str], **options: Any) -> Any:
    async def scenario() -> Any:
        async with HashingEmbeddingsClient(**options) as client:
            return await client.embed(texts)

    return run_async(scenario)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_are_unit_length_with_the_default_size() -> None:
    response = embed(["Penguins swim fast.", "?!", "a"])
    assert response.dimensions == DEFAULT_DIMENSIONS == 256
    for vector in response.vectors:
        assert math.sqrt(cosine(vector, vector)) == pytest.approx(1.0)
    assert response.model == "hashing" and response.cost_usd == 0.0
    assert response.usage is not None and response.usage.input_tokens == 5


def test_texts_sharing_words_are_closer_and_case_does_not_matter() -> None:
    vectors = embed(
        ["Emperor penguins swim", "emperor PENGUINS dive", "quarterly tax forms"]
    ).vectors
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert embed(["PENGUINS Swim"]).vectors == embed(["penguins swim"]).vectors


def test_vectors_are_the_same_in_another_process() -> None:
    # str hashes differ between processes; the driver's must not (vectors get stored).
    code = (
        "import asyncio; from penguiflow.llm import HashingEmbeddingsClient as H; "
        "print(asyncio.run(H(dimensions=16).embed(['penguins swim'])).vectors[0])"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    assert other.stdout.strip() == str(embed(["penguins swim"], dimensions=16).vectors[0])


def test_the_driver_takes_dimensions_and_names_unknown_options() -> None:
    client: Any = resolve_driver("embeddings", "hashing", dimensions=32, model="demo")
    assert isinstance(client, HashingEmbeddingsClient) and isinstance(client, EmbeddingsClient)
    assert (client.dimensions, client.model) == (32, "demo")
    with pytest.raises(LLMConfigurationError, match=r"unknown option\(s\) \['size'\]"):
        resolve_driver("embeddings", "hashing", size=32)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(LLMConfigurationError, match="dimensions must be a positive integer"):
            HashingEmbeddingsClient(dimensions=bad)  # type: ignore[arg-type]


def test_contains_shape_matches_nested_parts() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image", "source": {"url": "u", "x": 1}}]}
        ],
        "tools": [{"name": "a", "extra": True}],
    }
    assert contains_shape(body, {"type": "image", "source": {"url": "u"}})
    assert contains_shape(body, {"name": "a"}) and contains_shape(body, "u")
    assert not contains_shape(body, {"type": "image", "source": {"url": "v"}})
    assert not contains_shape(body, {"tools": [{"name": "a"}, {"name": "b"}]})
