"""`penguiflow serve-session` in a real process, and the kernel's `penguiflow.commands`
entry-point group that brings it to the `penguiflow` command line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import httpx
import pytest
from _server_support import SseReader

TESTS = Path(__file__).parent
PLUGIN = TESTS.parent

_APP = """
from _scripted import ScriptedClient, action, answer, catalog
from penguiflow_planner import ReactPlanner


def build_planner():
    def rule(text):
        if "notes on penguins" in text:
            return answer("Penguins: notes on penguins")
        return action("research", {"topic": "penguins"})

    return ReactPlanner(llm_client=ScriptedClient([rule]), catalog=catalog(), max_iters=4)


not_a_planner = 42
"""


def _env(*paths: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")])
    env.pop("PENGUIFLOW_SESSION_TOKENS", None)
    return env


def _serve_argv(*args: str) -> list[str]:
    # The command object itself: the entry point is only registered once the package is
    # (re)installed, which these tests must not depend on.
    code = "from penguiflow_sessions.server._command import serve_session; serve_session()"
    return [sys.executable, "-c", code, *args]


def test_the_entry_point_is_declared() -> None:
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())
    commands = project["project"]["entry-points"]["penguiflow.commands"]
    assert commands == {"serve-session": "penguiflow_sessions.server._command:serve_session"}


async def test_serving_a_planner_factory_gives_a_working_chat_server(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(_APP)
    process = subprocess.Popen(
        _serve_argv("myapp:build_planner", "--port", "0"),
        cwd=tmp_path,
        env=_env(tmp_path, TESTS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        second = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 10)
        assert first.startswith("penguiflow serve-session: serving http://127.0.0.1:"), first
        base = first.rsplit(" ", 1)[1].strip()
        assert second.startswith("token: ")
        headers = {"Authorization": f"Bearer {second.split()[1]}"}
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            await _eventually_healthy(client)
            created = await client.post("/sessions", headers=headers, json={"session_id": "c"})
            assert created.status_code == 201
            async with client.stream("GET", "/sessions/c/events", headers=headers) as stream:
                reader = SseReader(stream)
                await reader.until_comment("subscribed")
                started = await client.post(
                    "/sessions/c/messages", headers=headers, json={"query": "penguins?"}
                )
                assert started.status_code == 202, started.text
                task_id = started.json()["task_id"]
                kinds = []
                while True:
                    event = await reader.next_event()
                    assert event.data["task_id"] == task_id
                    kinds.append(event.data["update_type"])
                    status = str((event.data["content"] or {}).get("status", "")).upper()
                    if event.data["update_type"] == "STATUS_CHANGE" and status in (
                        "COMPLETE",
                        "FAILED",
                    ):
                        break
            assert status == "COMPLETE", kinds
            assert "TOOL_CALL" in kinds
            task = (await client.get(f"/sessions/c/tasks/{task_id}", headers=headers)).json()
            assert "Penguins" in str(task["result"])
            unauthenticated = await client.get("/sessions/c/tasks")
            assert unauthenticated.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


async def _eventually_healthy(client: httpx.AsyncClient) -> None:
    for _ in range(200):
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise AssertionError("the server never answered /healthz")


def test_a_bad_target_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(_APP)
    for target, message in (
        ("myapp", "module:attribute"),
        ("nosuchmodule:x", "cannot import"),
        ("myapp:missing", "no attribute 'missing'"),
        ("myapp:not_a_planner", "must be (or return) a ReactPlanner"),
    ):
        result = subprocess.run(
            _serve_argv(target, "--port", "0"),
            cwd=tmp_path,
            env=_env(tmp_path, TESTS),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, (target, result.stderr)
        assert message in result.stderr, (target, result.stderr)


def _fake_distribution(root: Path) -> None:
    """A distribution on PYTHONPATH that contributes four `penguiflow.commands` entries."""
    info = root / "fakecmd-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fakecmd\nVersion: 0.1\nRequires-Dist: penguiflow>=4.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[penguiflow.commands]\n"
        "hello-plugin = fakecmd_mod:hello\n"
        "broken-plugin = fakecmd_broken:command\n"
        "not-a-command = fakecmd_mod:not_a_command\n"
        "worker = fakecmd_mod:hello\n"
    )
    (root / "fakecmd_mod.py").write_text(
        textwrap.dedent(
            """
            import click

            @click.command()
            @click.option("--name", default="world")
            def hello(name):
                \"\"\"Say hello from a plugin.\"\"\"
                click.echo(f"hello {name} from a plugin")

            not_a_command = 42
            """
        )
    )
    (root / "fakecmd_broken.py").write_text("raise RuntimeError('boom at import')\n")


def _penguiflow(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "penguiflow.cli", *args],
        env={**_env(root), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_plugin_commands_load_lazily_and_failures_stay_contained(tmp_path: Path) -> None:
    _fake_distribution(tmp_path)
    listing = _penguiflow(tmp_path, "--help")
    assert listing.returncode == 0, listing.stderr
    # The listing reads metadata only: each plugin command names its distribution, and the
    # broken one is listed like the others (it fails when run, as below).
    assert "hello-plugin   From the plugin fakecmd 0.1 (see its --help)." in listing.stdout
    assert "Say hello from a plugin" not in listing.stdout
    assert "broken-plugin" in listing.stdout and "boom" not in listing.stderr
    described = _penguiflow(tmp_path, "hello-plugin", "--help")
    assert described.returncode == 0 and "Say hello from a plugin" in described.stdout

    hello = _penguiflow(tmp_path, "hello-plugin", "--name", "Ada")
    assert hello.returncode == 0 and hello.stdout == "hello Ada from a plugin\n"

    broken = _penguiflow(tmp_path, "broken-plugin")
    assert broken.returncode == 1
    assert "fakecmd failed to load fakecmd_broken:command" in broken.stderr
    assert "boom at import" in broken.stderr

    wrong = _penguiflow(tmp_path, "not-a-command")
    assert wrong.returncode == 1 and "not a click command" in wrong.stderr

    # A built-in name always wins over a plugin's, and built-ins work beside a broken plugin.
    worker = _penguiflow(tmp_path, "worker", "--help")
    assert worker.returncode == 0 and "Run the nodes of the flow" in worker.stdout

    disabled = _penguiflow(
        tmp_path, "hello-plugin", PENGUIFLOW_DISABLE_PLUGINS="penguiflow.commands:hello-plugin"
    )
    assert disabled.returncode == 1 and "disabled" in disabled.stderr


_NO_IMPORTS = """
import sys
from penguiflow.cli import cli
try:
    cli(["--help"])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
heavy = ("starlette", "uvicorn", "penguiflow_sessions")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print("IMPORTED", heavy, file=sys.stderr)
"""


def test_penguiflow_help_lists_serve_session_without_importing_it() -> None:
    import importlib.metadata

    declared = [
        ep
        for ep in importlib.metadata.entry_points(group="penguiflow.commands")
        if ep.name == "serve-session"
    ]
    if not declared:
        pytest.skip("penguiflow-sessions is not installed (its entry point is not registered)")
    result = subprocess.run(
        [sys.executable, "-c", _NO_IMPORTS], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "serve-session  From the plugin penguiflow-sessions" in result.stdout
    assert "IMPORTED []" in result.stderr, result.stderr
    # Its own --help still loads it and describes it completely.
    full = subprocess.run(
        [sys.executable, "-m", "penguiflow.cli", "serve-session", "--help"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert full.returncode == 0, full.stderr
    assert "Serve sessions over HTTP, Server-Sent Events and WebSocket" in full.stdout
    assert "--port" in full.stdout
