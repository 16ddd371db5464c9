"""The audit trail: records built, redacted, kept in the state store and published."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from penguiflow import audit
from penguiflow.errors import InvalidTypeError
from penguiflow.observability import Event
from penguiflow.plugins import PluginSettings, load_hooks
from penguiflow.state import AuditRecord, InMemoryStateStore, StoreRequestError, select_audit
from penguiflow.state.sqlite import SQLiteStateStore
from penguiflow.testing import DistributionSite, collect_events
from penguiflow.tracecontext import SpanContext, using_span

PAUSE_TOKEN = "9f2c41d0a7b35e6c8d1f0a2b3c4d5e6f"
SECRETS = ("hunter2", "sk-live-abcdef123456", "s3cretpw", PAUSE_TOKEN, "eyJhbGciOiJIUzI1NiJ9.abc")


@pytest.fixture(autouse=True)
def _fresh_trail(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PENGUIFLOW_CAPTURE_CONTENT", raising=False)
    restore = audit.set_audit_store(None)
    audit._pending.clear()
    yield
    audit._pending.clear()
    restore()


def test_public_names() -> None:
    for name in audit.__all__:
        assert getattr(audit, name) is not None
    assert audit.AuditRecord is AuditRecord


def test_records_round_trip_as_dicts_and_ignore_unknown_keys() -> None:
    record = AuditRecord(action="tool.write", source="planner", tenant="acme", details={"a": 1})
    data = record.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert AuditRecord.from_dict({**data, "added_later": True}) == record


def test_redact_masks_secrets_by_key_by_url_by_bearer_and_by_value() -> None:
    details = {
        "password": "hunter2",
        "apiKey": "sk-live-abcdef123456",
        "nested": {"resume_token": PAUSE_TOKEN, "Authorization": "whatever"},
        "url": "postgresql://app:s3cretpw@db:5432/flows",
        "error": "401 from server: Bearer eyJhbGciOiJIUzI1NiJ9.abc refused",
        "echo": f"token was {PAUSE_TOKEN}",
        "input_tokens": 12,  # a count, not a secret: kept
        "when": ("tuple", 1.5, float("nan")),
    }
    kept = audit.redact(details, secrets=[PAUSE_TOKEN])
    text = json.dumps(kept)
    for secret in SECRETS:
        assert secret not in text
    assert kept["password"] == "***" and kept["apiKey"] == "***"
    assert kept["nested"] == {"resume_token": "***", "Authorization": "***"}
    assert kept["url"] == "postgresql://app:***@db:5432/flows"
    assert kept["error"] == "401 from server: Bearer *** refused"
    assert kept["echo"] == "token was ***"
    assert kept["input_tokens"] == 12
    assert kept["when"] == ["tuple", 1.5, "nan"]  # JSON values only: every store can keep it


def test_token_ref_is_stable_and_hides_the_token() -> None:
    ref = audit.token_ref(PAUSE_TOKEN)
    assert ref == audit.token_ref(PAUSE_TOKEN) and ref.startswith("sha256:")
    assert PAUSE_TOKEN not in ref and ref != audit.token_ref(PAUSE_TOKEN + "x")


async def test_a_record_is_kept_in_the_given_store_without_secrets(tmp_path: Path) -> None:
    async with SQLiteStateStore(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        entry = await audit.record(
            "planner.pause",
            source="planner",
            tenant="acme",
            user="ann",
            session_id="s1",
            target=audit.token_ref(PAUSE_TOKEN),
            details={"reason": "approval_required", "api_key": "sk-live-abcdef123456",
                     "dsn": "redis://:hunter2@cache:6379/0", "note": PAUSE_TOKEN},
            content={"args": {"password": "s3cretpw"}},
            trace_id="a" * 32,
            store=store,
            secrets=[PAUSE_TOKEN],
        )  # fmt: skip
        (saved,) = await store.list_audit("acme", session_id="s1")
        assert saved == entry
        assert (saved.action, saved.source, saved.user, saved.outcome) == (
            "planner.pause", "planner", "ann", "ok")  # fmt: skip
        assert "content" not in saved.details  # content capture is off by default
        raw = json.dumps(saved.to_dict())
        for secret in SECRETS:
            assert secret not in raw
        assert await store.list_audit("other-tenant") == []


async def test_content_is_kept_only_with_capture_on_and_truncated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = InMemoryStateStore()
    monkeypatch.setenv("PENGUIFLOW_CAPTURE_CONTENT", "1")
    long_text = "x" * (audit.CONTENT_LIMIT + 500)
    await audit.record(
        "tool.write", source="planner", tenant="t", store=store,
        content={"args": {"body": long_text, "token": "hunter2"}},
    )  # fmt: skip
    (saved,) = await store.list_audit("t")
    body = saved.details["content"]["args"]["body"]
    assert body.startswith("x" * audit.CONTENT_LIMIT) and "500 more characters" in body
    assert saved.details["content"]["args"]["token"] == "***"  # still redacted


async def test_the_process_store_takes_records_a_callers_store_cannot_keep() -> None:
    class NoAudit:  # a state store without the audit capability
        async def save_event(self, event: Any) -> None: ...

    trail = InMemoryStateStore()
    restore = audit.set_audit_store(trail)
    try:
        assert audit.audit_store() is trail
        await audit.record("steering.cancel", source="session", tenant="t", store=NoAudit())
        await audit.record("steering.pause", source="session", tenant="t")
    finally:
        restore()
    assert audit.audit_store() is None
    assert [r.action for r in await trail.list_audit("t")] == ["steering.cancel", "steering.pause"]


async def test_an_action_must_be_named() -> None:
    with pytest.raises(InvalidTypeError, match=r"non-empty str such as 'tool\.write'"):
        await audit.record("", source="api")


def test_set_audit_store_refuses_a_store_without_the_capability() -> None:
    with pytest.raises(InvalidTypeError, match=r"save_audit.*feature=audit"):
        audit.set_audit_store(object())


async def test_without_any_store_the_record_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="penguiflow.audit"):
        entry = await audit.record("tool.destructive", source="planner", target="rm_rf")
    assert entry.target == "rm_rf"
    assert any("tool.destructive" in r.getMessage() for r in caplog.records)


async def test_a_failing_store_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(InMemoryStateStore):
        async def save_audit(self, record: AuditRecord) -> None:
            raise OSError("disk full")

    with caplog.at_level(logging.ERROR, logger="penguiflow.audit"):
        await audit.record("planner.resume", source="planner", store=Broken())
    assert any("disk full" in r.getMessage() for r in caplog.records)


async def test_records_are_published_as_audit_events_under_the_current_span() -> None:
    span = SpanContext("b" * 32, "c" * 16)
    with collect_events() as seen, using_span(span):
        entry = await audit.record(
            "approval.reject", source="session", tenant="acme", user="ann",
            session_id="s1", target="task-1", outcome="rejected", trace_id="d" * 32,
            details={"secret": "hunter2"},
        )  # fmt: skip
    (event,) = seen
    assert (event.family, event.name, event.qualified_name) == (
        "audit", "approval.reject", "audit.approval.reject")  # fmt: skip
    assert (event.tenant, event.trace_id, event.ts) == ("acme", "d" * 32, entry.ts)
    assert event.parent_span_id == "c" * 16 and event.span is None
    assert event.attributes["audit_id"] == entry.id
    assert event.attributes["outcome"] == "rejected" and event.attributes["user"] == "ann"
    assert event.attributes["details"] == {"secret": "***"}


async def test_nothing_is_published_when_no_sink_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    from penguiflow import observability

    async def refuse(event: Event) -> None:
        raise AssertionError("published with no sink installed")

    monkeypatch.setattr(observability, "publish", refuse)
    await audit.record("steering.cancel", source="session")


def test_record_soon_without_a_loop_logs_now_and_saves_at_flush(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio

    store = InMemoryStateStore()
    with caplog.at_level(logging.INFO, logger="penguiflow.audit"):
        entry = audit.record_soon("plugin.load_failed", source="plugins", store=store)
    assert [r.getMessage().count("plugin.load_failed") for r in caplog.records] == [1]

    async def later() -> list[AuditRecord]:
        await audit.flush()
        return list(await store.list_audit(None))

    assert [r.id for r in asyncio.run(later())] == [entry.id]


async def test_record_soon_on_a_loop_saves_in_the_background() -> None:
    store = InMemoryStateStore()
    entries = [audit.record_soon("plugin.load_failed", source="plugins", store=store,
                                 target=f"p{i}") for i in range(3)]  # fmt: skip
    await audit.flush()
    assert [r.id for r in await store.list_audit(None)] == [e.id for e in entries]


BROKEN = """
raise RuntimeError("cannot reach redis://worker:hunter2@cache:6379/0 at import")
"""


async def test_a_plugin_that_fails_to_load_is_in_the_trail(
    penguiflow_site: DistributionSite,
) -> None:
    penguiflow_site.install("pf-broken", {"penguiflow": {"broken": "pf_broken"}},
                            {"pf_broken": BROKEN})  # fmt: skip
    trail = InMemoryStateStore()
    restore = audit.set_audit_store(trail)
    try:
        host = load_hooks(PluginSettings())
        await audit.flush()
    finally:
        restore()
    assert [r.status for r in host.records if r.name == "broken"] == ["failed"]
    (entry,) = await trail.list_audit(None)  # plugins belong to the process, not a tenant
    assert (entry.action, entry.source, entry.target, entry.outcome) == (
        "plugin.load_failed", "plugins", "broken", "failed")  # fmt: skip
    assert entry.details["distribution"] == "pf-broken"
    assert "RuntimeError" in entry.details["error"] and "hunter2" not in entry.details["error"]
    assert "PENGUIFLOW_DISABLE_PLUGINS=broken" in entry.details["remedy"]


async def test_loading_without_failures_records_nothing(penguiflow_site: DistributionSite) -> None:
    penguiflow_site.install("pf-fine", {"penguiflow": {"fine": "pf_fine"}}, {"pf_fine": ""})
    trail = InMemoryStateStore()
    restore = audit.set_audit_store(trail)
    try:
        load_hooks(PluginSettings())
        await audit.flush()
    finally:
        restore()
    assert await trail.list_audit(None) == []


def test_select_audit_checks_its_arguments() -> None:
    with pytest.raises(StoreRequestError, match="limit must be an integer >= 1"):
        select_audit([], "t", limit=0)
    with pytest.raises(StoreRequestError, match="tenant id"):
        select_audit([], 3, limit=1)  # type: ignore[arg-type]
    with pytest.raises(StoreRequestError, match="since must be a time"):
        select_audit([], "t", since=True)
