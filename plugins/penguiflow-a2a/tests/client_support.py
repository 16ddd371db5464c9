"""Agents in other processes for the client's tests: start one, learn its port, stop it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).parent


@contextmanager
def agent_process(script: str, *args: str) -> Iterator[str]:
    """Runs `script` (a file next to this one, or `-m module`) which prints `PORT <n>` once it
    listens on 127.0.0.1; yields `http://127.0.0.1:<n>` and stops the process afterwards."""
    command = [
        sys.executable,
        *(["-m", script[3:]] if script.startswith("-m ") else [str(HERE / script)]),
        *args,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=HERE)
    try:
        assert process.stdout is not None
        # The child prints its port once its socket listens; EOF means it died first.
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            process.kill()
            raise RuntimeError(f"{command} did not start: printed {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
