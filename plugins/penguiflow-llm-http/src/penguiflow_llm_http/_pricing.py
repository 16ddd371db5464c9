"""Prices per million tokens, matched by model name prefix, to turn usage into dollars."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from penguiflow.llm import LLMConfigurationError, LLMUsage

__all__ = ["ModelPrice", "PriceTuple", "PricingTable"]

#: (input, output) or (input, output, cache read, cache write), USD per million tokens.
PriceTuple: TypeAlias = "tuple[float, float] | tuple[float, float, float | None, float | None]"


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """US dollars per million input and output tokens, and per million input tokens read
    from (`cache_read_per_mtok`) and written to (`cache_write_per_mtok`) the prompt cache.

    A cache rate left as None is the plain input rate: without a known discount or
    surcharge, cached tokens are priced like any other input, never at a guessed rate."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None

    def __post_init__(self) -> None:
        rates = (
            self.input_per_mtok,
            self.output_per_mtok,
            self.cache_read_per_mtok or 0.0,
            self.cache_write_per_mtok or 0.0,
        )
        if any(rate < 0 for rate in rates):
            raise LLMConfigurationError(
                f"prices must be >= 0 US dollars per million tokens, got {self}"
            )

    def cost(self, usage: LLMUsage) -> float:
        # `input_tokens` includes the cached ones (see LLMUsage): price each part once.
        read = usage.cache_read_input_tokens
        written = usage.cache_creation_input_tokens
        plain = max(usage.input_tokens - read - written, 0)
        read_rate = (
            self.input_per_mtok if self.cache_read_per_mtok is None else (self.cache_read_per_mtok)
        )
        write_rate = (
            self.input_per_mtok
            if self.cache_write_per_mtok is None
            else (self.cache_write_per_mtok)
        )
        return (
            plain * self.input_per_mtok
            + read * read_rate
            + written * write_rate
            + usage.output_tokens * self.output_per_mtok
        ) / 1_000_000


class PricingTable:
    """Model-name prefixes to prices; the longest matching prefix wins.

    Adapters ship a table of their provider's list prices; pass your own (or `extend` theirs)
    for negotiated prices, fine-tunes or self-hosted models. A model with no price has no
    cost (`cost_usd` None), never a guessed one."""

    def __init__(self, prices: Mapping[str, ModelPrice | PriceTuple] | None = None) -> None:
        self._prices: dict[str, ModelPrice] = {}
        self.extend(prices or {})

    def extend(self, prices: Mapping[str, ModelPrice | PriceTuple]) -> PricingTable:
        for prefix, price in dict(prices).items():
            if not prefix:
                raise LLMConfigurationError(
                    "a pricing prefix must not be empty: give the model-name prefix the price "
                    "applies to, e.g. 'gpt-4o'"
                )
            self._prices[prefix] = price if isinstance(price, ModelPrice) else ModelPrice(*price)
        return self

    def price_for(self, model: str) -> ModelPrice | None:
        matches = [prefix for prefix in self._prices if model.startswith(prefix)]
        return self._prices[max(matches, key=len)] if matches else None

    def cost(self, model: str | None, usage: LLMUsage | None) -> float | None:
        if model is None or usage is None:
            return None
        price = self.price_for(model)
        return None if price is None else price.cost(usage)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.price_for(model) is not None

    def __repr__(self) -> str:
        return f"PricingTable({len(self._prices)} prices)"
