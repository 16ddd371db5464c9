"""One plugin's failing lifecycle hook never breaks every flow; strict mode fails early."""

from __future__ import annotations

from typing import Any

import pytest

from penguiflow import Headers, Message, Node, NodePolicy, create
from penguiflow.plugins import PluginLoadError, PluginSettings, load_hooks, reset_hooks
from penguiflow.testing import DistributionSite

GOOD = """
from penguiflow.hookspecs import hookimpl

calls = []

@hookimpl
def penguiflow_flow_startup(flow, role):
    calls.append(("startup", role))

@hookimpl
def penguiflow_flow_shutdown(flow, role):
    calls.append(("shutdown", role))

@hookimpl
def penguiflow_observability_sinks(flow, role):
    async def sink(event):
        calls.append(("event", event.event_type))
    return [sink]
"""

BAD = """
from penguiflow.hookspecs import hookimpl

@hookimpl
def penguiflow_configure(config):
    raise RuntimeError("bad configure")

@hookimpl
def penguiflow_flow_startup(flow, role):
    raise RuntimeError("bad startup")

@hookimpl
def penguiflow_flow_shutdown(flow, role):
    raise RuntimeError("bad shutdown")

@hookimpl
def penguiflow_observability_sinks(flow, role):
    raise RuntimeError("bad sinks")
"""


async def echo(message: Message, ctx: Any) -> Message:
    return message


def _flow() -> Any:
    return create(Node(echo, name="echo", policy=NodePolicy(validate="none")).to())


@pytest.fixture
def plugins(penguiflow_site: DistributionSite) -> DistributionSite:
    penguiflow_site.install("pf-good", {"penguiflow": {"good": "pf_good"}}, {"pf_good": GOOD})
    penguiflow_site.install("pf-bad", {"penguiflow": {"bad": "pf_bad"}}, {"pf_bad": BAD})
    return penguiflow_site


async def test_a_failing_plugin_is_recorded_logged_once_and_skipped(
    plugins: DistributionSite, caplog: pytest.LogCaptureFixture
) -> None:
    import pf_good  # type: ignore[import-not-found]

    host = load_hooks(PluginSettings())
    bad = next(record for record in host.records if record.name == "bad")
    assert bad.status == "failed" and "penguiflow_configure raised RuntimeError" in bad.error
    reset_hooks(host)
    try:
        for round_ in range(2):
            flow = _flow()
            flow.run()
            await flow.emit(Message(payload=round_, headers=Headers(tenant="t")))
            assert (await flow.fetch()).payload == round_
            await flow.stop()  # the bad shutdown hook does not make stop() raise
    finally:
        reset_hooks(None)
    assert pf_good.calls.count(("startup", "local")) == 2
    assert pf_good.calls.count(("shutdown", "local")) == 2
    assert ("event", "node_success") in pf_good.calls
    logged = [r.getMessage() for r in caplog.records if r.name == "penguiflow.plugins"]
    assert len(logged) == 4, logged  # configure, sinks, startup, shutdown: once each
    bad = next(record for record in host.records if record.name == "bad")
    assert bad.status == "failed" and "raised RuntimeError" in (bad.error or "")


async def test_strict_mode_fails_run_before_anything_starts(
    penguiflow_site: DistributionSite,
) -> None:
    penguiflow_site.install(
        "pf-bad-start",
        {"penguiflow": {"badstart": "pf_bad_start"}},
        {
            "pf_bad_start": """
                from penguiflow.hookspecs import hookimpl

                @hookimpl
                def penguiflow_observability_sinks(flow, role):
                    async def sink(event):
                        pass
                    return [sink]

                @hookimpl
                def penguiflow_flow_startup(flow, role):
                    raise RuntimeError("bad startup")
            """
        },
    )
    host = load_hooks(PluginSettings(strict=True))
    reset_hooks(host)
    try:
        flow = _flow()
        with pytest.raises(RuntimeError, match="bad startup"):
            flow.run()
        assert not flow.running and flow._tasks == [] and flow._workers == []
        assert flow._middlewares == []  # the sink the plugin added was taken out again
    finally:
        reset_hooks(None)
    flow.run()  # with the plugin gone, the same flow starts
    await flow.stop()


def test_strict_mode_still_refuses_a_failing_configure(plugins: DistributionSite) -> None:
    with pytest.raises(PluginLoadError, match="bad configure"):
        load_hooks(PluginSettings(strict=True))
