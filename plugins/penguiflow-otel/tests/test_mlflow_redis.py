"""One trace in MLflow across three processes: a client emitting inside a span of its own and
two `penguiflow worker` processes of the redis runtime running the flow's nodes.

Each process has the installed penguiflow-otel plugin, configured by `OTEL_*` variables only
(MLflow's OTLP/HTTP endpoint and experiment header, metrics off). The workers are stopped
with SIGTERM, as an orchestrator stops them, and flush their spans as they exit; the test then
reads the trace back through MLflow's client: one trace id, the client's span as its root,
every `node work` span a child of it and every `node finish` span a child of its job's `node
work` span (the parent crossed the Redis stream), with spans from both worker processes.

Needs mlflow (tox -e otel-mlflow installs it; skipped without it unless PENGUIFLOW_OTEL_MLFLOW=1)
and Redis: $PENGUIFLOW_REDIS_URL (scripts/test.sh starts one and exports it), else a server of
the test's own started with scripts/services/redis.sh. Without either the test is skipped, or
fails when CI is set."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import anyio
import pytest
from mlflow_server import require_mlflow
from redis_app import Job, build

from penguiflow import Headers, Message
from penguiflow.observability import observe
from penguiflow.plugins import AUTOLOAD_ENV, PluginSettings, load_hooks, reset_hooks
from penguiflow.testing import require_server
from penguiflow.tracecontext import TRACEPARENT

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
REDIS_SCRIPT = REPO / "scripts" / "services" / "redis.sh"
JOBS = 8


def _no_redis(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """$PENGUIFLOW_REDIS_URL when set (CI), else a redis-server of this module's own, started
    and stopped with scripts/services/redis.sh in a services folder of its own (so it never
    touches a server someone else started)."""
    given = os.environ.get("PENGUIFLOW_REDIS_URL")
    if given:
        yield require_server(
            given,
            default_port=6379,
            how_to_start="start one with `bash scripts/services/redis.sh start`",
        )
        return
    if shutil.which("redis-server") is None or not REDIS_SCRIPT.is_file():
        _no_redis(
            "no Redis: set PENGUIFLOW_REDIS_URL, or install redis-server (sudo apt-get install "
            "redis-server) so that the test can start one"
        )
    env = {**os.environ, "PENGUIFLOW_SERVICES_DIR": str(tmp_path_factory.mktemp("services"))}

    def script(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(REDIS_SCRIPT), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    started = script("start")
    try:
        if started.returncode != 0:
            _no_redis(f"scripts/services/redis.sh start failed: {started.stderr.strip()}")
        yield script("url").stdout.strip()
    finally:
        script("stop")


def _otel_env(mlflow_url: str, service: str) -> dict[str, str]:
    """What a user sets to send a process's spans to MLflow (and nothing else)."""
    return {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{mlflow_url}/v1/traces",
        # MLflow answers 422 without the experiment to put the spans in.
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-mlflow-experiment-id=0",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",  # MLflow takes no metrics
        "OTEL_SERVICE_NAME": service,
    }


class Workers:
    """`penguiflow worker redis_app:build` processes, stopped with SIGTERM at the end."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, runtime: str, service: str) -> subprocess.Popen[bytes]:
        log = self.folder / f"{service}.log"
        with log.open("wb") as handle:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "penguiflow.cli",
                    "worker",
                    "redis_app:build",
                    "--runtime",
                    runtime,
                    "--concurrency",
                    "1",
                ],
                cwd=HERE,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**self.env, "OTEL_SERVICE_NAME": service},
            )
        self.procs.append(proc)
        deadline = time.monotonic() + 60
        while b"penguiflow worker ready" not in log.read_bytes():
            if proc.poll() is not None:
                raise AssertionError(f"{service} exited early:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{service} not ready in 60 s:\n{log.read_text()}")
            time.sleep(0.05)  # polling a starting process: the deadline above bounds it
        return proc

    def stop(self) -> list[int | None]:
        """SIGTERM to each, then wait: the exit codes (None: killed after 30 s)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=30))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes.append(None)
        return codes

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()}" for path in sorted(self.folder.glob("*.log"))
        )


@pytest.fixture
def workers(
    mlflow_url: str,
    redis_url: str,
    tmp_path: Path,
) -> Iterator[Workers]:
    env = {
        **os.environ,
        **_otel_env(mlflow_url, "penguiflow-worker"),
        # The plugin comes from its entry point, as users get it (the test process turns
        # autoload off for itself: see conftest.py).
        AUTOLOAD_ENV: "1",
        "PENGUIFLOW_STRICT_PLUGINS": "1",
        # No periodic export (an hour): the spans reach MLflow only if the worker flushes
        # them as it exits, which is what the test checks.
        "OTEL_BSP_SCHEDULE_DELAY": "3600000",
    }
    pool = Workers(tmp_path, env)
    yield pool
    pool.stop()


def _read_trace(mlflow: Any, url: str, trace_id: str, spans: int) -> Any:
    """The trace once MLflow holds `spans` spans of it (spans from three processes arrive in
    separate requests), polled with a deadline."""
    client = mlflow.MlflowClient(url)
    deadline = time.monotonic() + 60
    trace = None
    while True:
        try:
            trace = client.get_trace(f"tr-{trace_id}")
        except Exception:  # not there yet
            trace = None
        if trace is not None and len(trace.data.spans) >= spans:
            return trace
        if time.monotonic() > deadline:
            have = len(trace.data.spans) if trace is not None else "no"
            raise AssertionError(f"MLflow has {have} spans of the trace after 60 s")
        time.sleep(0.5)  # polling MLflow's API: the deadline above bounds it


@pytest.mark.anyio
async def test_a_flow_on_two_redis_workers_is_one_trace_in_mlflow(
    mlflow_url: str,
    redis_url: str,
    workers: Workers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mlflow = require_mlflow()
    import penguiflow_otel

    runtime = f"{redis_url}?flow_name=mlflow-{uuid.uuid4().hex[:10]}"
    first = workers.start(runtime, "penguiflow-worker-1")
    second = workers.start(runtime, "penguiflow-worker-2")

    for name, value in _otel_env(mlflow_url, "penguiflow-client").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PENGUIFLOW_STRICT_PLUGINS", "1")
    reset_hooks(load_hooks(PluginSettings.from_env()))  # the installed plugin, as users get it
    try:
        flow = build(runtime=runtime)
        flow.run()
        try:
            # The client's own unit of work (a web request, say): every job joins its trace.
            async with observe("app", "request", tenant="acme") as request:
                for n in range(JOBS):
                    job = Job(n=n, delay=0.05)
                    await flow.emit(Message(payload=job, headers=Headers(tenant="acme")))
                with anyio.fail_after(60):
                    answers = [await flow.fetch() for _ in range(JOBS)]
        finally:
            await flow.stop()
    finally:
        penguiflow_otel.shutdown()  # flushes the client's span to MLflow
        reset_hooks()
    assert request.span is not None
    trace_id = request.span.trace_id
    assert all(answer.meta[TRACEPARENT].split("-")[1] == trace_id for answer in answers)

    # SIGTERM, as an orchestrator stops a worker: it finishes what it holds, and its spans
    # (held back by the batch processor: see the `workers` fixture) go out as it exits.
    codes = workers.stop()
    assert codes == [0, 0], workers.logs()

    trace = _read_trace(mlflow, mlflow_url, trace_id, 1 + 2 * JOBS)
    spans = trace.data.spans
    assert len(spans) == 1 + 2 * JOBS, sorted(span.name for span in spans)
    roots = [span for span in spans if span.parent_id is None]
    assert [root.name for root in roots] == ["app.request"]
    root = roots[0]
    assert root.span_id == request.span.span_id
    works = [span for span in spans if span.name == "node work"]
    finishes = [span for span in spans if span.name == "node finish"]
    assert len(works) == JOBS and len(finishes) == JOBS
    # Every job's first node ran under the client's span, in a worker process...
    assert {span.parent_id for span in works} == {root.span_id}
    # ...and its second under the first, whichever worker the Redis stream delivered it to.
    assert sorted(span.parent_id for span in finishes) == sorted(span.span_id for span in works)
    assert {span.attributes["penguiflow.trace_id"] for span in works} == {
        span.attributes["penguiflow.trace_id"] for span in finishes
    }
    # The redis runtime names the worker ("host:pid:suffix") on its node events: the spans
    # came from both worker processes.
    assert {_worker_pid(span) for span in works + finishes} == {first.pid, second.pid}


def _worker_pid(span: Any) -> int:
    return int(span.attributes["penguiflow.extra.worker"].rsplit(":", 2)[1])
