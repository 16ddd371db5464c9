"""The benchmark suite runs end to end at tiny sizes and prints well-formed JSON lines.

No timing is asserted here: speed is reported by `benchmarks/run.py`, never tested.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    "chain",
    "chain_validated",
    "chain_sink",
    "roundtrip",
    "fanout_join",
    "controller",
    "memory_unbounded",
    "memory_bounded",
}


def test_every_workload_prints_one_json_line(tmp_path: Path) -> None:
    out_file = tmp_path / "bench.jsonl"
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--tiny",
            "--json-out",
            str(out_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    records = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    assert {r["workload"] for r in records} == EXPECTED
    for record in records:
        assert {"n", "seconds", "baseline_seconds", "ratio_to_bare", "python", "penguiflow"} <= set(
            record
        )
        assert record["seconds"] > 0 and record["baseline_seconds"] > 0
    assert out_file.read_text().count("\n") == len(records)
    chain = next(r for r in records if r["workload"] == "chain")
    assert {"per_hop_us", "overhead_per_hop_us", "bare_per_hop_us"} <= set(chain)
