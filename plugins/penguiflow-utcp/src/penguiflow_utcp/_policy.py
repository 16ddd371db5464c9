"""Where a UTCP manual's tools may send requests, and which variables they may read.

A manual fetched over HTTP is written by whoever serves it, and each of its tools carries the
call template the client follows: the URL to call, headers with `${VAR}` placeholders that
UTCP fills from the environment (`<manual>_VAR`), an OAuth2 token URL. Left alone, a manual
could aim the agent at any host it can reach (loopback services, private ranges, a cloud
metadata address) and pick which of the user's variables to send there. The connector
allows a tool only the manual's own origin plus the hosts the user listed, and only the
variables the user listed; this module holds the pieces of that decision.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from penguiflow.errors import ConfigurationError

__all__ = [
    "VARIABLE_NAME",
    "HostRule",
    "Origin",
    "env_variable",
    "origin_of",
    "parse_allowed_host",
    "placeholder_in_authority",
    "resolve_url",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: characters that URL parsers disagree about (a backslash is a slash to a browser and not to
#: urllib; whitespace and controls are stripped by some): a target holding one is refused
_AMBIGUOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")
_HOSTNAME = re.compile(r"^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$")
#: what UTCP accepts as a variable name in `${NAME}` and `$NAME`
VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_PATH_PARAMETER = re.compile(r"\{([^}]+)\}")
_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: scheme, host (lower-case, IP addresses in canonical form) and port
    (the scheme's default when the URL names none)."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def origin_of(url: str) -> Origin | None:
    """The origin `url` sends to; `None` when it is not an absolute http(s) URL with a host
    every parser reads the same way (such a target is refused, never guessed at)."""
    if not isinstance(url, str) or _AMBIGUOUS.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port out of range or not a number
        return None
    scheme = parts.scheme.lower()
    host = _normal_host(parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or host is None:
        return None
    return Origin(scheme, host, _DEFAULT_PORTS[scheme] if port is None else port)


def _normal_host(host: str) -> str | None:
    host = host.lower().rstrip(".")
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    # Percent-escapes and other characters some clients decode would let one host pass for
    # another; names are compared as written, in ASCII (write an IDN in its xn-- form).
    return host if _HOSTNAME.match(host) else None


@dataclass(frozen=True, slots=True)
class HostRule:
    """One `allowed_hosts` entry: `host` (any port), `host:port`, `*.domain` (its
    subdomains), or `scheme://host[:port]` (exactly that origin)."""

    text: str
    host: str
    port: int | None = None
    scheme: str | None = None

    def matches(self, origin: Origin) -> bool:
        if self.scheme is not None and origin.scheme != self.scheme:
            return False
        if self.port is not None and origin.port != self.port:
            return False
        if self.host.startswith("*."):
            return origin.host.endswith(self.host[1:])
        return origin.host == self.host


def parse_allowed_host(entry: object) -> HostRule:
    """An `allowed_hosts` entry as a rule; a `ConfigurationError` says what to write."""
    problem = (
        f"allowed_hosts entry {entry!r} is not a host: write 'host' (any port), 'host:port', "
        "'*.example.com' (its subdomains) or 'https://host[:port]' (exactly that origin)"
    )
    if not isinstance(entry, str) or not entry or _AMBIGUOUS.search(entry):
        raise ConfigurationError(problem)
    full = "://" in entry
    try:
        parts = urlsplit(entry if full else "//" + entry)
        port = parts.port
    except ValueError:
        raise ConfigurationError(problem) from None
    raw_host = parts.hostname or ""
    wildcard = raw_host.startswith("*.")
    host = _normal_host(raw_host[2:] if wildcard else raw_host)
    if host is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(problem)
    if "@" in parts.netloc:
        raise ConfigurationError(problem)
    if wildcard:
        host = "*." + host
    if not full:
        return HostRule(entry, host, port)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or wildcard:
        raise ConfigurationError(problem)
    return HostRule(entry, host, _DEFAULT_PORTS[scheme] if port is None else port, scheme)


def placeholder_in_authority(url: str) -> bool:
    """True when the host or port of `url` is only decided at call time (a `{parameter}`
    filled from the arguments or a `$VARIABLE`)."""
    match = _AUTHORITY.match(url)
    return match is not None and ("{" in match.group(1) or "$" in match.group(1))


def resolve_url(
    url: str,
    arguments: Mapping[str, Any],
    *,
    header_fields: Sequence[str] = (),
    body_field: str | None = None,
) -> str:
    """The URL utcp-http's HTTP protocol builds from a template (variables already filled)
    and the call's arguments: arguments named in `header_fields` and `body_field` go
    elsewhere, the rest fill `{name}` placeholders, percent-encoded with nothing kept
    safe. A placeholder with no argument stays as it is, and its URL has no origin."""
    remaining = dict(arguments)
    for name in header_fields:
        remaining.pop(name, None)
    if body_field is not None:
        remaining.pop(body_field, None)

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in remaining:
            return match.group(0)
        return quote(str(remaining[name]), safe="")

    return _PATH_PARAMETER.sub(fill, url)


def env_variable(manual: str, variable: str) -> str:
    """The environment variable UTCP reads for `${variable}` in a tool of `manual` (it
    doubles the underscores of the manual's name to make the prefix)."""
    return f"{manual.replace('_', '__')}_{variable}"
