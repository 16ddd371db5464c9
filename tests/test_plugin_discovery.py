"""Discovery across real installed distributions, in a throwaway virtual environment.

The fixtures under tests/fixtures/plugins/ are real packages, built and installed with pip
next to the kernel: a good plugin (a state-store driver, a join-strategy driver and a hook
plugin that also implements the hook the planner plugin declares), a broken one (fails to
import), one whose kernel requirement no kernel satisfies, and two that claim the same driver
name.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "plugins"
PLUGINS = ["pf-fixture-goodstore", "pf-fixture-broken", "pf-fixture-future",
           "pf-fixture-dupe-a", "pf-fixture-dupe-b"]  # fmt: skip


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plugins") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(
        [
            *pip,
            "setuptools>=77",
            str(ROOT / "core"),
            *(
                str(p)
                for p in sorted((ROOT / "plugins").iterdir())
                if (p / "pyproject.toml").exists()
            ),
        ],
        check=True,
    )
    subprocess.run(
        [*pip, "--no-deps", "--no-build-isolation", *(str(FIXTURES / p) for p in PLUGINS)],
        check=True,
    )
    return path


def run(venv: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PENGUIFLOW_")}
    environ.update(env)
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip


def cli_rows(venv: Path, **env: str) -> dict[tuple[str, str], dict[str, str]]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PENGUIFLOW_")}
    environ.update(env)
    done = subprocess.run(
        [str(venv / "bin" / "penguiflow"), "plugins", "list", "--json"],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {(r["group"], r["name"]): r for r in json.loads(done.stdout)}


def test_cli_reports_every_plugin_and_exits_zero(venv: Path) -> None:
    rows = cli_rows(venv)
    redis = rows[("penguiflow.state_stores", "redis")]
    assert redis["status"] == "available" and redis["distribution"] == "penguiflow-redis"
    postgres = rows[("penguiflow.state_stores", "postgresql")]
    assert postgres["status"] == "available" and postgres["distribution"] == "penguiflow-postgres"
    assert rows[("penguiflow.state_stores", "goodstore")]["status"] == "available"
    assert rows[("penguiflow.state_stores", "goodstore")]["distribution"] == "pf-fixture-goodstore"
    assert rows[("penguiflow.state_stores", "goodstore")]["version"] == "1.0.0"
    assert rows[("penguiflow", "goodstore-hooks")]["status"] == "loaded"
    broken = rows[("penguiflow", "broken")]
    assert broken["status"] == "failed" and "needs a library" in broken["error"]
    assert "pf-fixture-broken" in broken["remedy"]
    # A broken package's *driver* is only metadata until someone chooses it.
    assert rows[("penguiflow.state_stores", "brokenstore")]["status"] == "available"
    future = rows[("penguiflow.state_stores", "future")]
    assert future["status"] == "skipped" and "requires penguiflow>=99" in future["error"]
    assert rows[("penguiflow.state_stores", "memory")]["distribution"] == "penguiflow"
    # Join strategies are drivers: the kernel's and a third party's, side by side.
    assert rows[("penguiflow.join_strategies", "append")]["distribution"] == "penguiflow"
    assert rows[("penguiflow.join_strategies", "goodjoin")]["status"] == "available"
    # The planner's hook plugin declares penguiflow_planner_sinks, which goodstore-hooks
    # implements although its name sorts first.
    assert rows[("penguiflow", "penguiflow-planner")]["status"] == "loaded"
    assert rows[("penguiflow", "goodstore-hooks")]["error"] is None


def test_selection_by_url_with_a_broken_neighbour(venv: Path) -> None:
    done = run(
        venv,
        """
        import asyncio
        from penguiflow import Headers, Message, Node, NodePolicy, create

        async def passthrough(message, ctx):
            return message

        async def main():
            node = Node(passthrough, name="n", policy=NodePolicy(validate="none"))
            flow = create(node.to(), state_store="goodstore://db?x=1")
            print(type(flow._state_store).__name__, flow._state_store.url)
            flow.run()
            await flow.emit(Message(payload=1, headers=Headers(tenant="t")))
            print((await flow.fetch()).payload, getattr(flow, "started_by_goodstore", False))
            await flow.stop()

        asyncio.run(main())
    """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["GoodStore", "goodstore://db?x=1", "1", "True"]


def test_choosing_a_broken_driver_names_it(venv: Path) -> None:
    done = run(
        venv,
        """
        from penguiflow.plugins import PluginLoadError, resolve_driver
        try:
            resolve_driver("state_store", "brokenstore://x")
        except PluginLoadError as exc:
            print(exc)
    """,
    )
    assert "driver 'brokenstore'" in done.stdout and "pf-fixture-broken 1.0.0" in done.stdout
    assert "needs a library that is not installed" in done.stdout


def test_strict_mode_raises(venv: Path) -> None:
    done = run(
        venv,
        """
        from penguiflow.plugins import load_hooks
        load_hooks()
    """,
        PENGUIFLOW_STRICT_PLUGINS="1",
    )
    assert done.returncode != 0
    assert "PluginLoadError" in done.stderr and "pf-fixture-broken" in done.stderr


def test_disabling_by_environment(venv: Path) -> None:
    rows = cli_rows(venv, PENGUIFLOW_DISABLE_PLUGINS="broken,goodstore,penguiflow.runtimes:local")
    assert rows[("penguiflow", "broken")]["status"] == "disabled"
    assert rows[("penguiflow.state_stores", "goodstore")]["status"] == "disabled"
    assert rows[("penguiflow.runtimes", "local")]["status"] == "disabled"
    done = run(
        venv,
        """
        from penguiflow.plugins import load_hooks, resolve_driver
        host = load_hooks()
        print(dict(sorted((r.name, r.status) for r in host.records)))
        try:
            resolve_driver("state_store", "goodstore://x")
        except LookupError as exc:
            print(exc)
    """,
        PENGUIFLOW_DISABLE_PLUGINS="broken,goodstore",
        PENGUIFLOW_STRICT_PLUGINS="1",
    )
    assert done.returncode == 0, done.stderr
    # strict, and still fine: broken is off; the planner's hook plugin is loaded too
    statuses = ast.literal_eval(done.stdout.splitlines()[0])
    assert statuses["broken"] == "disabled" and statuses["penguiflow-planner"] == "loaded"
    assert "failed" not in statuses.values()
    assert "pf-fixture-goodstore is disabled" in done.stdout


def test_a_third_party_plugin_works_with_the_planner_in_strict_mode(venv: Path) -> None:
    """The goodstore fixture's join strategy, connector and planner sink, all found through
    their entry points, with strict loading (which refuses hooks nobody declares)."""
    done = run(
        venv,
        """
        import asyncio, json
        import pf_fixture_goodstore as good
        from penguiflow.llm import ScriptedLLMClient
        from penguiflow.plugins import collect_connectors, load_hooks, reset_hooks
        from penguiflow_planner import ReactPlanner
        from penguiflow import ModelRegistry, Node, NodePolicy, build_catalog, tool
        from pydantic import BaseModel

        class Q(BaseModel):
            text: str

        @tool(desc="echo the text")
        async def echo(args: Q, ctx) -> Q:
            return args

        host = load_hooks()
        reset_hooks(host)
        print([c.name for c in collect_connectors(host)])
        registry = ModelRegistry()
        registry.register("echo", Q, Q)
        catalog = build_catalog([Node(echo, name="echo", policy=NodePolicy())], registry)
        plan = {"plan": [{"node": "echo", "args": {"text": "a"}}] * 2, "join": "goodjoin"}
        finish = {"next_node": None, "args": {"answer": "done"}}
        llm = ScriptedLLMClient([json.dumps(plan), json.dumps(finish)])
        result = asyncio.run(ReactPlanner(llm_client=llm, catalog=catalog).run("go"))
        print(result.metadata["steps"][0]["observation"]["join"])
        print(good.PLANNER_EVENTS[-1])
    """,
        PENGUIFLOW_STRICT_PLUGINS="1",
        PENGUIFLOW_DISABLE_PLUGINS="broken",
    )
    assert done.returncode == 0, done.stderr
    connectors, observation, last_event = done.stdout.splitlines()
    assert "good" in ast.literal_eval(connectors)
    assert ast.literal_eval(observation) == {"n": 2, "failed": []}
    assert last_event == "planner_finish"


def test_version_skew_is_skipped_never_imported(venv: Path) -> None:
    done = run(
        venv,
        """
        from penguiflow.plugins import resolve_driver
        try:
            resolve_driver("state_store", "future://x")
        except LookupError as exc:
            print(exc)
    """,
    )
    assert done.returncode == 0, done.stderr
    assert "is skipped (requires penguiflow>=99 but penguiflow 4.0.0 is installed)" in done.stdout


def test_two_drivers_claiming_one_name(venv: Path) -> None:
    done = run(
        venv,
        """
        from penguiflow.plugins import DriverConflictError, resolve_driver
        try:
            resolve_driver("state_store", "dupe://x")
        except DriverConflictError as exc:
            print(exc)
    """,
    )
    assert "two state store drivers claim 'dupe'" in done.stdout
    assert "pf-fixture-dupe-a" in done.stdout and "pf-fixture-dupe-b" in done.stdout


def test_import_stays_light_with_plugins_installed(venv: Path) -> None:
    """`import penguiflow` imports no plugin, no plugin machinery and no heavy library, with
    every first-party plugin and the fixture plugins installed.

    What is imported is asserted, not how long it took: a wall-clock budget fails on a slow or
    busy machine and passes a regression on a fast one. The time is measured by
    `benchmarks/import_time.py`."""
    done = run(
        venv,
        """
        import json, sys
        before = set(sys.modules)
        import penguiflow
        print(json.dumps(sorted(set(sys.modules) - before)))
    """,
    )
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout)
    heavy = ("pf_fixture", "penguiflow_", "redis", "asyncpg", "httpx", "mcp", "utcp",
             "stevedore", "pluggy", "pydantic", "anyio", "click", "importlib.metadata",
             "packaging")  # fmt: skip
    assert [m for m in imported if m.startswith(heavy)] == []
    # The facade loads its names on first use: nothing of the kernel but its version.
    assert [m for m in imported if m.startswith("penguiflow")] == [
        "penguiflow",
        "penguiflow._version",
    ]


def test_check_imports_what_list_only_reads(venv: Path) -> None:
    """`penguiflow plugins check` imports every driver: the broken fixture's driver, listed as
    `available`, is reported failed with its error and remedy, and the exit code is 1."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PENGUIFLOW_")}
    done = subprocess.run(
        [str(venv / "bin" / "penguiflow"), "plugins", "check", "--json"],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    rows = {(r["group"], r["name"]): r for r in json.loads(done.stdout)}
    brokenstore = rows[("penguiflow.state_stores", "brokenstore")]
    assert brokenstore["result"] == "failed"
    assert "needs a library that is not installed" in brokenstore["error"]
    assert "pf-fixture-broken" in brokenstore["remedy"]
    assert rows[("penguiflow", "broken")]["result"] == "failed"
    assert rows[("penguiflow.state_stores", "dupe")]["result"] == "failed"
    assert rows[("penguiflow.state_stores", "future")]["result"] == "skipped"
    healthy = [
        ("penguiflow.state_stores", "redis"),
        ("penguiflow.state_stores", "postgresql"),
        ("penguiflow.runtimes", "redis"),
        ("penguiflow.state_stores", "goodstore"),
        ("penguiflow", "goodstore-hooks"),
        ("penguiflow", "penguiflow-planner"),
    ]
    for key in healthy:
        assert rows[key]["result"] == "ok", rows[key]
    # With the broken and duplicate fixtures disabled, everything installed checks out.
    environ["PENGUIFLOW_DISABLE_PLUGINS"] = "broken,brokenstore,dupe"
    clean = subprocess.run(
        [str(venv / "bin" / "penguiflow"), "plugins", "check"],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert " 0 failed, " in clean.stdout.splitlines()[-1]
