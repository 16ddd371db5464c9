"""Kernel import paths that a first-party plugin provides (`penguiflow.planner`, say).

PenguiFlow 3.x shipped its planner inside the `penguiflow` distribution; here it is the
`penguiflow-planner` plugin. PenguiFlow users keep their import paths: the kernel forwards
them to the plugin when it is installed, and says how to install it when it is not.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata
from types import ModuleType
from typing import Any

from .errors import MissingPluginError

__all__ = ["alias_plugin_module", "import_plugin_module", "plugin_attribute"]


def import_plugin_module(module: str, *, distribution: str, wanted: str) -> ModuleType:
    """Import the plugin module `module` for the kernel path `wanted`.

    A missing plugin, or a module the installed version lacks, is a `MissingPluginError` (an
    `ImportError`) saying what to install. Any other import failure is the plugin's own (a
    library it needs, a bug) and propagates unchanged: calling it "not installed" would send
    the user to reinstall something that is there."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not missing or not (module == missing or module.startswith(f"{missing}.")):
            raise
        if missing == module.split(".", 1)[0]:
            raise MissingPluginError(
                f"{wanted} is provided by the plugin {distribution}, which is not installed; "
                f"install it with {_install_hint(distribution)}",
                name=module,
            ) from None
        raise MissingPluginError(
            f"{wanted} needs the module {missing}, which the installed "
            f"{_installed(distribution)} does not have; upgrade it with "
            f"{_install_hint(distribution, upgrade=True)}",
            name=module,
        ) from exc


def plugin_attribute(module: ModuleType, name: str, *, distribution: str, wanted: str) -> Any:
    """`module.name`, or a `MissingPluginError` saying the installed plugin lacks it.

    An `ImportError` rather than the usual `AttributeError` because `from X import name`
    replaces an `AttributeError`'s message with its own, and this message is the useful one."""
    try:
        return getattr(module, name)
    except AttributeError:
        raise MissingPluginError(
            f"{wanted} is not provided by the installed {_installed(distribution)} "
            f"({module.__name__} has no {name!r}); upgrade it with "
            f"{_install_hint(distribution, upgrade=True)}, or see the plugin's documentation "
            "for what it supports",
            name=module.__name__,
        ) from None


def alias_plugin_module(alias: str, target: str, *, distribution: str) -> None:
    """Make the module being imported as `alias` be the plugin's module `target` itself.

    Called by a one-line module of the kernel while the import system loads it: replacing its
    own `sys.modules` entry makes every form of import (`import a.b`, `from a.b import X`,
    `importlib.import_module`) return the plugin's module, because the import system reads
    the module back from `sys.modules` once the file has run. There is never a second copy of
    the plugin's module, so its classes are the same objects under both names."""
    sys.modules[alias] = import_plugin_module(target, distribution=distribution, wanted=alias)


def _installed(distribution: str) -> str:
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:  # importable from a source folder, not installed
        return distribution


def _install_hint(distribution: str, *, upgrade: bool = False) -> str:
    # The first-party plugins are not published yet, so the checkout path is the one that
    # works today; penguiflow.plugins words driver hints the same way.
    flag = "-U " if upgrade else ""
    return (
        f"`pip install {flag}{distribution}` "
        f"(from a checkout: `pip install {flag}./plugins/{distribution}`)"
    )
