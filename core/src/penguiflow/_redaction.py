"""Masking the secrets URLs carry before a URL reaches an error, a log line or a repr.

Public as `penguiflow.resources.redact_url`: every driver that is given a URL (state stores,
buses, runtimes, the CLI) formats it through this one function, so a password never reaches a
log because one message forgot it.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact_url"]

MASK = "***"

# `scheme://user:password@host`: the password runs to the last `@` of the URL that a
# plausible host follows (up to `/`, `?`, `#`, whitespace or the end), so a password holding a
# raw `@`, `:` or `/` is masked whole; where a URL is ambiguous, more is masked rather than
# less. Working on text rather than on one parsed URL masks every URL in a message, URLs that
# `urlsplit` refuses (a bad port, an unclosed `[`) and URLs quoted inside a repr.
_USERINFO = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*):(?P<password>\S*)@"
    r"(?=[^\s@/?#]*(?:[/?#\s]|$))"
)
# Secrets passed as query parameters (`?password=...`, which redis-py and libpq both accept)
# or as libpq `key=value` words.
_SECRET_PARAMETER = re.compile(
    r"(?P<head>(?:^|[?&;\s])(?:password|passwd|pwd|sslpassword|secret|client_secret|token|"
    r"access_token|auth_token|api_key|apikey)=)(?P<value>[^&;#\s]*)",
    re.IGNORECASE,
)


def _mask_password(match: re.Match[str]) -> str:
    if not match.group("password"):  # `user:@host` holds nothing to hide
        return match.group(0)
    return f"{match.group('head')}:{MASK}@"


def _mask_value(match: re.Match[str]) -> str:
    if not match.group("value"):
        return match.group(0)
    return f"{match.group('head')}{MASK}"


def redact_url(text: str) -> str:
    """`text` (a URL, or a message quoting URLs) with every password replaced by `***`.

    `postgresql://app:s3cret@db:5432/flows` becomes `postgresql://app:***@db:5432/flows`;
    secret query parameters (`?password=...`, `token=`, `api_key=`...) are masked too. The
    user name, host, port, path and other parameters are kept, since they are what a reader
    needs to find the server. Use it wherever a URL is formatted into an error message, a log
    line or a `__repr__`."""
    if "=" in text:
        text = _SECRET_PARAMETER.sub(_mask_value, text)
    if "@" in text:
        text = _USERINFO.sub(_mask_password, text)
    return text
