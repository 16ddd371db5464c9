"""The audit trail: every operation that changes what an agent may do or did, with who did it
(tenant, user, source) and when, kept in the state store and queryable per tenant and session.

`record(action, source=..., ...)` builds an `AuditRecord`, redacts its details, saves it in
the state store given (when that store has the `audit` capability) or else in the process's
audit store (`set_audit_store`), logs one line (logger `penguiflow.audit`) and, when an event
sink listens, publishes it as an `Event(family="audit", name=action)`. `record_soon` does the
same from synchronous code (plugin loading). Auditing never breaks what is audited: a store
that fails is logged, not raised.

What a record never holds: pause or resume tokens (callers pass the token's digest,
`token_ref`, and give the token in `secrets=` so any copy of it is masked), credentials (keys
that name secrets are masked whatever their value; passwords in URLs and bearer tokens in
text are masked too), and content (tool arguments, steering payloads, prompts), which is
kept only when content capture is on (`PENGUIFLOW_CAPTURE_CONTENT=1`) and then truncated.

Read it back with the store's `list_audit(tenant, session_id=..., since=..., limit=...)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._redaction import MASK, redact_url
from .errors import InvalidTypeError, describe_exception
from .state._models import AuditRecord
from .state._protocols import SupportsAudit, require_capabilities

__all__ = [
    "CONTENT_LIMIT",
    "SOURCES",
    "AuditRecord",
    "audit_store",
    "flush",
    "record",
    "record_soon",
    "redact",
    "set_audit_store",
    "token_ref",
]

logger = logging.getLogger("penguiflow.audit")

#: the sources PenguiFlow itself records from (applications may use their own)
SOURCES = ("planner", "session", "plugins", "api")
#: characters kept of each captured content string
CONTENT_LIMIT = 1_000

# Words that make a key a secret whatever its value. Whole words of the key (split on
# punctuation and camelCase), so `input_tokens` (a count) stays and `resume_token` goes.
_SECRET_WORDS = frozenset(
    {
        "password", "passwd", "pwd", "passphrase", "secret", "token", "credential",
        "credentials", "authorization", "cookie", "apikey", "privatekey", "accesskey",
        "secretkey", "signature",
    }
)  # fmt: skip
_SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key")})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORDS = re.compile(r"[^A-Za-z0-9]+")
# `Authorization` values quoted in text (an error message that echoes a header).
_BEARER = re.compile(r"\b([Bb]earer|BEARER|[Bb]asic|BASIC)(\s+)[A-Za-z0-9._~+/=\-]{12,}")
_MAX_DEPTH = 8
_MAX_ITEMS = 100
_MAX_TEXT = 4_000
_MAX_PENDING = 1_000


def _secret_key(key: str) -> bool:
    words = [w.lower() for w in _WORDS.split(_CAMEL.sub("_", key)) if w]
    if any(word in _SECRET_WORDS for word in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def _clean_text(text: str, known: tuple[str, ...], limit: int) -> str:
    for secret in known:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    text = redact_url(text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    if len(text) > limit:
        text = text[:limit] + f"...[{len(text) - limit} more characters]"
    return text


def _clean(value: Any, known: tuple[str, ...], limit: int, depth: int) -> Any:
    """`value` as JSON values only (what every store can keep), secrets masked."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _clean_text(value, known, limit)
    if depth >= _MAX_DEPTH:
        return "<truncated>"
    if isinstance(value, Mapping):
        cleaned: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= _MAX_ITEMS:
                cleaned["__truncated_keys__"] = len(value) - _MAX_ITEMS
                break
            name = _clean_text(str(key), known, 200)
            cleaned[name] = MASK if _secret_key(name) else _clean(item, known, limit, depth + 1)
        return cleaned
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        kept = [_clean(item, known, limit, depth + 1) for item in items[:_MAX_ITEMS]]
        if len(items) > _MAX_ITEMS:
            kept.append("<truncated>")
        return kept
    # Anything else (a model, an enum, a datetime) is kept as its text, never as the object.
    return _clean_text(_text_of(value), known, limit)


def _text_of(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # an object whose __str__ raises still gets a line in the trail
        return f"<{type(value).__name__}>"


def redact(details: Mapping[str, Any] | None, *, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """`details` as an audit record keeps them: JSON values only, values under keys naming a
    secret (`password`, `token`, `api_key`, `authorization`...) replaced by `***`, passwords
    in URLs and bearer tokens in text masked, every occurrence of a string in `secrets`
    masked, long strings cut."""
    known = tuple(s for s in secrets if isinstance(s, str) and s)
    cleaned = _clean(dict(details or {}), known, _MAX_TEXT, 0)
    assert isinstance(cleaned, dict)
    return cleaned


def _capture_content() -> bool:
    # The kernel's switch (penguiflow.observability.capture_content) when it exists; the
    # same environment variable otherwise.
    from . import observability

    check = getattr(observability, "capture_content", None)
    if callable(check):
        return bool(check())
    value = os.environ.get("PENGUIFLOW_CAPTURE_CONTENT", "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def token_ref(token: str) -> str:
    """A reference to a secret token that is safe to keep: `sha256:` and 16 hex digits of
    its digest (the token cannot be recovered from it, and equal tokens match)."""
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest[:16]}"


# -- where records go ------------------------------------------------------------------------

_store: list[Any] = []  # the process's audit store, when one is set (a 0/1-item list)
_pending: deque[tuple[AuditRecord, Any]] = deque(maxlen=_MAX_PENDING)
_tasks: set[asyncio.Task[None]] = set()


def set_audit_store(store: Any | None) -> Callable[[], None]:
    """Keep the audit records of this process in `store` (a state store with the `audit`
    capability), unless the code recording one passes a store of its own that has it; None
    stops keeping them. Returns a function that puts back the store set before."""
    if store is not None:
        require_capabilities(store, feature="audit", methods=("save_audit", "list_audit"))
    previous = list(_store)
    _store[:] = [store] if store is not None else []

    def restore() -> None:
        _store[:] = previous

    return restore


def audit_store() -> Any | None:
    """The store set by `set_audit_store`, or None."""
    return _store[0] if _store else None


def _target_store(store: Any | None) -> Any | None:
    if store is not None and isinstance(store, SupportsAudit):
        return store
    return audit_store()


def _build(
    action: str,
    *,
    source: str,
    tenant: str | None,
    user: str | None,
    session_id: str | None,
    target: str | None,
    outcome: str,
    details: Mapping[str, Any] | None,
    content: Mapping[str, Any] | None,
    trace_id: str | None,
    secrets: Iterable[str],
) -> AuditRecord:
    if not isinstance(action, str) or not action:
        raise InvalidTypeError(
            f"an audit action must be a non-empty str such as 'tool.write', got {action!r}"
        )
    known = tuple(s for s in secrets if isinstance(s, str) and s)
    kept = redact(details, secrets=known)
    if content and _capture_content():
        kept["content"] = _clean(dict(content), known, CONTENT_LIMIT, 0)

    def text(value: Any) -> str | None:
        return None if value in (None, "") else _clean_text(_text_of(value), known, 500)

    return AuditRecord(
        action=action,
        source=text(source) or "api",
        tenant=text(tenant),
        user=text(user),
        session_id=text(session_id),
        target=text(target),
        outcome=text(outcome) or "ok",
        details=kept,
        trace_id=text(trace_id),
    )


async def _save(entry: AuditRecord, store: Any | None) -> None:
    target = _target_store(store)
    if target is None:
        return
    try:
        await target.save_audit(entry)
    except Exception as exc:
        logger.error(
            "saving audit record %s (%s) in %s failed: %s",
            entry.id,
            entry.action,
            type(target).__name__,
            describe_exception(exc),
        )


async def _publish(entry: AuditRecord) -> None:
    from . import observability
    from .tracecontext import current_span

    if not observability.enabled():
        return
    attributes: dict[str, Any] = {
        "audit_id": entry.id,
        "source": entry.source,
        "outcome": entry.outcome,
        "status": "error" if entry.outcome in ("error", "failed") else "ok",
    }
    for name in ("user", "session_id", "target"):
        value = getattr(entry, name)
        if value is not None:
            attributes[name] = value
    if entry.details:
        attributes["details"] = entry.details
    span = current_span()
    await observability.publish(
        observability.Event(
            family="audit",
            name=entry.action,
            ts=entry.ts,
            trace_id=entry.trace_id,
            parent_span_id=span.span_id if span is not None else None,
            tenant=entry.tenant,
            attributes=attributes,
        )
    )


def _log(entry: AuditRecord) -> None:
    logger.info(
        "audit %s %s target=%s outcome=%s tenant=%s user=%s session=%s",
        entry.source,
        entry.action,
        entry.target,
        entry.outcome,
        entry.tenant,
        entry.user,
        entry.session_id,
    )


async def _deliver(entry: AuditRecord, store: Any | None) -> None:
    """Save and publish `entry` (already logged)."""
    await _save(entry, store)
    try:
        await _publish(entry)
    except Exception as exc:  # publish() contains sink failures; this is for the rest
        logger.warning("publishing audit record %s failed: %s", entry.id, describe_exception(exc))


async def _drain() -> None:
    while _pending:
        entry, store = _pending.popleft()
        await _deliver(entry, store)


async def record(
    action: str,
    *,
    source: str,
    tenant: str | None = None,
    user: str | None = None,
    session_id: str | None = None,
    target: str | None = None,
    outcome: str = "ok",
    details: Mapping[str, Any] | None = None,
    content: Mapping[str, Any] | None = None,
    trace_id: str | None = None,
    store: Any | None = None,
    secrets: Iterable[str] = (),
) -> AuditRecord:
    """Record that `action` happened (see the module docstring) and return the record.

    `details` are kept redacted; `content` (tool arguments, payloads, text a user wrote)
    only when content capture is on. `secrets` are strings that must never be kept (a pause
    token): each occurrence anywhere in the record is masked. `store` is where the caller
    keeps its state: used when it has the `audit` capability, else the process's audit
    store. Never raises for a store or a sink that fails."""
    entry = _build(
        action,
        source=source,
        tenant=tenant,
        user=user,
        session_id=session_id,
        target=target,
        outcome=outcome,
        details=details,
        content=content,
        trace_id=trace_id,
        secrets=secrets,
    )
    _log(entry)
    await _drain()
    await _deliver(entry, store)
    return entry


def record_soon(
    action: str,
    *,
    source: str,
    tenant: str | None = None,
    user: str | None = None,
    session_id: str | None = None,
    target: str | None = None,
    outcome: str = "ok",
    details: Mapping[str, Any] | None = None,
    content: Mapping[str, Any] | None = None,
    trace_id: str | None = None,
    store: Any | None = None,
    secrets: Iterable[str] = (),
) -> AuditRecord:
    """`record` for synchronous code: the record is built (and logged) now and saved and
    published by a task on the running event loop; with no loop running, by the next
    `record()` or `flush()` (up to 1000 records wait). Returns the record."""
    entry = _build(
        action,
        source=source,
        tenant=tenant,
        user=user,
        session_id=session_id,
        target=target,
        outcome=outcome,
        details=details,
        content=content,
        trace_id=trace_id,
        secrets=secrets,
    )
    _log(entry)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _pending.append((entry, store))
        return entry
    task = loop.create_task(_deliver(entry, store))
    _tasks.add(task)  # a strong reference until it is done (the loop keeps weak ones)
    task.add_done_callback(_tasks.discard)
    return entry


async def flush() -> None:
    """Wait until every record made so far (`record_soon` included) is saved and published."""
    loop = asyncio.get_running_loop()
    while True:
        await _drain()
        # Tasks of another loop (one that has since closed) can never be waited for here.
        mine = [task for task in _tasks if task.get_loop() is loop]
        if not mine and not _pending:
            return
        await asyncio.gather(*mine, return_exceptions=True)
