"""The README's first command: the demo runs on the embedded defaults and prints each part."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_every_part() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "joined: docs on 'penguin diets'" in out
    assert "routed: billing handled 'invoice is wrong'" in out
    assert "streamed: penguins huddle to keep warm" in out
    assert "final: answered after 3 hops" in out
    assert out.rstrip().endswith("demo finished")


def test_demo_records_events_in_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--state-store", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert f"events of the last trace in {url}" in completed.stdout
    assert (tmp_path / "demo.db").exists()
