"""A command's TARGET: `module:attribute`, the object itself or a factory that makes it."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from penguiflow.errors import describe_exception

__all__ = ["load_target", "resolve_target"]


def load_target(target: str, *, example: str = "myapp:build") -> Any:
    """The object `module:attribute` names (`attribute` may be dotted). Like `python -m`, a
    module in the current directory is found. Errors are `click.UsageError`s saying what to
    fix; an ImportError raised inside the user's module propagates as it is."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise click.UsageError(
            f"TARGET must read 'module:attribute' (e.g. {example}), got {target!r}"
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the target's own module (or a package above it) missing is the user's typo;
        # a module the target imports that is missing is a real error of theirs.
        if exc.name and module_name.startswith(exc.name):
            raise click.UsageError(
                f"cannot import {module_name!r}: run from the folder that holds it, or install "
                "the package it belongs to"
            ) from None
        raise
    try:
        for part in attribute.split("."):
            value = getattr(value, part)
    except AttributeError:
        raise click.UsageError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return value


async def resolve_target(
    target: str, *, is_served: Callable[[Any], bool], example: str = "myapp:build"
) -> tuple[Any, bool]:
    """`(value, made)`: what TARGET names, or, when that is not something `is_served` accepts
    but is callable, what calling it (sync or async, no arguments) returns; `made` says it was
    made here, so the command closes it when it stops. The caller checks the value's kind
    (a factory may return anything). A failing import or factory becomes a
    `click.UsageError` naming TARGET, the error and where it was raised."""
    try:
        value = load_target(target, example=example)
        if is_served(value) or not callable(value):
            return value, False
        made = value()
        if inspect.isawaitable(made):
            made = await made
        return made, True
    except click.UsageError:
        raise
    except Exception as exc:  # the user's module or factory failed
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise click.UsageError(
            f"building {target!r} failed: {type(exc).__name__}: {describe_exception(exc)} "
            f"(at {where.filename}:{where.lineno})"
        ) from None
