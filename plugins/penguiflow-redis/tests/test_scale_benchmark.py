"""The checkout's benchmarks/redis_scale.py runs end to end at a tiny size and prints
well-formed JSON lines.

No timing is asserted: the benchmark reports throughput and CPU, it does not judge them. It
starts its own redis-server processes, so it needs Debian's redis-server and penguiflow-redis;
without them the test skips (except redis-server under CI, where a missing package is a
broken setup).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]  # the checkout: the benchmark runs from there
BENCHMARK = ROOT / "benchmarks" / "redis_scale.py"


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    if importlib.util.find_spec("penguiflow_redis") is None:
        pytest.skip("penguiflow-redis is not installed: pip install ./plugins/penguiflow-redis")
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def run(
    *args: str, log_dir: Path | None, benchmark: Path = BENCHMARK, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    logs = () if log_dir is None else ("--log-dir", str(log_dir))
    return subprocess.run(
        [sys.executable, str(benchmark), *args, *logs],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_one_json_line_per_worker_count(tmp_path: Path) -> None:
    done = run(
        *("--workers", "1,2", "--clients", "2", "--in-flight", "4", "--messages", "40"),
        "--json",
        log_dir=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [r["workers"] for r in records] == [1, 2]
    for record in records:
        assert record["workload"] == "redis_scale" and record["messages"] == 40
        assert record["clients"] == 2 and record["shards"] == 1
        assert record["seconds"] > 0 and record["msgs_per_s"] > 0
        assert set(record["cpu_us_per_hop"]) == {"workers", "clients", "servers"}
        assert len(record["cpu_s"]["servers"]) == 1
    assert records[0]["efficiency"] == 1.0
    # The table goes to stderr with --json, one row per worker count.
    rows = [line for line in done.stderr.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + 2  # header, rule, two counts


def test_shards_spread_the_flow_over_several_servers(tmp_path: Path) -> None:
    """`--shards 2`: two servers in one runtime URL, both doing work."""
    done = run(
        *("--workers", "1", "--shards", "2", "--in-flight", "4", "--messages", "20"),
        "--json",
        log_dir=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert record["shards"] == 2 and len(record["cpu_s"]["servers"]) == 2


def test_cluster_makes_the_servers_one_redis_cluster(tmp_path: Path) -> None:
    """`--shards 3 --cluster`: a real three-master Redis Cluster (`redis+cluster://`), every
    master doing work, and fewer masters refused with the reason."""
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed (Debian: apt-get install redis-tools)")
    done = run(
        *("--workers", "1", "--shards", "3", "--cluster", "--in-flight", "4", "--messages", "60"),
        "--json",
        log_dir=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert record["cluster"] is True and record["shards"] == 3
    # Every master ran emits and commits: the traces spread over the three shards.
    assert len(record["scripts_by_server"]) == 3 and min(record["scripts_by_server"]) > 0
    assert record["commits_per_msg"] == pytest.approx(1, abs=0.2)
    refused = run("--cluster", "--shards", "2", log_dir=tmp_path)
    assert refused.returncode == 2 and "--cluster needs --shards 3 or more" in refused.stderr


def test_chaining_commits_once_per_message_instead_of_once_per_hop(tmp_path: Path) -> None:
    """Counted, not timed: the servers' command statistics say how many commits a message
    cost, 10 (one per hop) unchained and 1 chained."""
    commits = {}
    for chain in ("off", "on"):
        done = run(
            *("--workers", "1", "--in-flight", "4", "--messages", "40", "--chain", chain),
            "--json",
            log_dir=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        (record,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        commits[chain] = record["commits_per_msg"]
        assert record["redis_commands_per_msg"] > record["commits_per_msg"]
    assert commits["off"] == pytest.approx(10, abs=0.5)
    assert commits["on"] == pytest.approx(1, abs=0.2)


def test_commit_every_sets_how_many_times_a_message_crosses_redis(tmp_path: Path) -> None:
    """`--commit-every 2`: a chained worker also commits after n1, n3, n5 and n7, so a
    message is committed 5 times (counted by the server), and the option is refused without
    chaining or past the chain's length."""
    done = run(
        *("--workers", "1", "--in-flight", "4", "--messages", "40", "--commit-every", "2"),
        "--json",
        log_dir=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert record["commit_every"] == 2
    assert record["commits_per_msg"] == pytest.approx(5, abs=0.3)
    assert record["redis_command_us_per_msg_by_name"]["evalsha"] > 0
    refused = run("--commit-every", "2", "--chain", "off", log_dir=tmp_path)
    assert refused.returncode == 2 and "needs chaining" in refused.stderr
    refused = run("--commit-every", "11", log_dir=tmp_path)
    assert refused.returncode == 2 and "--commit-every must be 1 to 10" in refused.stderr


def test_work_in_the_nodes_is_recorded_and_a_negative_amount_refused(tmp_path: Path) -> None:
    done = run(
        *("--workers", "1", "--in-flight", "4", "--messages", "20", "--node-us", "50"),
        "--json",
        log_dir=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert record["node_us"] == 50
    refused = run("--node-us", "-5", log_dir=tmp_path)
    assert refused.returncode == 2 and "--node-us must be 0 or more" in refused.stderr


def test_the_idle_benchmark_measures_a_quiet_worker(tmp_path: Path) -> None:
    """benchmarks/redis_idle.py: one JSON record; an idle worker makes about one read per
    `block_s` (counted, not timed: the CPU is reported, not judged)."""
    idle = ROOT / "benchmarks" / "redis_idle.py"
    done = run("--seconds", "2", "--json", log_dir=None, benchmark=idle, timeout=120)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["workload"] == "redis_idle" and len(record["worker_cpu_ms"]) == 1
    assert record["commands_by_name"].get("xreadgroup", 0) <= 2 + 2, record


def test_bad_worker_counts_are_refused(tmp_path: Path) -> None:
    done = run("--workers", "1,zero", log_dir=tmp_path)
    assert done.returncode == 2 and "--workers takes counts" in done.stderr
