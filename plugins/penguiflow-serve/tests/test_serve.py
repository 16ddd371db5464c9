"""penguiflow-serve: targets (object, sync and async factories, every bad input), the socket,
and an app served over real HTTP on 127.0.0.1 that stops cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import penguiflow_serve
import pytest
from penguiflow_serve import bind_socket, display_url, load_target, resolve_target


def test_public_names() -> None:
    assert sorted(penguiflow_serve.__all__) == [
        "LOG_FORMATS",
        "LOG_LEVELS",
        "TraceContextMiddleware",
        "bind_socket",
        "configure_logging",
        "display_url",
        "health_routes",
        "load_target",
        "resolve_target",
        "serve_app",
    ]


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder holding the user's module, as the current directory (how commands are run)."""
    (tmp_path / "served_app.py").write_text(
        textwrap.dedent(
            """
            import asyncio

            class Thing:
                pass

            thing = Thing()

            def build():
                return Thing()

            async def build_async():
                await asyncio.sleep(0)
                return Thing()

            def broken():
                raise RuntimeError("the database is down")

            class nested:
                value = thing
            """
        )
    )
    (tmp_path / "needs_missing.py").write_text("import no_such_module_anywhere\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    for name in ("served_app", "needs_missing"):
        sys.modules.pop(name, None)


def is_thing(value: object) -> bool:
    return type(value).__name__ == "Thing"


def test_loads_module_attribute_from_the_current_directory(module_dir: Path) -> None:
    assert is_thing(load_target("served_app:thing"))
    assert is_thing(load_target("served_app:nested.value"))


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("served_app", "TARGET must read 'module:attribute' (e.g. pkg:make)"),
        (":thing", "TARGET must read 'module:attribute'"),
        ("served_app:", "TARGET must read 'module:attribute'"),
        ("no_such_app:thing", "cannot import 'no_such_app': run from the folder that holds it"),
        ("served_app:missing", "module 'served_app' has no attribute 'missing'"),
    ],
)
def test_bad_targets_are_usage_errors_saying_what_to_fix(
    module_dir: Path, target: str, says: str
) -> None:
    with pytest.raises(click.UsageError) as caught:
        load_target(target, example="pkg:make")
    assert says in caught.value.message


def test_a_module_missing_inside_the_users_module_is_not_taken_for_a_typo(
    module_dir: Path,
) -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_module_anywhere"):
        load_target("needs_missing:anything")


def test_factories_are_called_and_marked_made(module_dir: Path) -> None:
    async def scenario() -> None:
        value, made = await resolve_target("served_app:thing", is_served=is_thing)
        assert is_thing(value) and not made
        value, made = await resolve_target("served_app:build", is_served=is_thing)
        assert is_thing(value) and made
        value, made = await resolve_target("served_app:build_async", is_served=is_thing)
        assert is_thing(value) and made

    asyncio.run(scenario())


def test_a_failing_factory_names_the_target_the_error_and_where(module_dir: Path) -> None:
    async def scenario() -> None:
        await resolve_target("served_app:broken", is_served=is_thing)

    with pytest.raises(click.UsageError) as caught:
        asyncio.run(scenario())
    message = caught.value.message
    assert "building 'served_app:broken' failed: RuntimeError: the database is down" in message
    assert "served_app.py:" in message


def test_bind_socket_picks_a_free_port_and_names_a_taken_one() -> None:
    sock = bind_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port > 0
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        # Listening already: a client connecting before the server starts is not refused.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        with pytest.raises(click.UsageError) as caught:
            bind_socket("127.0.0.1", port)
        assert f"cannot bind 127.0.0.1:{port}" in caught.value.message
        assert "--port" in caught.value.message
    finally:
        sock.close()


def test_display_url_brackets_ipv6() -> None:
    assert display_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert display_url("::1", 8000) == "http://[::1]:8000"


SERVER = """
import asyncio, sys
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from penguiflow_serve import bind_socket, display_url, serve_app

async def hello(request):
    return PlainTextResponse("hello")

async def main():
    sock = bind_socket("127.0.0.1", 0)
    print(display_url("127.0.0.1", sock.getsockname()[1]), flush=True)
    await serve_app(Starlette(routes=[Route("/", hello)]), sock)
    print("stopped cleanly", flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serves_over_http_until_a_signal_then_returns(signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(url + "/", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert answer.status_code == 200 and answer.text == "hello"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in out
