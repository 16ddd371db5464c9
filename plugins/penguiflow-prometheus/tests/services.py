"""Debian's Prometheus for the tests, through scripts/services/prometheus.sh (which installs
it when missing, as root). Without it a test skips, except in CI (`CI` set) where it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "services" / "prometheus.sh"
ALERTS = Path(__file__).resolve().parents[1] / "alerts"


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def ensure_prometheus() -> None:
    """Make sure `prometheus` and `promtool` are on PATH (installing them as root)."""
    if shutil.which("prometheus") and shutil.which("promtool"):
        return
    done = subprocess.run(
        ["bash", str(SCRIPT), "install"], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        _unavailable(f"Debian's prometheus package is not installed: {done.stderr.strip()}")


class PrometheusServer:
    """A Prometheus server started by the script with a configuration the test writes."""

    def __init__(self, services_dir: Path) -> None:
        self.env = {**os.environ, "PENGUIFLOW_SERVICES_DIR": str(services_dir)}
        self.url = ""

    def start(self, config: Path) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), "start", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
        )
        if done.returncode != 0:
            _unavailable(f"prometheus did not start: {done.stderr.strip()}")
        url = subprocess.run(
            ["bash", str(SCRIPT), "url"], capture_output=True, text=True, env=self.env
        )
        self.url = url.stdout.strip()
        return self.url

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, env=self.env)
