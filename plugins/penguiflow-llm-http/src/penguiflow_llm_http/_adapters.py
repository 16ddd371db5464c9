"""Small pieces every HTTP adapter's constructor and driver need, written once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from penguiflow.llm import LLMConfigurationError

__all__ = ["check_request_options", "model_driver", "require_model"]


def require_model(client: str, model: str, example: str) -> None:
    if not model:
        raise LLMConfigurationError(f"{client} needs a model name, e.g. {example!r}")


def check_request_options(client: str, options: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """Refuse option names the request body does not take, listing the ones it does
    (`extra_body` is always accepted: it passes anything else through)."""
    allowed = [*accepted]
    unknown = sorted(set(options) - {*allowed, "extra_body"})
    if unknown:
        raise LLMConfigurationError(
            f"{client} got unknown option(s) {unknown}; request options are "
            f"{', '.join(allowed)} and extra_body={{...}} for anything else"
        )


def model_driver(factory: Callable[..., Any], example: str) -> Callable[..., Any]:
    """A `penguiflow.llm_adapters` driver: `resolve_driver("llm_adapter", name, model=...,
    **options)` builds `factory(model, **options)`."""

    def driver(name: str, **options: Any) -> Any:
        model = options.pop("model", None)
        if not model:
            raise LLMConfigurationError(
                f"the {name!r} LLM adapter needs model=..., e.g. "
                f"resolve_driver('llm_adapter', {name!r}, model={example!r})"
            )
        return factory(str(model), **options)

    driver.__doc__ = f"The LLM adapter driver building {getattr(factory, '__name__', factory)}."
    return driver
