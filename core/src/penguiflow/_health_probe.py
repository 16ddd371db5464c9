"""What `penguiflow health URL` asks: one GET of a readiness endpoint, and what came back."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError

__all__ = ["Probe", "probe", "readiness_url"]

#: A body larger than this is not a health report; only its start is kept.
_MAX_BODY = 256 * 1024


@dataclass(frozen=True, slots=True)
class Probe:
    """The answer: `status` and the decoded JSON `body` (None when it was not JSON), or,
    when nothing answered, `status` None and `error` saying why."""

    url: str
    status: int | None
    body: Any = None
    text: str = ""
    error: str | None = None


def readiness_url(url: str) -> str:
    """`url` as given when it names a path; `<url>/readyz` when it names only a server
    (`http://host:port` or `host:port`, which is read as http)."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{url!r} is not an http(s) URL of a server; give e.g. http://127.0.0.1:8000 "
            "(its /readyz is checked) or the full URL of a readiness endpoint"
        )
    if parts.path in ("", "/"):
        parts = parts._replace(path="/readyz")
    return urlunsplit(parts)


def probe(url: str, *, timeout_s: float) -> Probe:
    """GET `url` directly (no proxy from the environment: a proxy in between would answer for
    itself, not for the process being checked), following no redirects beyond urllib's."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "penguiflow-health"}
    )
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return _answer(url, response.status, response.read(_MAX_BODY))
    except urllib.error.HTTPError as exc:  # an answer with an error status (503 included)
        with exc:
            return _answer(url, exc.code, exc.read(_MAX_BODY))
    except urllib.error.URLError as exc:
        return Probe(url, None, error=str(exc.reason))
    except TimeoutError:
        return Probe(url, None, error=f"no answer within {timeout_s:g}s")
    except (http.client.HTTPException, ConnectionError) as exc:
        return Probe(url, None, error=f"{type(exc).__name__}: {exc}")


def _answer(url: str, status: int, raw: bytes) -> Probe:
    text = raw.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    return Probe(url, status, body, text)
