"""Small pieces every HTTP adapter's constructor and driver need, written once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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


#: Query parameters a driver URL may carry.
_URL_PARAMETERS = ("model", "scheme", "profile")

_LOOPBACK = ("localhost", "127.", "::1", "[::1]")


def model_driver(
    factory: Callable[..., Any],
    example: str,
    *,
    kind: str = "llm_adapter",
    label: str = "LLM adapter",
    url_parameters: tuple[str, ...] = _URL_PARAMETERS,
) -> Callable[..., Any]:
    """A `penguiflow.llm_adapters` driver: `resolve_driver("llm_adapter", name, model=...,
    **options)` builds `factory(model, **options)`. `kind`, `label` and `url_parameters`
    make a driver of another model-backed kind the same way (`embeddings`, whose URLs take
    no `?profile=`).

    The name may be a URL, `<driver>://host:port/path?model=...`: host, port and path
    become `base_url`, over https, or http for a loopback host (a local llama.cpp, vLLM or
    Ollama); `?scheme=http` or `?scheme=https` says which outright. `?model=` and
    `?profile=` stand for those options. `<driver>://` alone keeps the adapter's default
    endpoint."""

    def driver(name: str, **options: Any) -> Any:
        if "://" in name:
            options = _url_options(name, options, label, url_parameters)
        model = options.pop("model", None)
        if not model:
            raise LLMConfigurationError(
                f"the {name!r} {label} needs model=..., e.g. "
                f"resolve_driver({kind!r}, {name!r}, model={example!r}), or ?model= in "
                "its URL"
            )
        return factory(str(model), **options)

    driver.__doc__ = f"The {label} driver building {getattr(factory, '__name__', factory)}."
    return driver


def _url_options(
    url: str,
    options: dict[str, Any],
    label: str = "LLM adapter",
    parameters: tuple[str, ...] = _URL_PARAMETERS,
) -> dict[str, Any]:
    """`options` with what the driver URL says: base_url, model, profile. A value given both
    in the URL and as an option must agree, so neither is silently ignored."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - set(parameters))
    if unknown:
        raise LLMConfigurationError(
            f"{label} URL {_redact_url(url)!r} has unknown parameter(s) {unknown}; a URL "
            f"takes {', '.join('?' + name + '=' for name in parameters)} (pass other "
            "options as keyword arguments)"
        )
    found: dict[str, Any] = {k: v for k, v in query.items() if k in ("model", "profile")}
    if parts.netloc:
        scheme = query.get("scheme") or (
            "http" if (parts.hostname or "").startswith(_LOOPBACK) else "https"
        )
        if scheme not in ("http", "https"):
            raise LLMConfigurationError(
                f"{label} URL {_redact_url(url)!r}: scheme={scheme!r}; use http or https"
            )
        found["base_url"] = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    merged = dict(options)
    for key, value in found.items():
        if key in merged and merged[key] != value:
            raise LLMConfigurationError(
                f"{label} URL {_redact_url(url)!r} says {key}={value!r} but {key}="
                f"{merged[key]!r} was passed too; give it once"
            )
        merged[key] = value
    return merged


def _redact_url(url: str) -> str:
    """`url` without a password in it (`user:***@host`), for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()
