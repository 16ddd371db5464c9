"""The kernel's layers: every module imports only modules at its own layer or below.

Lower layers never import upward (pluggy's `_callers`/`_manager` split and trio's `_core` are
the models): the node engine knows nothing of flows, a context nothing of `PenguiFlow`. Every
import counts, including those under `TYPE_CHECKING` and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import penguiflow

PACKAGE = Path(penguiflow.__file__).parent

#: The runtime's layers, lowest first. Modules of one layer may not import each other.
RUNTIME_LAYERS: list[set[str]] = [
    {"_graph"},  # endpoints, edges, graph checks
    # the engine, the contracts, and what every runtime's flow shares
    {"_definition", "_engine", "_events", "_lifecycle", "_supervisor", "_flow_resource"},
    {"_playbook"},  # subflows, through the Flow protocol
    {"_context"},  # a node's view of its edges
    {"_rookery", "_local_outbox", "_worker"},  # the in-process runtime's parts
    {"_flow"},  # the in-process runtime
]

#: Above the runtime: the public facade and the features built on flows (free to import down).
FACADE = {
    "__init__", "_create", "core", "runtime", "_builtin_drivers", "patterns", "policies",
    "remote", "streaming", "viz", "testkit", "cli", "testing",
    # PenguiFlow's import paths that plugins serve (penguiflow.planner, .sessions, .steering)
    "_plugin_imports", "planner", "artifacts", "sessions", "steering",
    # log lines carry the trace id of the message a node handles (the engine's context)
    "logging",
}  # fmt: skip


def _rank(module: str) -> int:
    """0 for the base (data types, protocols of every plugin kind, the plugin host), the
    runtime's layers from 1, the facade last."""
    top = module.split(".")[0]
    for index, layer in enumerate(RUNTIME_LAYERS, start=1):
        if top in layer:
            return index
    if top in FACADE:
        return len(RUNTIME_LAYERS) + 1
    return 0


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts)


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, node.module] if node.module else base)
                names = (
                    [target]
                    if node.module
                    else [f"{target}.{a.name}".strip(".") for a in node.names]
                )
            elif node.module and node.module.startswith("penguiflow."):
                names = [node.module.removeprefix("penguiflow.")]
            else:
                continue
            found.extend((node.lineno, name.strip(".")) for name in names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("penguiflow."):
                    found.append((node.lineno, alias.name.removeprefix("penguiflow.")))
    return [(line, name) for line, name in found if name]


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_module_imports_a_layer_above_it(path: Path) -> None:
    module = _module_name(path)
    rank = _rank(module)
    strict = 0 < rank <= len(RUNTIME_LAYERS)
    for line, target in _imports(path, module):
        target_rank = _rank(target)
        if target.split(".")[0] == module.split(".")[0]:
            continue  # inside one package (penguiflow.state, penguiflow.plugins, ...)
        assert target_rank <= rank, (
            f"{path.relative_to(PACKAGE)}:{line} imports {target} (layer {target_rank}) from "
            f"layer {rank}: lower layers must not import upward; pass what is needed in "
            "(a protocol or a callable) instead"
        )
        if strict:
            assert target_rank < rank, (
                f"{path.relative_to(PACKAGE)}:{line} imports {target} from its own layer"
            )


def test_every_runtime_module_is_placed() -> None:
    placed = set().union(*RUNTIME_LAYERS) | FACADE
    private = {p.stem for p in PACKAGE.glob("_*.py")} - {"__init__", "_version"}
    base = {"_circuit", "_chunks", "_traces", "_redaction", "_health_server", "_health_probe"}
    assert private - placed - base == set(), "place new private modules in a layer"
