"""Prices by model-name prefix."""

from __future__ import annotations

import pytest
from penguiflow_llm_http import ModelPrice, PricingTable

from penguiflow.llm import LLMConfigurationError, LLMUsage


def test_pricing_longest_prefix_and_no_guessing() -> None:
    table = PricingTable({"gpt-4o": (2.5, 10.0), "gpt-4o-mini": ModelPrice(0.15, 0.6)})
    usage = LLMUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert table.cost("gpt-4o-mini-2024", usage) == pytest.approx(0.75)
    assert table.cost("gpt-4o-2024", usage) == pytest.approx(12.5)
    assert table.cost("llama", usage) is None and "llama" not in table
    assert table.cost(None, usage) is None and table.cost("gpt-4o", None) is None
    assert "gpt-4o-2024" in table and repr(table) == "PricingTable(2 prices)"


def test_extend_overrides_and_bad_prices_are_configuration_errors() -> None:
    table = PricingTable({"m": (1.0, 1.0)}).extend({"m": (2.0, 2.0)})
    assert table.cost("m", LLMUsage(input_tokens=500_000)) == pytest.approx(1.0)
    with pytest.raises(LLMConfigurationError, match=">= 0"):
        ModelPrice(-1, 0)
    with pytest.raises(LLMConfigurationError, match="prefix must not be empty"):
        PricingTable({"": (1.0, 1.0)})


def test_cache_reads_and_writes_are_priced_at_their_rates() -> None:
    usage = LLMUsage(
        input_tokens=1_000_000 + 2_000_000 + 500_000,
        output_tokens=0,
        cache_read_input_tokens=2_000_000,
        cache_creation_input_tokens=500_000,
    )
    price = ModelPrice(3.0, 15.0, 0.3, 3.75)
    assert price.cost(usage) == pytest.approx(3.0 + 0.6 + 1.875)
    # unknown cache rates fall back to the input rate, never a guessed discount
    assert ModelPrice(3.0, 15.0).cost(usage) == pytest.approx(3.5 * 3.0)
    table = PricingTable({"m": (1.0, 2.0, 0.5, None)})
    assert table.cost("m-1", LLMUsage(input_tokens=10, cache_read_input_tokens=10)) == (
        pytest.approx(5 / 1e6)
    )
    with pytest.raises(LLMConfigurationError, match=">= 0"):
        ModelPrice(1.0, 1.0, -0.1)
