"""Hooks, sinks, middlewares and the state store on the redis runtime, in every worker process.

A hook plugin is installed the way users install one (an entry point in the `penguiflow` group
of a distribution on the path), visible only to the worker processes; the flow's middleware and
`redis://` state store come from the flow each worker builds from the user's code.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from distributed_app import build_observed
from test_runtime import job, scoped
from workers import WorkerProcesses

from penguiflow.testing import DistributionSite, run_async

PROBE = """
import os
from pathlib import Path

from penguiflow.hookspecs import hookimpl


def _mark(name):
    Path(os.environ["PF_TEST_MARKERS"], f"{name}-{os.getpid()}").touch()


@hookimpl
def penguiflow_flow_startup(flow, role):
    _mark(f"startup-{role}")


@hookimpl
def penguiflow_flow_shutdown(flow, role):
    _mark(f"shutdown-{role}")


@hookimpl
def penguiflow_observability_sinks(flow, role):
    async def sink(event):
        if event.event_type == "node_success":
            _mark(f"sink-{role}")

    return [sink]
"""


def test_every_worker_calls_its_hooks_sinks_and_middlewares_and_records_events(
    redis_url: str, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    # Installed the way pip would leave it, on the workers' path only.
    DistributionSite(site).install(
        "pf-lifecycle-probe",
        {"penguiflow": {"probe": "pf_lifecycle_probe"}},
        {"pf_lifecycle_probe": PROBE},
    )
    markers = tmp_path / "markers"
    markers.mkdir()
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env = {"PF_TEST_MARKERS": str(markers), "PYTHONPATH": path, "PF_TEST_STATE_STORE": redis_url}
    os.environ["PF_TEST_STATE_STORE"] = redis_url  # the client builds the same flow
    pool = WorkerProcesses(redis_url, tmp_path, env=env)
    url = scoped(redis_url)
    try:
        # One message at a time per worker: while one works, the next entry goes to the other.
        first = pool.start("--concurrency", "1", url=url, target="distributed_app:build_observed")
        second = pool.start("--concurrency", "1", url=url, target="distributed_app:build_observed")
        sent = [job(n, delay=0.3) for n in range(4)]

        async def scenario() -> dict[str, list[object]]:
            flow = build_observed(runtime=url)
            async with flow:
                for message in sent:
                    await flow.emit(message)
                answers = [(await asyncio.wait_for(flow.fetch(), 30)).payload.text for _ in sent]
                assert sorted(int(a.split(":")[0]) for a in answers) == [0, 1, 2, 3]
                return {m.trace_id: list(await flow.load_history(m.trace_id)) for m in sent}

        histories = run_async(scenario, timeout=90)
    finally:
        pool.stop_all()
        os.environ.pop("PF_TEST_STATE_STORE", None)
    pids = {first.pid, second.pid}
    made = {path.name for path in markers.iterdir()}
    for pid in pids:
        for marker in ("startup-worker", "sink-worker", "middleware", "shutdown-worker"):
            assert f"{marker}-{pid}" in made, f"{marker} missing in worker {pid}: {sorted(made)}"
    # The client process has no hook plugin installed (the probe is on the workers' path).
    assert not any(name.startswith(("startup-client", "sink-client")) for name in made)
    recorders = set()
    for trace_id, events in histories.items():
        kinds = [event.kind for event in events]
        assert kinds.count("node_success") == 2, (trace_id, kinds)  # work, then finish
        recorders |= {event.payload["worker"] for event in events}
    assert {recorder.split(":")[1] for recorder in recorders} == {str(pid) for pid in pids}
