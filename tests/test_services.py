"""The scripts that start the test servers (scripts/services/), run as the test command runs
them, from a copy of the checkout inside a 0700 folder (as a clone under /root or `mktemp -d`
is): free ports, nothing the server needs inside the checkout, and `stop` stopping only what
`start` started.

They need Debian's redis-server and PostgreSQL; without them the tests skip (the scripts
install them only as root), except under CI, where a missing package is a broken setup.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def require_packages(*binaries: str) -> None:
    missing = [b for b in binaries if not Path(b).exists() and shutil.which(b) is None]
    if missing:
        message = (
            f"{', '.join(missing)} not installed: install Debian's redis-server and postgresql "
            "(scripts/services/*.sh start does it when run as root)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else Path("/usr/lib/postgresql/missing/bin")


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    """The service scripts, copied into `<0700 folder>/checkout/`."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)  # whatever the umask
    copy = private / "checkout"
    shutil.copytree(ROOT / "scripts" / "services", copy / "scripts" / "services")
    yield copy
    for name in ("redis", "postgres"):  # whatever a failed test left running
        script(copy, name, "stop", check=False)


def script(
    checkout: Path, name: str, command: str, check: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PENGUIFLOW_SERVICES_DIR", "PENGUIFLOW_REDIS_PORT", "PENGUIFLOW_POSTGRES_PORT",
                     "PENGUIFLOW_PG_PORT")
    }  # fmt: skip
    environ.update(env)
    done = subprocess.run(
        ["bash", str(checkout / "scripts" / "services" / f"{name}.sh"), command],
        capture_output=True, text=True, env=environ, timeout=60, check=False,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, f"{name}.sh {command}: {done.stderr}"
    return done


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def redis_ping(port: int) -> bool:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "ping"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    return done.stdout.strip() == "PONG"


def test_postgres_starts_from_a_checkout_its_server_user_cannot_enter(checkout: Path) -> None:
    """Regression: the cluster lived in the checkout's .services/, and `initdb` (run as user
    postgres) failed with "could not access directory ...: Permission denied"."""
    require_packages(str(postgres_bin() / "initdb"), str(postgres_bin() / "psql"))
    script(checkout, "postgres", "start")
    url = script(checkout, "postgres", "url").stdout.strip()
    assert url.startswith("postgresql://postgres@127.0.0.1:") and url.endswith("/penguiflow_test")
    port = port_of(url)
    # A real connection over TCP, to the database the tests use.
    done = subprocess.run(
        [str(postgres_bin() / "psql"), url, "-tAc", "SELECT current_database()"],
        capture_output=True, text=True, cwd="/", timeout=30, check=False,
    )  # fmt: skip
    assert done.stdout.strip() == "penguiflow_test", done.stderr
    cluster = Path((checkout / ".services" / "postgres" / "cluster").read_text().strip())
    assert cluster.is_dir() and not cluster.is_relative_to(checkout)
    # Starting twice keeps the running server.
    assert "already running" in script(checkout, "postgres", "start").stderr
    assert port_of(script(checkout, "postgres", "url").stdout.strip()) == port

    script(checkout, "postgres", "stop")
    assert not accepts(port) and not cluster.exists()
    assert script(checkout, "postgres", "url", check=False).returncode == 1
    script(checkout, "postgres", "stop")  # idempotent


def test_redis_starts_on_a_free_port_and_stops(checkout: Path) -> None:
    require_packages("redis-server", "redis-cli")
    script(checkout, "redis", "start")
    url = script(checkout, "redis", "url").stdout.strip()
    port = port_of(url)
    assert url == f"redis://127.0.0.1:{port}/0" and redis_ping(port)
    assert "already running" in script(checkout, "redis", "start").stderr
    script(checkout, "redis", "stop")
    assert not accepts(port)
    script(checkout, "redis", "stop")  # idempotent


@pytest.fixture
def foreign_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server these scripts did not start (someone's own, on a port of theirs)."""
    require_packages("redis-server", "redis-cli")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not redis_ping(port):
            assert proc.poll() is None and time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_server_the_scripts_did_not_start_is_never_reused_or_stopped(
    checkout: Path, foreign_redis: int
) -> None:
    """Regression: `start` on a port where a server already answered reused it, and `stop`
    shut down whatever Redis listened on the port."""
    taken = script(
        checkout, "redis", "start", check=False, PENGUIFLOW_REDIS_PORT=str(foreign_redis)
    )
    assert taken.returncode == 1
    assert f"port {foreign_redis} (PENGUIFLOW_REDIS_PORT) is already in use" in taken.stderr
    script(checkout, "redis", "stop", PENGUIFLOW_REDIS_PORT=str(foreign_redis))
    assert redis_ping(foreign_redis)
    # Its own server, on a free port, stops alone.
    script(checkout, "redis", "start")
    own = port_of(script(checkout, "redis", "url").stdout.strip())
    assert own != foreign_redis
    script(checkout, "redis", "stop")
    assert not accepts(own) and redis_ping(foreign_redis)


def test_each_services_folder_stops_only_its_own_servers(checkout: Path, tmp_path: Path) -> None:
    """scripts/test.sh gives each run a folder of its own (PENGUIFLOW_SERVICES_DIR): two runs
    side by side each stop the server they started, not the other's."""
    require_packages("redis-server", "redis-cli")
    first, second = str(tmp_path / "run-1"), str(tmp_path / "run-2")
    script(checkout, "redis", "start", PENGUIFLOW_SERVICES_DIR=first)
    try:
        script(checkout, "redis", "start", PENGUIFLOW_SERVICES_DIR=second)
        one = port_of(script(checkout, "redis", "url", PENGUIFLOW_SERVICES_DIR=first).stdout)
        two = port_of(script(checkout, "redis", "url", PENGUIFLOW_SERVICES_DIR=second).stdout)
        assert one != two
        script(checkout, "redis", "stop", PENGUIFLOW_SERVICES_DIR=second)
        assert redis_ping(one) and not accepts(two)
    finally:
        script(checkout, "redis", "stop", PENGUIFLOW_SERVICES_DIR=first)
        script(checkout, "redis", "stop", PENGUIFLOW_SERVICES_DIR=second)


# `.venv/bin/python` for a copy of scripts/test.sh: pip does nothing, and "tox" reports the
# servers it was given and whether they answer, then exits with $PF_STUB_STATUS.
STUB_PYTHON = """#!/usr/bin/env bash
case "$*" in
    "-m tox"*)
        redis_port="${PENGUIFLOW_REDIS_URL##*:}"
        redis_port="${redis_port%%/*}"
        {
            echo "redis=$PENGUIFLOW_REDIS_URL"
            echo "postgres=$PENGUIFLOW_POSTGRES_URL"
            echo "redis_ping=$(redis-cli -h 127.0.0.1 -p "$redis_port" ping)"
            echo "postgres_db=$(cd / && "$PF_PSQL" "$PENGUIFLOW_POSTGRES_URL" -tAc \\
                'SELECT current_database()')"
        } >"$PF_STUB_OUT"
        exit "${PF_STUB_STATUS:-0}"
        ;;
esac
exit 0
"""


def test_the_test_command_uses_free_ports_and_stops_only_its_own_servers(
    tmp_path: Path, foreign_redis: int
) -> None:
    """Regression: scripts/test.sh used ports 6390 and 5439, reused whatever answered there,
    and shut down a Redis it had not started when it exited."""
    require_packages(str(postgres_bin() / "initdb"), str(postgres_bin() / "psql"))
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    checkout = private / "checkout"
    shutil.copytree(
        ROOT / "scripts", checkout / "scripts", ignore=shutil.ignore_patterns("__pycache__")
    )
    for folder in ("core", "plugins", "contrib"):
        (checkout / folder).mkdir()
    stub = checkout / ".venv" / "bin" / "python"
    stub.parent.mkdir(parents=True)
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    out = tmp_path / "tox-saw.txt"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PENGUIFLOW_", "PF_"))}
    environ.update(PF_STUB_OUT=str(out), PF_STUB_STATUS="3", PF_PSQL=str(postgres_bin() / "psql"))
    done = subprocess.run(
        ["bash", str(checkout / "scripts" / "test.sh")],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip
    # tox's exit status is the command's; the servers were up while it ran.
    assert done.returncode == 3, done.stderr
    saw = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert saw["redis_ping"] == "PONG" and saw["postgres_db"] == "penguiflow_test", saw
    redis_port, postgres_port = port_of(saw["redis"]), port_of(saw["postgres"])
    assert foreign_redis not in (redis_port, postgres_port)
    assert {redis_port, postgres_port}.isdisjoint({6390, 5439})  # no fixed ports
    # Everything it started is stopped and its run folder removed; the other server lives on.
    assert not accepts(redis_port) and not accepts(postgres_port)
    assert list((checkout / ".services").iterdir()) == []
    assert redis_ping(foreign_redis)
