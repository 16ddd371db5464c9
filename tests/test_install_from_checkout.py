"""The packages install from this checkout, since they are not published: PyPI's `penguiflow`
is the 3.x library, and every plugin requires `penguiflow>=4.0,<5`.

The slow test builds a fresh virtual environment and installs the kernel and the plugin
template with `pip install --no-index` (no registry reachable, so nothing can resolve from
PyPI); the third-party libraries the kernel needs are put there first, from the registry as
usual.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from penguiflow.plugins import DRIVER_KINDS, DriverNotFoundError, resolve_driver

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "contrib" / "penguiflow-plugin-template"


def test_a_missing_driver_says_how_to_install_it_from_a_checkout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kind = DRIVER_KINDS["state_store"]
    providers = {**kind.providers, "nosuchdb": "penguiflow-nosuchdb"}
    monkeypatch.setitem(DRIVER_KINDS, "state_store", dataclasses.replace(kind, providers=providers))
    with pytest.raises(DriverNotFoundError) as info:
        resolve_driver("state_store", "nosuchdb://127.0.0.1:1/0")
    assert "install it with `pip install penguiflow-nosuchdb` (from a checkout: " in str(info.value)
    assert "`pip install ./plugins/penguiflow-nosuchdb`)" in str(info.value)


def test_every_install_hint_names_a_folder_of_this_checkout() -> None:
    for kind in DRIVER_KINDS.values():
        for distribution in kind.providers.values():
            assert (ROOT / "plugins" / distribution / "pyproject.toml").is_file(), distribution


def _third_party(folders: list[Path]) -> list[str]:
    """What pip needs besides our own packages: build backends and libraries."""
    wanted: set[str] = set()
    for folder in folders:
        data = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
        for raw in [*data["build-system"]["requires"], *data["project"]["dependencies"]]:
            if not Requirement(raw).name.startswith("penguiflow"):
                wanted.add(raw)
    return sorted(wanted)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("checkout-install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run(
        [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet",
         *_third_party([ROOT / "core", TEMPLATE])],
        check=True,
    )  # fmt: skip
    return path


def _offline_pip(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No index, and no pip configuration (a machine's extra indexes or wheel folders): only
    # what is named here and what is already installed can satisfy a requirement.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    environ["PIP_CONFIG_FILE"] = os.devnull
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index",
         "--no-build-isolation", "--disable-pip-version-check", *args],
        capture_output=True, text=True, env=environ, timeout=300, check=False,
    )  # fmt: skip


def _copy(folder: Path, into: Path) -> Path:
    """The package's sources, without the build/ and egg-info folders earlier builds left in
    the checkout (setuptools builds in place and never prunes build/)."""
    target = into / folder.name
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache")
    shutil.copytree(folder, target, ignore=ignore)
    return target


def test_the_template_installs_against_the_checkouts_kernel(
    fresh_venv: Path, tmp_path: Path
) -> None:
    core, template = _copy(ROOT / "core", tmp_path), _copy(TEMPLATE, tmp_path)
    # Alone, the template cannot install: nothing offered satisfies penguiflow>=4.0,<5.
    alone = _offline_pip(fresh_venv, str(template))
    assert alone.returncode != 0
    assert "penguiflow" in alone.stderr and "<5,>=4.0" in alone.stderr, alone.stderr

    done = _offline_pip(fresh_venv, str(core), str(template))
    assert done.returncode == 0, done.stdout + done.stderr

    environ = {k: v for k, v in os.environ.items() if not k.startswith("PENGUIFLOW_")}
    shown = subprocess.run(
        [str(fresh_venv / "bin" / "python"), "-c",
         "import importlib.metadata as m, penguiflow; "
         "print(m.version('penguiflow'), m.version('penguiflow-plugin-template'), "
         "penguiflow.__file__)"],
        capture_output=True, text=True, env=environ, timeout=120, check=True,
    )  # fmt: skip
    kernel, template, location = shown.stdout.split()
    assert (kernel, template) == ("4.0.0", "0.1.0")
    assert Path(location).is_relative_to(fresh_venv)  # installed from ./core, not a path hack

    checked = subprocess.run(
        [str(fresh_venv / "bin" / "penguiflow"), "plugins", "check", "--json"],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rows = {(r["group"], r["name"]): r for r in json.loads(checked.stdout)}
    assert rows[("penguiflow.state_stores", "jsonl")]["result"] == "ok"
    assert rows[("penguiflow.state_stores", "jsonl")]["distribution"] == (
        "penguiflow-plugin-template"
    )
    assert rows[("penguiflow", "template")]["result"] == "ok"
