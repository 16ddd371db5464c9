"""benchmarks/redis_runtime.py runs end to end at its tiny size (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "redis_runtime.py"


def test_redis_runtime_benchmark_prints_one_line_per_worker_count(
    redis_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "redis.jsonl"
    completed = subprocess.run(
        [
            *(sys.executable, str(BENCHMARK), "--tiny", "--redis", redis_url),
            *("--json-out", str(out), "--log-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["workers"] for r in records] == [1, 2]
    for record in records:
        assert record["workload"] == "redis_chain" and record["n"] == 100
        assert record["seconds"] > 0 and record["local_seconds"] > 0
        assert set(record["cpu_s"]) == {"client", "workers", "redis_server"}
