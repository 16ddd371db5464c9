"""`HashingEmbeddingsClient`: deterministic feature-hashing embeddings, in memory (driver
`hashing` of the `penguiflow.embeddings` kind), for tests and demos.

Each word (lower-cased runs of letters and digits) adds +1 or -1 to one of `dimensions`
buckets, chosen by a stable hash; the vector is then scaled to unit length. Texts that share
words are therefore closer (higher cosine similarity) than texts that share none, the same
text always gets the same vector, in every process, and nothing is downloaded. It knows no
synonyms: it is a stand-in for a model, not a model.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any

from ..resources import AsyncResource
from ._embeddings import EmbeddingsResponse
from ._errors import LLMConfigurationError
from ._models import LLMUsage

__all__ = ["DEFAULT_DIMENSIONS", "HashingEmbeddingsClient", "hashing_embeddings"]

#: Vector length when neither the client nor the call names one.
DEFAULT_DIMENSIONS = 256

_WORD = re.compile(r"\w+")


class HashingEmbeddingsClient(AsyncResource):
    """An `EmbeddingsClient` that needs no model: vectors of `dimensions` numbers (or the
    call's `dimensions`), L2-normalised, one per input in order. Usage counts the words of
    the inputs as input tokens; the cost is 0."""

    def __init__(self, *, dimensions: int = DEFAULT_DIMENSIONS, model: str = "hashing") -> None:
        _check_dimensions(dimensions)
        self.dimensions = dimensions
        self.model = model

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dimensions={self.dimensions}, model={self.model!r})"

    async def embed(
        self, inputs: Sequence[str], *, dimensions: int | None = None
    ) -> EmbeddingsResponse:
        """A unit vector per string of `inputs`, in order."""
        texts = _check_inputs(inputs)
        if dimensions is not None:
            _check_dimensions(dimensions)
        size = dimensions if dimensions is not None else self.dimensions
        vectors: list[list[float]] = []
        words = 0
        for text in texts:
            tokens = _tokens(text)
            words += len(tokens)
            vectors.append(_vector(tokens, size))
        return EmbeddingsResponse(
            vectors=vectors,
            usage=LLMUsage(input_tokens=words),
            cost_usd=0.0,
            model=self.model,
        )

    async def aclose(self) -> None:
        """Nothing to release; here so every resource closes the same way (`async with`)."""


def hashing_embeddings(name: str, **options: Any) -> HashingEmbeddingsClient:
    """The `hashing` driver: `resolve_driver("embeddings", "hashing", dimensions=64)`."""
    accepted = {"dimensions", "model"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise LLMConfigurationError(
            f"embeddings driver {name!r} got unknown option(s) {unknown}; accepted: "
            f"{sorted(accepted)}"
        )
    return HashingEmbeddingsClient(**options)


def _tokens(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    # A text without a single word ("?!") is hashed whole, so every vector has unit length
    # and cosine similarity is always defined.
    return words or [text.strip().lower() or text]


def _vector(tokens: list[str], size: int) -> list[float]:
    buckets = [0.0] * size
    for token in tokens:
        # blake2b, not hash(): str hashes change between processes (PYTHONHASHSEED), and
        # vectors must be the same wherever they are computed or stored.
        digest = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")
        # The sign bit halves the bias of collisions (signed feature hashing): two words in
        # one bucket cancel out as often as they add up.
        buckets[(digest >> 1) % size] += 1.0 if digest & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in buckets))
    if norm == 0.0:
        # Every word cancelled another in its bucket: fall back to the first word's own
        # bucket, so the vector still has unit length.
        digest = int.from_bytes(hashlib.blake2b(tokens[0].encode(), digest_size=8).digest(), "big")
        buckets[(digest >> 1) % size] = 1.0
        return buckets
    return [value / norm for value in buckets]


def _check_inputs(inputs: Sequence[str]) -> list[str]:
    # A lone string is a Sequence[str] too; embedding it letter by letter is never meant.
    if isinstance(inputs, str | bytes):
        raise LLMConfigurationError("embed() takes a list of strings; wrap one text: [text]")
    texts = list(inputs)
    if not texts:
        raise LLMConfigurationError("embed() got no inputs: pass at least one string")
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text:
            raise LLMConfigurationError(
                f"inputs[{index}] is {text!r}: every input must be a non-empty string"
            )
    return texts


def _check_dimensions(dimensions: object) -> None:
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
        raise LLMConfigurationError(f"dimensions must be a positive integer, got {dimensions!r}")
