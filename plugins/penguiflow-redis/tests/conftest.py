"""Tests run against a real redis-server (scripts/services/redis.sh start); the cluster and
Sentinel tests start their own servers through scripts/services/redis-cluster.sh and
redis-sentinel.sh, once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from workers import RedisServer

from penguiflow.testing import require_server


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_server(
        os.environ.get("PENGUIFLOW_REDIS_URL", "redis://127.0.0.1:6390/0"),
        default_port=6379,
        how_to_start="start one with `bash scripts/services/redis.sh start` "
        "or set PENGUIFLOW_REDIS_URL",
    )


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (127.0.0.1, a free port), stopped after it: for tests
    that count its commands or flush it."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


# -- a Redis Cluster and a Sentinel set, started once per session by the service scripts ----

_SCRIPTS = Path(__file__).resolve().parents[3] / "scripts" / "services"


@dataclass(frozen=True)
class ServiceSet:
    """Servers a service script started for this session, in a services folder of its own
    (so the script's `stop` never touches anyone else's servers)."""

    script: Path
    folder: Path
    url: str
    #: more environment for the script (`PENGUIFLOW_REDIS_CLUSTER_REPLICAS`)
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 120.0) -> str:
        """Run the script with `args` (`restart-master 1`, `kill-primary`); its stdout."""
        done = subprocess.run(
            ["bash", str(self.script), *args],
            env={**os.environ, **self.env, "PENGUIFLOW_SERVICES_DIR": str(self.folder)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.script.name} {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()


def _start_services(
    name: str, folder: Path, env: dict[str, str] | None = None
) -> Iterator[ServiceSet]:
    script = _SCRIPTS / name
    missing = [b for b in ("redis-server", "redis-cli") if shutil.which(b) is None]
    why = ""
    if missing:
        why = f"{' and '.join(missing)} not installed (scripts/services/redis.sh start installs it)"
    elif not script.is_file():
        why = f"{script} is missing (run the tests from a checkout of the repository)"
    if why:
        message = f"cannot start the servers of scripts/services/{name}: {why}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    services = ServiceSet(script, folder, "", env or {})
    try:
        services.run("start")
        services = ServiceSet(script, folder, services.run("url"), env or {})
        yield services
    finally:
        services.run("stop")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceSet]:
    """Three cluster masters on 127.0.0.1 (scripts/services/redis-cluster.sh)."""
    yield from _start_services("redis-cluster.sh", tmp_path_factory.mktemp("cluster-services"))


@pytest.fixture(scope="session")
def redis_cluster_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceSet]:
    """Three cluster masters, each with a replica (redis-cluster.sh with
    PENGUIFLOW_REDIS_CLUSTER_REPLICAS=1): six servers on 127.0.0.1."""
    yield from _start_services(
        "redis-cluster.sh",
        tmp_path_factory.mktemp("cluster-replica-services"),
        {"PENGUIFLOW_REDIS_CLUSTER_REPLICAS": "1"},
    )


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceSet]:
    """A primary, a replica and three Sentinels on 127.0.0.1 (redis-sentinel.sh)."""
    yield from _start_services("redis-sentinel.sh", tmp_path_factory.mktemp("sentinel-services"))
