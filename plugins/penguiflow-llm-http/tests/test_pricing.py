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
