"""Driver kinds (one entry-point group each) and choosing one driver by name or URL scheme.

Discovery reads metadata only; the chosen driver alone is imported, from its entry point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError, describe_exception
from ._discovery import Candidate, PluginRecord, discover
from ._errors import DriverConflictError, DriverNotFoundError, PluginError, PluginLoadError
from ._settings import PluginSettings

__all__ = [
    "DRIVER_KINDS",
    "DriverKind",
    "build_every_driver",
    "driver_key",
    "install_hint",
    "load_driver",
    "resolve_driver",
]


@dataclass(frozen=True, slots=True)
class DriverKind:
    """A kind of driver: its entry-point group, how a spec selects one, who ships which."""

    kind: str
    group: str
    label: str
    by_scheme: bool
    #: name -> distribution that provides it, for "install it with ..." hints
    providers: Mapping[str, str] = field(default_factory=dict)


DRIVER_KINDS: dict[str, DriverKind] = {
    kind.kind: kind
    for kind in (
        DriverKind(
            "state_store",
            "penguiflow.state_stores",
            "state store",
            by_scheme=True,
            providers={
                "redis": "penguiflow-redis",
                "redis+cluster": "penguiflow-redis",
                "redis+sentinel": "penguiflow-redis",
                "postgresql": "penguiflow-postgres",
                "postgres": "penguiflow-postgres",
            },
        ),
        DriverKind(
            "message_bus",
            "penguiflow.message_buses",
            "message bus",
            by_scheme=True,
            providers={
                "redis": "penguiflow-redis",
                "redis+cluster": "penguiflow-redis",
                "redis+sentinel": "penguiflow-redis",
            },
        ),
        DriverKind(
            "runtime",
            "penguiflow.runtimes",
            "runtime",
            by_scheme=False,
            providers={
                "redis": "penguiflow-redis",
                "redis+cluster": "penguiflow-redis",
                "redis+sentinel": "penguiflow-redis",
            },
        ),
        DriverKind(
            "llm_adapter",
            "penguiflow.llm_adapters",
            "LLM adapter",
            by_scheme=False,
            providers={"openai": "penguiflow-openai", "anthropic": "penguiflow-anthropic"},
        ),
        # Its own kind, not an `llm_adapter` option: an embeddings client has another
        # protocol (`EmbeddingsClient.embed`), and one name may mean both (`openai`).
        DriverKind(
            "embeddings",
            "penguiflow.embeddings",
            "embeddings client",
            by_scheme=False,
            providers={"openai": "penguiflow-openai"},
        ),
        DriverKind(
            "memory_strategy",
            "penguiflow.memory_strategies",
            "memory strategy",
            by_scheme=False,
            # `none` and `truncation` are the kernel's own
            providers={"rolling_summary": "penguiflow-planner"},
        ),
        DriverKind(
            "join_strategy",
            "penguiflow.join_strategies",
            "join strategy",
            by_scheme=False,
        ),
    )
}


def driver_key(kind: DriverKind, spec: str) -> str:
    """The entry-point name a spec selects: the URL scheme, or the name itself.

    Runtimes accept both (`local`, `redis://host:6379/0`)."""
    if "://" in spec:
        return spec.split("://", 1)[0].lower()
    if kind.by_scheme:
        raise ConfigurationError(
            f"{kind.label} {spec!r} is not a URL; pass one such as 'memory://' or "
            f"'sqlite:///path/to/flows.db' (the scheme chooses the driver)"
        )
    return spec


def _missing(kind: DriverKind, key: str, candidates: list[Candidate]) -> DriverNotFoundError:
    word = "scheme" if kind.by_scheme else "name"
    usable = sorted({c.record.name for c in candidates if c.record.status == "available"})
    blocked = [c.record for c in candidates if c.record.name == key]
    installed = ", ".join(usable) or "none"
    if blocked:
        record = blocked[0]
        why = record.error or record.status
        return DriverNotFoundError(
            f"the {kind.label} for {word} {key!r} from {record.distribution} is {record.status}"
            f" ({why}); installed and usable: {installed}. {record.remedy or ''}".rstrip()
        )
    provider = kind.providers.get(key)
    hint = (
        f"install it with {install_hint(provider)}"
        if provider
        else f"install a plugin that registers {key!r} in the entry-point group {kind.group!r}"
    )
    return DriverNotFoundError(
        f"no {kind.label} for {word} {key!r}; installed: {installed}; {hint}"
    )


def install_hint(distribution: str) -> str:
    """How to install a first-party plugin: by name, and from a checkout of the repository.

    The first-party plugins are not published (and PyPI's `penguiflow` is the 3.x library,
    which no plugin's `penguiflow>=4.0,<5` accepts), so the path into a checkout is the one
    that works today."""
    return f"`pip install {distribution}` (from a checkout: `pip install ./plugins/{distribution}`)"


def _describe(record: PluginRecord) -> str:
    return f"{record.value} from {record.distribution} {record.version}"


def _kind(kind_name: str) -> DriverKind:
    kind = DRIVER_KINDS.get(kind_name)
    if kind is None:
        raise ConfigurationError(
            f"unknown driver kind {kind_name!r}; choose one of {', '.join(sorted(DRIVER_KINDS))}"
        )
    return kind


def _conflict(kind: DriverKind, key: str, matching: list[Candidate]) -> DriverConflictError:
    sides = " and ".join(_describe(c.record) for c in matching)
    return DriverConflictError(
        f"two {kind.label} drivers claim {key!r}: {sides}; uninstall one, or disable one "
        f"with PENGUIFLOW_DISABLE_PLUGINS={kind.group}:{key}"
    )


def resolve_driver(
    kind_name: str, spec: str, *, settings: PluginSettings | None = None, **options: Any
) -> Any:
    """Build the driver of `kind_name` selected by `spec` (a URL or a name).

    The entry point names a class or factory called as `factory(spec, **options)`.
    """
    kind = _kind(kind_name)
    key = driver_key(kind, spec)
    settings = settings if settings is not None else PluginSettings.from_env()
    candidates = discover(kind.group, kind.kind, settings)
    matching = [c for c in candidates if c.record.name == key and c.record.status == "available"]
    if not matching:
        raise _missing(kind, key, candidates)
    if len(matching) > 1:
        raise _conflict(kind, key, matching)
    factory = load_driver(kind, matching[0])
    return factory(spec, **options)


def build_every_driver(
    kind_name: str, settings: PluginSettings
) -> tuple[dict[str, Any], list[PluginError]]:
    """Every usable driver of a name-chosen kind, built with no options, by name; and what
    went wrong with the others (conflicts, imports or factories that failed).

    For kinds whose every member is offered at once (the planner lists every join strategy
    to its model): one broken driver is reported, not allowed to hide the rest."""
    kind = _kind(kind_name)
    by_name: dict[str, list[Candidate]] = {}
    for candidate in discover(kind.group, kind.kind, settings):
        if candidate.record.status == "available":
            by_name.setdefault(candidate.record.name, []).append(candidate)
    built: dict[str, Any] = {}
    problems: list[PluginError] = []
    for name, matching in sorted(by_name.items()):
        if len(matching) > 1:
            problems.append(_conflict(kind, name, matching))
            continue
        try:
            factory = load_driver(kind, matching[0])
        except PluginError as exc:
            problems.append(exc)
            continue
        try:
            built[name] = factory(name)
        except Exception as exc:  # a factory bug is this driver's problem, not the caller's
            problems.append(
                PluginLoadError(
                    f"{kind.label} driver {name!r} ({_describe(matching[0].record)}) failed to "
                    f"build: {type(exc).__name__}: {describe_exception(exc)}; fix or reinstall "
                    f"{matching[0].record.distribution}, or disable it with "
                    f"PENGUIFLOW_DISABLE_PLUGINS={kind.group}:{name}"
                )
            )
    return built, problems


def load_driver(kind: DriverKind, candidate: Candidate) -> Any:
    """Import the chosen driver with stevedore's `DriverManager` (only now: a driver is
    imported when chosen), fed the entry point discovery found.

    stevedore keeps process-wide caches of each group's entry points (`ExtensionManager.
    ENTRY_POINT_CACHE` and a path cache keyed on `sys.path`), so a distribution installed after
    the group was first used was listed by discovery yet "not found" when chosen. The manager
    therefore reads its one entry point from discovery (`list_entry_points`, the documented
    place to say where extensions come from) instead of its caches; discovery already settled
    the name, conflicts, the disable list and the kernel requirement."""
    from stevedore import DriverManager

    record = candidate.record
    failures: list[BaseException] = []

    class ChosenDriver(DriverManager):  # type: ignore[type-arg]
        def list_entry_points(self) -> list[Any]:
            return [candidate.entry_point]

    def on_failure(manager: Any, entry_point: Any, exc: BaseException) -> None:
        failures.append(exc)

    try:
        manager = ChosenDriver(
            namespace=kind.group,
            name=record.name,
            invoke_on_load=False,
            on_load_failure_callback=on_failure,
        )
    except Exception as exc:  # stevedore reports a failed load as "no matches"
        error = failures[0] if failures else exc
        raise PluginLoadError(
            f"{kind.label} driver {record.name!r} ({_describe(record)}) failed to load: "
            f"{type(error).__name__}: {describe_exception(error)}; reinstall "
            f"{record.distribution} or disable it with "
            f"PENGUIFLOW_DISABLE_PLUGINS={kind.group}:{record.name}"
        ) from error
    return manager.driver
