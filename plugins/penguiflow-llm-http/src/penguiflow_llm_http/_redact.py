"""`redact_secrets`: a credential removed from provider text in every spelling it may take.

A provider that echoes the key it was sent rarely echoes it verbatim: a JSON body escapes
characters (`sk\\u002d...`, `\\/`), sometimes twice when an error message holds JSON of its own;
a URL in a message is percent-encoded; an HTML error page uses character references; a
gateway may show a `Basic` header in base64. Each character of the secret is matched in any
of its escaped forms, independently, so mixed spellings (`s%6Bk\\u002d...`) are caught too.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["redact_secrets"]

#: what a secret becomes
MASK = "***"
#: base64 spellings are only looked for in secrets at least this long (in bytes), and only
#: fragments at least this long are used: shorter ones would match unrelated base64 text
_BASE64_MIN_SECRET = 12
_BASE64_MIN_FRAGMENT = 8
#: repeated prefixes are bounded (a backslash per level of JSON nesting: 1, 3, 7; `%25` per
#: extra percent-encoding), which also keeps the pattern linear on a body made of them
_BACKSLASHES = r"\\{1,8}"
_REENCODED = "(?:25){0,3}"
_ZEROS = "0{0,8}"
_SHORT_ESCAPES = {"\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}
_HTML_NAMES = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "(?:apos|#39)"}


def redact_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret in `secrets` replaced by `***`, whether it appears as is,
    JSON- or JavaScript-escaped (any character as `\\uXXXX`, `\\/`, nested escapes),
    percent-encoded (up to four times over), as HTML character references, or in base64 (standard or
    URL-safe, at any alignment inside a longer base64 string). Empty secrets are ignored."""
    wanted = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
    if not wanted or not text:
        return text
    return _pattern(wanted).sub(MASK, text)


# Cached per set of secrets: an error path may redact several texts with the same ones, and a
# pattern for a long key is not free to build. The transport holds the secrets anyway.
@lru_cache(maxsize=64)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so that a secret containing another is masked whole.
    return re.compile("|".join(_secret_pattern(secret) for secret in secrets))


def _secret_pattern(secret: str) -> str:
    spelled = "".join(_char_pattern(char) for char in secret)
    return "|".join([f"(?:{spelled})", *_base64_patterns(secret)])


def _char_pattern(char: str) -> str:
    """Every way one character may be written in a body."""
    code = ord(char)
    options = [re.escape(char)]
    # JSON and JavaScript: \uXXXX per UTF-16 unit; several backslashes, because text that
    # was escaped twice (JSON inside a JSON string) has more of them.
    units = char.encode("utf-16-be")
    options.append(
        "".join(
            _BACKSLASHES + "u" + _hex(int.from_bytes(units[i : i + 2], "big"), 4)
            for i in range(0, len(units), 2)
        )
    )
    if code < 0x100:
        options.append(_BACKSLASHES + "x" + _hex(code, 2))
    if char in "/\"'":
        options.append(_BACKSLASHES + re.escape(char))
    elif char == "\\":
        options.append(_BACKSLASHES)
    elif char in _SHORT_ESCAPES:
        options.append(_BACKSLASHES + _SHORT_ESCAPES[char])
    # Percent-encoding of each UTF-8 byte, also encoded again (%252D); `+` is a form's space.
    options.append("".join("%" + _REENCODED + _hex(byte, 2) for byte in char.encode("utf-8")))
    if char == " ":
        options.append(r"\+")
    # HTML character references.
    options.append(f"&#{_ZEROS}{code};?")
    options.append(f"&#[xX]{_ZEROS}" + _hex(code, 1) + ";?")
    if char in _HTML_NAMES:
        options.append(f"&{_HTML_NAMES[char]};")
    return "(?:" + "|".join(options) + ")"


def _hex(value: int, width: int) -> str:
    """`value` in hexadecimal, at least `width` digits, letters in either case."""
    digits = format(value, f"0{width}x")
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in digits)


def _base64_patterns(secret: str) -> list[str]:
    """The base64 text that encodes `secret`, for each of the three byte alignments it may
    start at inside a longer encoded value (a `Basic user:key` header), in the standard and
    the URL-safe alphabets. The characters that mix the secret's bits with its neighbours'
    are masked with it (whatever they are), so no piece of the encoded secret is left."""
    data = secret.encode("utf-8")
    if len(data) < _BASE64_MIN_SECRET:
        return []
    patterns: list[str] = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode("ascii").rstrip("=")
        # Characters whose six bits all come from the secret are fixed by it; a character
        # on either edge that is only partly the secret's is matched by its alphabet.
        start = -(-shift * 8 // 6)
        end = (shift + len(data)) * 8 // 6
        fixed = encoded[start:end]
        if len(fixed) < _BASE64_MIN_FRAGMENT:
            continue
        lead = "{0,1}" if shift * 8 % 6 else "{0}"
        trail = "{0,1}" if (shift + len(data)) * 8 % 6 else "{0}"
        for alphabet, text in (("+/", fixed), ("-_", fixed.translate(_URLSAFE))):
            if alphabet == "-_" and text == fixed:
                continue
            char = f"[A-Za-z0-9{re.escape(alphabet)}]"
            patterns.append(f"{char}{lead}{re.escape(text)}{char}{trail}={{0,2}}")
    return patterns


_URLSAFE = str.maketrans("+/", "-_")
