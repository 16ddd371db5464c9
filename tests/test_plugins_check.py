"""`penguiflow plugins check`: every driver imported and every hook plugin loaded, each
reported as ok or failed (with the error and a remedy), exit code 1 when any failed.

The plugins are real distributions made for each test (`penguiflow.testing.DistributionSite`:
a module and a `.dist-info` on `sys.path`), so discovery reads real metadata; the broken one
is modelled on `tests/fixtures/plugins/pf-fixture-broken`, which `test_plugin_discovery.py`
installs with pip.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from penguiflow.cli import cli
from penguiflow.plugins import check_plugins, check_result, list_plugins
from penguiflow.testing import DistributionSite

GOOD = """
from penguiflow.state import InMemoryStateStore

def Store(url, **options):
    return InMemoryStateStore()

def startup(flow, role):
    pass
"""
# Like tests/fixtures/plugins/pf-fixture-broken: the module fails to import.
BROKEN = """
import pf_check_a_library_nobody_installed
"""
HOOKS = """
import pluggy

hookimpl = pluggy.HookimplMarker("penguiflow")

@hookimpl
def penguiflow_flow_startup(flow, role):
    pass
"""
TYPO_HOOKS = """
import pluggy

hookimpl = pluggy.HookimplMarker("penguiflow")

@hookimpl
def penguiflow_flow_startpu(flow, role):
    pass
"""
NEVER_IMPORT = """
raise RuntimeError("a disabled or skipped plugin was imported")
"""


@pytest.fixture
def site(penguiflow_site: DistributionSite, penguiflow_isolated_plugins: None) -> DistributionSite:
    s = penguiflow_site
    s.install(
        "pf-check-good",
        {
            "penguiflow.state_stores": {"checkgood": "pf_check_good:Store"},
            "penguiflow": {"check-good-hooks": "pf_check_hooks"},
        },
        {"pf_check_good": GOOD, "pf_check_hooks": HOOKS},
    )
    s.install(
        "pf-check-broken",
        {
            "penguiflow.state_stores": {"checkbroken": "pf_check_broken:Store"},
            "penguiflow": {"check-broken-hooks": "pf_check_broken"},
        },
        {"pf_check_broken": BROKEN},
    )
    s.install(
        "pf-check-noattr",
        {"penguiflow.join_strategies": {"checknoattr": "pf_check_good:no_such_factory"}},
    )
    s.install(
        "pf-check-typo",
        {"penguiflow": {"check-typo": "pf_check_typo"}},
        {"pf_check_typo": TYPO_HOOKS},
    )
    s.install("pf-check-dupe-a", {"penguiflow.message_buses": {"checkdupe": "pf_check_good:Store"}})
    s.install("pf-check-dupe-b", {"penguiflow.message_buses": {"checkdupe": "pf_check_good:Store"}})
    s.install(
        "pf-check-future",
        {"penguiflow.state_stores": {"checkfuture": "pf_check_never:Store"}},
        {"pf_check_never": NEVER_IMPORT},
        requires="penguiflow>=99",
    )
    s.install(
        "pf-check-off",
        {"penguiflow.state_stores": {"checkoff": "pf_check_off:Store"}},
        {"pf_check_off": NEVER_IMPORT},
    )
    return s


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    environ = {"PENGUIFLOW_DISABLE_PLUGINS": "penguiflow.state_stores:checkoff", **(env or {})}
    return CliRunner().invoke(cli, ["plugins", "check", *args], env=environ)


def rows_of(result: Result) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["group"], r["name"]): r for r in json.loads(result.stdout)}


def test_check_reports_each_plugin_and_exits_1_when_one_failed(site: DistributionSite) -> None:
    result = invoke("--json")
    assert result.exit_code == 1, result.output
    rows = rows_of(result)

    def result_of(group: str, name: str) -> str:
        return str(rows[(group, name)]["result"])

    assert result_of("penguiflow.state_stores", "checkgood") == "ok"
    assert result_of("penguiflow", "check-good-hooks") == "ok"
    assert result_of("penguiflow.state_stores", "memory") == "ok"  # built-ins are checked too
    broken = rows[("penguiflow.state_stores", "checkbroken")]
    assert broken["result"] == "failed" and broken["status"] == "failed"
    assert "ModuleNotFoundError" in broken["error"]
    assert "pf_check_a_library_nobody_installed" in broken["error"]
    assert "'pf_check_a_library_nobody_installed'" in broken["remedy"]
    assert "pf-check-broken" in broken["remedy"]
    assert "PENGUIFLOW_DISABLE_PLUGINS=penguiflow.state_stores:checkbroken" in broken["remedy"]
    assert result_of("penguiflow", "check-broken-hooks") == "failed"
    noattr = rows[("penguiflow.join_strategies", "checknoattr")]
    assert noattr["result"] == "failed" and "no_such_factory" in noattr["error"]
    typo = rows[("penguiflow", "check-typo")]
    assert typo["result"] == "failed" and "penguiflow_flow_startpu" in typo["error"]
    every_dupe = [r for r in json.loads(result.stdout) if r["name"] == "checkdupe"]
    assert [r["result"] for r in every_dupe] == ["failed", "failed"]
    assert {"pf-check-dupe-a", "pf-check-dupe-b"} <= {r["distribution"] for r in every_dupe}
    assert "also claimed by pf-check-dupe-" in every_dupe[0]["error"]
    # Not imported, so not checked: reported as they are.
    assert result_of("penguiflow.state_stores", "checkfuture") == "skipped"
    assert result_of("penguiflow.state_stores", "checkoff") == "disabled"
    assert "pf_check_never" not in sys.modules and "pf_check_off" not in sys.modules


def test_list_says_available_where_check_says_failed(site: DistributionSite) -> None:
    """The reason for the command: listing reads metadata only."""
    listed = {(r.group, r.name): r.status for r in list_plugins(include_hooks=False)}
    assert listed[("penguiflow.state_stores", "checkbroken")] == "available"
    checked = {(r.group, r.name): check_result(r) for r in check_plugins()}
    assert checked[("penguiflow.state_stores", "checkbroken")] == "failed"


def test_the_table_names_each_failure_and_its_remedy(site: DistributionSite) -> None:
    result = invoke()
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "GROUP", "DISTRIBUTION", "VERSION", "RESULT", "ERROR"]
    row = next(line for line in lines if line.startswith("checkbroken "))
    assert row.split()[4] == "failed" and "ModuleNotFoundError" in row
    assert any(line.strip().startswith("checkbroken: install the module") for line in lines), (
        result.stdout
    )
    assert "failed," in lines[-1] and "not checked (disabled or skipped)" in lines[-1]


def test_strict_mode_does_not_stop_the_check(site: DistributionSite) -> None:
    result = invoke("--json", env={"PENGUIFLOW_STRICT_PLUGINS": "1"})
    assert result.exit_code == 1
    assert rows_of(result)[("penguiflow.state_stores", "checkgood")]["result"] == "ok"


def test_exit_code_is_0_when_nothing_failed(site: DistributionSite) -> None:
    off = (
        "penguiflow.state_stores:checkoff,checkbroken,check-broken-hooks,checknoattr,"
        "check-typo,checkdupe"
    )
    result = invoke("--json", env={"PENGUIFLOW_DISABLE_PLUGINS": off})
    rows = json.loads(result.stdout)
    ours = [r for r in rows if str(r["distribution"]).startswith("pf-check-")]
    assert {r["result"] for r in ours} == {"ok", "disabled", "skipped"}
    # Whatever else is installed here decides too: 0 exactly when no row failed.
    assert result.exit_code == (1 if any(r["result"] == "failed" for r in rows) else 0)


def test_an_unreadable_configuration_is_an_error_not_a_traceback(
    site: DistributionSite, tmp_path: Path
) -> None:
    result = invoke(env={"PENGUIFLOW_CONFIG": str(tmp_path / "missing.toml")})
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: cannot read the plugin configuration" in result.output
