"""PenguiFlow's planner import paths (`penguiflow.planner`, its submodules, the planner names
at top level) resolve to the planner plugin, and say how to install it when it is missing.

Every check runs in a fresh interpreter, so what one imports cannot leak into another (or into
this test process). The plugin counts as installed when its package is importable: the
checkout's `plugins/penguiflow-planner/src` on `PYTHONPATH` for the real plugin, or a stand-in
`penguiflow_planner` written to a temporary folder, which lets the forwarding be tested for
every submodule and for a plugin missing one. Installing real distributions side by side is
tested in test_plugin_discovery.py; these tests need nothing installed but the kernel. "Not
installed" is `sys.modules['penguiflow_planner'] = None`, which makes its import fail as a
missing package's does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from penguiflow.errors import MissingPluginError

ROOT = Path(__file__).resolve().parent.parent
PLANNER_SRC = ROOT / "plugins" / "penguiflow-planner" / "src"
SUBMODULES = ["catalog_extension", "context", "llm_context_hooks", "memory", "models",
              "prompts", "react", "trajectory"]  # fmt: skip
#: The planner names PenguiFlow 3.11.2 exports from `penguiflow` itself.
PENGUIFLOW_TOP_LEVEL = {
    "PlannerAction", "PlannerFinish", "ReactPlanner", "SkillCapabilityContext",
    "SkillPackConfig", "SkillProposalConfig", "SkillProposalDraft", "SkillProposeRequest",
    "SkillProposeResponse", "SkillProvider", "SkillProviderFactory", "SkillsConfig",
    "SkillsDirectoryConfig", "ToolExamplesConfig", "ToolSearchConfig", "Trajectory",
    "TrajectoryStep",
}  # fmt: skip
INSTALL = "`pip install penguiflow-planner`"
FROM_CHECKOUT = "`pip install ./plugins/penguiflow-planner`"
UPGRADE = "`pip install -U penguiflow-planner`"


#: A helper for the snippets: what an import or lookup gives (a name) or raises (type, text).
OUTCOME = """
import importlib, json, sys
def outcome(thunk):
    try:
        value = thunk()
    except Exception as exc:
        return [type(exc).__name__, str(exc)]
    return ["ok", getattr(value, "__name__", type(value).__name__)]

def forwarded(ours, theirs):
    # "same": one object; "lacking": the plugin has no such name and ours says so; "as
    # theirs": the plugin's own lookup fails and ours fails alike; else what differs.
    try:
        expected = theirs()
    except AttributeError:
        got = outcome(ours)
        lacking = got[0] == "MissingPluginError" and "is not provided by the installed" in got[1]
        return "lacking" if lacking else f"plugin lacks it, but ours gave {got}"
    except Exception as exc:
        got = outcome(ours)
        return "as theirs" if got == [type(exc).__name__, str(exc)] else f"ours gave {got}"
    return "same" if ours() is expected else "a different object"
"""


def run(code: str, *path: Path, block_plugin: bool = False) -> Any:
    """Run `code` (after OUTCOME) in a fresh interpreter with `path` first on sys.path; it
    prints one JSON value as its last line, which is returned."""
    # A None entry makes `import penguiflow_planner` fail as a missing package's does.
    blocked = "sys.modules['penguiflow_planner'] = None\n" if block_plugin else ""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PENGUIFLOW_")}
    entries = [*(str(p) for p in path), environ.get("PYTHONPATH", "")]
    environ["PYTHONPATH"] = os.pathsep.join(e for e in entries if e)
    done = subprocess.run(
        [sys.executable, "-c", OUTCOME + blocked + textwrap.dedent(code)],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def stand_in(root: Path, modules: list[str], **files: str) -> Path:
    """A stand-in planner plugin under `root`: `Eager` defined in the package, `Lazy` loaded
    on first use from `_lazy`, and each of `modules` defining a class `Marker`."""
    package = root / "penguiflow_planner"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent("""
        __all__ = ["Eager", "Lazy"]

        class Eager:
            pass

        def __getattr__(name):
            if name == "Lazy":
                from ._lazy import Lazy
                return Lazy
            raise AttributeError(name)
        """)
    )
    (package / "_lazy.py").write_text("class Lazy:\n    pass\n")
    for module in modules:
        (package / f"{module}.py").write_text("class Marker:\n    pass\n")
    for name, text in files.items():
        (package / f"{name}.py").write_text(text)
    return root


def test_every_submodule_is_the_plugins_module_under_every_import_form(tmp_path: Path) -> None:
    found = run(
        f"""
        results = {{}}
        for name in {SUBMODULES!r}:
            ours, theirs = f"penguiflow.planner.{{name}}", f"penguiflow_planner.{{name}}"
            module = importlib.import_module(ours)
            exec(f"import {{ours}}\\nfrom {{ours}} import Marker")
            import penguiflow.planner as facade
            results[name] = [
                module is importlib.import_module(theirs) is sys.modules[ours],
                Marker is sys.modules[theirs].Marker,
                getattr(facade, name) is module,
                module.__name__,
            ]
        print(json.dumps(results))
        """,
        stand_in(tmp_path, SUBMODULES),
    )
    assert found == {name: [True, True, True, f"penguiflow_planner.{name}"] for name in SUBMODULES}


def test_the_package_forwards_the_plugins_names_lazily(tmp_path: Path) -> None:
    found = run(
        """
        from penguiflow.planner import Eager
        import penguiflow.planner as facade, penguiflow_planner as plugin
        before = "penguiflow_planner._lazy" in sys.modules
        from penguiflow.planner import Lazy
        print(json.dumps({
            "all": facade.__all__ == plugin.__all__ == ["Eager", "Lazy"],
            "same": [Eager is plugin.Eager, Lazy is plugin.Lazy],
            "lazy": [before, "penguiflow_planner._lazy" in sys.modules],
            "dir": [n for n in dir(facade) if not n.startswith("__")],
            "unknown": outcome(lambda: exec("from penguiflow.planner import Nope")),
            "attribute": outcome(lambda: facade.Nope),
            "penguiflow_name": outcome(lambda: exec("from penguiflow.planner import SkillsConfig")),
        }))
        """,
        stand_in(tmp_path, ["memory"]),
    )
    assert found["all"] and found["same"] == [True, True] and found["lazy"] == [False, True]
    assert found["dir"] == sorted(["Eager", "Lazy", *SUBMODULES])
    assert (
        found["unknown"][0] == "ImportError" and "cannot import name 'Nope'" in found["unknown"][1]
    )
    assert found["attribute"] == [
        "AttributeError", "module 'penguiflow.planner' has no attribute 'Nope'"
    ]  # fmt: skip
    # A PenguiFlow planner name the plugin lacks says so, instead of a bare "cannot import".
    kind, message = found["penguiflow_name"]
    assert kind == "MissingPluginError"
    assert "penguiflow.planner.SkillsConfig is not provided by the installed" in message
    assert UPGRADE in message


def test_a_submodule_the_plugin_lacks_says_to_upgrade_it(tmp_path: Path) -> None:
    found = run(
        """
        first = outcome(lambda: importlib.import_module("penguiflow.planner.context"))
        again = outcome(lambda: exec("from penguiflow.planner.context import Marker"))
        print(json.dumps([first, again, "penguiflow.planner.context" in sys.modules]))
        """,
        stand_in(tmp_path, ["memory"]),
    )
    first, again, left_behind = found
    assert first[0] == "MissingPluginError"
    assert "penguiflow.planner.context needs the module penguiflow_planner.context" in first[1]
    assert UPGRADE in first[1] and "`pip install -U ./plugins/penguiflow-planner`" in first[1]
    assert again == first and not left_behind


def test_a_plugin_that_fails_on_its_own_import_is_not_called_missing(tmp_path: Path) -> None:
    broken = "import a_library_that_is_not_installed\n"
    found = run(
        'print(json.dumps(outcome(lambda: importlib.import_module("penguiflow.planner.models"))))',
        stand_in(tmp_path, [], models=broken),
    )  # fmt: skip
    assert found == ["ModuleNotFoundError", "No module named 'a_library_that_is_not_installed'"]


def test_without_the_plugin_every_path_says_how_to_install_it() -> None:
    paths = ["penguiflow.planner", *(f"penguiflow.planner.{name}" for name in SUBMODULES)]
    found = run(
        f"""
        results = [outcome(lambda p=p: importlib.import_module(p)) for p in {paths!r}]
        results.append(outcome(lambda: exec("from penguiflow.planner import ReactPlanner")))
        results.append(outcome(lambda: exec("from penguiflow import ReactPlanner")))
        results.append(outcome(lambda: exec("from penguiflow.planner.memory import MemoryKey")))
        print(json.dumps(results))
        """,
        block_plugin=True,
    )
    assert len(found) == len(paths) + 3
    for kind, message in found:
        assert kind == "MissingPluginError", message
        assert INSTALL in message and FROM_CHECKOUT in message, message
    assert found[-2][1].startswith("penguiflow.ReactPlanner is provided by the plugin")
    assert issubclass(MissingPluginError, ImportError)


def test_the_real_plugin_is_what_the_paths_give() -> None:
    found = run(
        f"""
        import penguiflow.planner as facade, penguiflow_planner as plugin
        names = {{}}
        for name in plugin.__all__:
            names[name] = forwarded(lambda: getattr(facade, name), lambda: getattr(plugin, name))
        modules = {{}}
        for name in {SUBMODULES!r}:
            ours = outcome(lambda: importlib.import_module(f"penguiflow.planner.{{name}}"))
            theirs = outcome(lambda: importlib.import_module(f"penguiflow_planner.{{name}}"))
            same = ours[0] == "ok" and sys.modules[f"penguiflow.planner.{{name}}"] is (
                sys.modules[f"penguiflow_planner.{{name}}"])
            modules[name] = [theirs, ours, same]
        print(json.dumps({{"all": facade.__all__ == plugin.__all__, "names": names,
                           "modules": modules}}))
        """,
        PLANNER_SRC,
    )
    assert found["all"]
    # While the plugin is rewritten some of its own names may fail: ours then fail alike.
    verdicts = set(found["names"].values())
    assert found["names"] and verdicts <= {"same", "lacking", "as theirs"}, found["names"]
    assert found["modules"]["memory"][0][0] == "ok", "penguiflow_planner.memory exists today"
    for name, (theirs, ours, same) in found["modules"].items():
        if theirs[0] == "ok":
            assert same, (name, ours)
        elif theirs == ["ModuleNotFoundError", f"No module named 'penguiflow_planner.{name}'"]:
            # a module the plugin has not grown yet: the clear error, not Python's
            assert ours[0] == "MissingPluginError" and UPGRADE in ours[1], (name, ours)
        else:  # the plugin's module fails on its own import: ours fails alike
            assert ours == theirs, (name, ours, theirs)


def test_top_level_planner_names_are_penguiflows_and_forward_to_the_plugin() -> None:
    found = run(
        """
        import penguiflow, penguiflow_planner as plugin
        print(json.dumps({
            name: forwarded(lambda: getattr(penguiflow, name), lambda: getattr(plugin, name))
            for name in sorted(penguiflow._PLANNER_NAMES)
        }))
        """,
        PLANNER_SRC,
    )
    assert set(found) == PENGUIFLOW_TOP_LEVEL
    # "lacking": a PenguiFlow name this plugin does not provide (yet), and the error says so.
    assert set(found.values()) <= {"same", "lacking", "as theirs"}, found


@pytest.mark.parametrize("statement", ["import penguiflow", "from penguiflow import create"])
def test_import_penguiflow_imports_no_planner_even_when_it_is_installed(statement: str) -> None:
    found = run(
        f"""
        {statement}
        planner = [m for m in sys.modules if m.startswith(("penguiflow.planner", "penguiflow_"))]
        print(json.dumps(planner))
        """,
        PLANNER_SRC,
    )
    assert found == []
