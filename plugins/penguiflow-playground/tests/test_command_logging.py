"""`penguiflow dev --log-format`: the same `--log-level`/`--log-format` pair as the other
serving commands, wired to the same process-wide logging, in a real process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx

HERE = Path(__file__).parent


def _dev(*args: str) -> list[str]:
    return [sys.executable, "-c", "from penguiflow.cli import main; main()", "dev", *args]


def test_json_log_format_puts_every_record_on_one_json_line() -> None:
    process = subprocess.Popen(
        _dev(
            "playground_agents:build_flow",
            "--port",
            "0",
            "--state-store",
            "memory://",
            "--log-level",
            "INFO",
            "--log-format",
            "JSON",
        ),
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("penguiflow dev: serving flow"), first
        url = first.rsplit(" at ", 1)[1].strip()
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/readyz").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    records = [
        json.loads(line)  # a line that is not JSON fails here, naming itself
        for line in stderr.splitlines()
        if line and line != "penguiflow dev stopped"  # the command's own status line
    ]
    loggers = {record["logger"] for record in records}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers, records
    assert any(
        "/readyz" in record["message"] for record in records if record["logger"] == "uvicorn.access"
    )


def test_an_unknown_log_format_is_refused_with_the_choices() -> None:
    result = subprocess.run(
        _dev("playground_agents:build_flow", "--log-format", "xml"),
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Invalid value for '--log-format'" in result.stderr, result.stderr
    assert "'text'" in result.stderr and "'json'" in result.stderr
