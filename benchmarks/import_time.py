"""How long `import penguiflow` takes in a fresh interpreter, against `import asyncio` there.

    python benchmarks/import_time.py [--repeat 20] [--json-out import.jsonl]

Each sample is a new process (nothing cached in `sys.modules`); the best of `--repeat` is
reported, with the baseline measured in the same run, as the other benchmarks do. Tests assert
what `import penguiflow` imports (tests/test_plugin_discovery.py), never how long it takes:
timing lives here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PROBE = (
    "import time; started = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - started)"
)


def best_of(module: str, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", PROBE.format(module=module)],
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(float(done.stdout))
    return min(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="fresh processes per module")
    parser.add_argument("--json-out", type=Path, help="also write the JSON line to this file")
    args = parser.parse_args(argv)
    import penguiflow

    seconds = best_of("penguiflow", args.repeat)
    baseline = best_of("asyncio", args.repeat)
    record = {
        "workload": "import_penguiflow",
        "n": args.repeat,
        "seconds": seconds,
        "baseline_seconds": baseline,
        "ratio_to_bare": seconds / baseline,
        "python": sys.version.split()[0],
        "penguiflow": penguiflow.__version__,
    }
    line = json.dumps(record)
    print(line)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
