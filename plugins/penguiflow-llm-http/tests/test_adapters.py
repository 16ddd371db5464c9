"""The helpers every adapter's constructor and driver share."""

from __future__ import annotations

from typing import Any

import pytest
from penguiflow_llm_http import check_request_options, model_driver, require_model

from penguiflow.llm import LLMConfigurationError


def test_adapter_helpers_name_the_client_and_the_fix() -> None:
    with pytest.raises(LLMConfigurationError, match=r"X needs a model name, e\.g\. 'm-1'"):
        require_model("X", "", "m-1")
    check_request_options("X", {"temperature": 0, "extra_body": {}}, ["temperature"])
    with pytest.raises(LLMConfigurationError, match=r"unknown option\(s\) \['temprature'\]"):
        check_request_options("X", {"temprature": 0}, ["temperature"])
    built: list[tuple[str, dict[str, Any]]] = []
    driver = model_driver(lambda model, **options: built.append((model, options)), "m-1")
    driver("x", model="m-2", seed=1)
    assert built == [("m-2", {"seed": 1})]
    with pytest.raises(LLMConfigurationError, match="needs model="):
        driver("x")
