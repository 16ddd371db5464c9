"""`penguiflow a2a serve`: loading TARGET, the card and token options, and a real server process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import click
import httpx
import penguiflow_a2a._command as command
import pytest
from click.testing import CliRunner
from penguiflow_a2a._command import _build, _read_card, _tokens, a2a
from penguiflow_a2a._wire import AgentCard

from penguiflow import PenguiFlow

HERE = Path(__file__).parent
CARD = {"name": "Shouter", "description": "Upper-cases text.", "version": "1.0.0"}


def test_public_api() -> None:
    assert command.__all__ == ["a2a", "serve"]
    assert isinstance(command.a2a, click.Group)
    assert command.a2a.commands["serve"] is command.serve


@pytest.fixture(autouse=True)
def _targets_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))


# --- TARGET ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_colon", "must read 'module:attribute'"),
        ("mod:", "must read 'module:attribute'"),
        ("no_such_module_xyz:build", "cannot import 'no_such_module_xyz'"),
        ("a2a_serve_targets:missing", "has no attribute 'missing'"),
    ],
)
async def test_bad_targets_are_usage_errors(target: str, message: str) -> None:
    with pytest.raises(click.UsageError, match=message):
        await _build(target)


@pytest.mark.parametrize("name", ["build_flow", "build_flow_async"])
async def test_factories_sync_and_async_give_a_flow(name: str) -> None:
    value, kind, card, made = await _build(f"a2a_serve_targets:{name}")
    assert isinstance(value, PenguiFlow) and kind == "flow"
    assert card is None and made


async def test_a_factory_may_return_the_card_and_a_ready_app_is_served_as_is() -> None:
    _, kind, card, _ = await _build("a2a_serve_targets:build_flow_with_card")
    assert kind == "flow" and card == CARD
    _, kind, _, _ = await _build("a2a_serve_targets:build_app")
    assert kind == "app"


@pytest.mark.parametrize("name", ["build_nothing", "NOT_CALLABLE"])
async def test_a_target_of_another_kind_is_refused(name: str) -> None:
    with pytest.raises(click.UsageError, match=r"must be \(or return\) a flow"):
        await _build(f"a2a_serve_targets:{name}")


# --- the card --------------------------------------------------------------------------


def test_card_from_a_file_wins_over_the_code(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    path.write_text(json.dumps({**CARD, "name": "From file"}))
    card = _read_card(str(path), CARD)
    assert isinstance(card, AgentCard) and card.name == "From file"
    assert _read_card(None, CARD).name == "Shouter"
    assert _read_card(None, None) is None


def test_bad_cards_name_the_source_and_the_fields(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(click.UsageError, match=r"cannot read the agent card .*broken\.json"):
        _read_card(str(broken), None)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"name": "x"}))
    with pytest.raises(click.UsageError) as caught:
        _read_card(str(partial), None)
    assert "partial.json is not a valid A2A agent card" in str(caught.value)
    assert "description: Field required" in str(caught.value)
    with pytest.raises(click.UsageError, match="returned a int as its agent card"):
        _read_card(None, 42)


# --- tokens ----------------------------------------------------------------------------


def test_tokens_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(command.TOKENS_ENV, raising=False)
    path = tmp_path / "tokens"
    path.write_text("# token tenant\ns3cret acme\n\nother  globex  # second\n")
    assert _tokens(str(path), False) == {"s3cret": "acme", "other": "globex"}
    assert _tokens(None, True) is None
    assert _tokens(None, False) == {}  # the server generates one
    monkeypatch.setenv(command.TOKENS_ENV, "a acme; b globex")
    assert _tokens(None, False) == {"a": "acme", "b": "globex"}


def test_bad_token_options(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("ok acme\nleaked-secret\n")
    with pytest.raises(click.UsageError) as caught:
        _tokens(str(path), False)
    assert "entry 2" in str(caught.value) and "leaked-secret" not in str(caught.value)
    with pytest.raises(click.UsageError, match="contradict"):
        _tokens(str(path), True)
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(click.UsageError, match="holds no tokens"):
        _tokens(str(empty), False)


# --- the command -----------------------------------------------------------------------


# The socket (TCP_NODELAY, a port in use) is penguiflow-serve's: tested there.


def test_usage_errors_exit_2_before_binding() -> None:
    result = CliRunner().invoke(a2a, ["serve", "nonsense", "--port", "0", "--no-auth"])
    assert result.exit_code == 2
    assert "must read 'module:attribute'" in result.output


def test_the_kernel_command_line_finds_the_group() -> None:
    from penguiflow.cli import cli

    result = CliRunner().invoke(cli, ["a2a", "serve", "--help"])
    assert result.exit_code == 0, result.output
    assert "--card FILE" in result.output and "127.0.0.1" in result.output


@asynccontextmanager
async def serving(*args: str) -> AsyncIterator[tuple[str, list[str]]]:
    """Run `penguiflow a2a serve ARGS --port 0` in a subprocess; yield its URL and stdout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from penguiflow.cli import main; main()",
        "a2a",
        "serve",
        *args,
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(HERE),
    )
    assert process.stdout is not None and process.stderr is not None
    lines: list[str] = []
    try:
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            if not line:
                stderr = (await process.stderr.read()).decode()
                raise AssertionError(f"the server exited before serving: {stderr}")
            lines.append(line.strip())
            if line.startswith("penguiflow a2a serve: serving "):
                break
        url = lines[-1].rsplit(" ", 1)[1]
        # The URL line comes first; a token line, if any, follows at once.
        if "--no-auth" not in args and "build_app" not in " ".join(args):
            lines.append((await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip())
        yield url, lines
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
        assert code == 0, (await process.stderr.read()).decode()


async def test_serves_a_ready_app_on_a_free_port_and_stops_on_sigterm() -> None:
    async with serving("a2a_serve_targets:build_app") as (url, _):
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(f"{url}/ping")
        assert response.json() == {"pong": True}


async def test_a_broken_factory_is_reported_with_where_it_failed() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from penguiflow.cli import main; main()",
        "a2a",
        "serve",
        "a2a_serve_targets:build_broken",
        "--port",
        "0",
        "--no-auth",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(HERE),
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    text = stderr.decode()
    assert "building 'a2a_serve_targets:build_broken' failed: RuntimeError: no database" in text
    assert "a2a_serve_targets.py:" in text


def _send_body(text: str, **configuration: object) -> dict[str, object]:
    message = {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": text}]}
    body: dict[str, object] = {"message": message}
    if configuration:
        body["configuration"] = configuration
    return body


async def test_serves_a_flow_with_a_generated_token_and_the_default_card() -> None:
    async with serving("a2a_serve_targets:build_flow") as (url, lines):
        token = lines[-1].split()[1]
        assert lines[-1].startswith("token: ")
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as client:
            card = (await client.get("/.well-known/agent-card.json")).json()
            assert card["name"] == "build_flow"
            assert card["supportedInterfaces"][0]["url"] == url
            refused = await client.post("/message:send", json=_send_body("hi"))
            assert refused.status_code == 401
            headers = {"Authorization": f"Bearer {token}", "A2A-Version": "1.0"}
            answer = await client.post("/message:send", json=_send_body("hi"), headers=headers)
            assert answer.status_code == 200, answer.text
            task = answer.json()["task"]
            assert task["status"]["state"] == "TASK_STATE_COMPLETED"
            assert "HI" in json.dumps(task["artifacts"])
            # The server's push sender refuses loopback receivers unless the option allows.
            hook = {"taskPushNotificationConfig": {"url": "http://127.0.0.1:9/hook"}}
            refused = await client.post(
                "/message:send", json=_send_body("x", **hook), headers=headers
            )
            assert refused.status_code == 400
            assert "--allow-private-push" in refused.text


async def test_serves_the_card_from_a_file_without_auth(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    path.write_text(json.dumps({**CARD, "name": "From file"}))
    async with (
        serving("a2a_serve_targets:build_flow_with_card", "--card", str(path), "--no-auth") as (
            url,
            _,
        ),
        httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as client,
    ):
        card = (await client.get("/.well-known/agent-card.json")).json()
        assert card["name"] == "From file"
        answer = await client.post("/message:send", json=_send_body("ok"))
        assert answer.json()["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
