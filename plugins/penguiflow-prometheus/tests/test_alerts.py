"""The alert rules are valid, and their unit tests pass (`promtool check rules` and
`promtool test rules`, from Debian's prometheus package)."""

from __future__ import annotations

import subprocess

from services import ALERTS, ensure_prometheus


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    ensure_prometheus()
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=120, cwd=ALERTS
    )


def test_the_rules_are_valid() -> None:
    done = promtool("check", "rules", "penguiflow.rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


def test_the_rules_unit_tests_pass() -> None:
    done = promtool("test", "rules", "penguiflow.rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_rule_is_unit_tested() -> None:
    rules = (ALERTS / "penguiflow.rules.yml").read_text()
    tests = (ALERTS / "penguiflow.rules.test.yml").read_text()
    names = [line.split(":", 1)[1].strip() for line in rules.splitlines() if "- alert:" in line]
    assert len(names) == 8
    for name in names:
        assert f"alertname: {name}\n" in tests, f"{name} has no promtool unit test"


def test_rule_metrics_are_ones_the_plugin_exports() -> None:
    import re

    from penguiflow_prometheus import METRICS

    exported = set()
    for spec in METRICS:
        exported.add(spec.name)
        if spec.kind == "histogram":
            exported |= {f"{spec.name}_count", f"{spec.name}_sum", f"{spec.name}_bucket"}
    rules = (ALERTS / "penguiflow.rules.yml").read_text()
    used = set(re.findall(r"\bpenguiflow_[a-z_]+", rules))
    assert used and used <= exported, used - exported


def test_every_metric_is_in_the_docs_table() -> None:
    from penguiflow_prometheus import METRICS

    docs = (ALERTS.parents[2] / "docs" / "observability.md").read_text()
    section = docs.split("## penguiflow-prometheus", 1)[1].split("\n## ", 1)[0]
    for spec in METRICS:
        labels = ", ".join(spec.labels)
        row = f"| `{spec.name}` | {spec.kind} | {labels} |".replace("|  |", "| |")
        assert row in section, f"docs/observability.md lacks the row {row!r}"
