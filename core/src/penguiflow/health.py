"""Liveness and readiness of a long-running process, from checks of its real dependencies.

A PenguiFlow process that runs for long (`penguiflow worker`, the session server, an A2A
server) answers two questions over HTTP, without authentication:

- `GET /healthz` (liveness): the process answers. `200 {"status": "ok"}`.
- `GET /readyz` (readiness): every check passes. `200` when ready, `503` when not, with a
  JSON body naming each check and its result:
  `{"status": "ready", "checks": {"redis": {"status": "ok", "detail": "...",
  "duration_ms": 0.4}, ...}}`.

A check is an async function of no arguments: it returns a short detail (or None) when the
dependency works and raises when it does not. `HealthChecks` runs them concurrently, each
under a time limit, and turns failures into text with passwords masked (the body is served
to anyone who can reach the port, so it never quotes secrets). `default_checks()` gives the
checks every process shares (plugins loaded without failures; the state store writable);
a runtime driver adds its own through `SupportsHealthChecks` (the redis runtime: Redis
answers). `serve_health` serves the two paths from a plain asyncio server, for processes
without a web framework (the worker); the servers route them through penguiflow-serve.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ._health_server import HealthServer, liveness_body, serve_health
from ._redaction import redact_url
from .errors import ConfigurationError, PenguiFlowError, describe_exception

__all__ = [
    "HEALTH_KEY",
    "CheckResult",
    "HealthCheck",
    "HealthCheckFailed",
    "HealthChecks",
    "HealthReport",
    "HealthServer",
    "SupportsHealthChecks",
    "default_checks",
    "liveness_body",
    "plugins_check",
    "serve_health",
    "state_store_check",
]

#: A readiness check: returns a short detail (or None) when healthy, raises when not.
HealthCheck = Callable[[], Awaitable[str | None]]

#: The `memory_state` key the state-store check writes (one small document per store).
HEALTH_KEY = "penguiflow:health"

#: A detail longer than this is cut: the body is for people and probes, not for tracebacks.
_MAX_DETAIL = 300


class HealthCheckFailed(PenguiFlowError, RuntimeError):
    """Raised by a check to fail with exactly this message (no exception type in front)."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome: `ok`, a short `detail` and how long it took."""

    name: str
    ok: bool
    detail: str
    duration_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "failed",
            "detail": self.detail,
            "duration_ms": round(self.duration_ms, 3),
        }


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The results of one readiness run; ready when every check passed."""

    checks: tuple[CheckResult, ...]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def status_code(self) -> int:
        """The HTTP status `/readyz` answers with: 200 ready, 503 not."""
        return 200 if self.ready else 503

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "checks": {check.name: check.to_dict() for check in self.checks},
        }


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, HealthCheckFailed):
        text = describe_exception(exc)
    else:
        text = f"{type(exc).__name__}: {describe_exception(exc)}"
    text = redact_url(text)
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


class HealthChecks:
    """Named readiness checks, run concurrently, each within `timeout_s` (a check that does
    not answer in time has failed: a hung dependency is not a ready one)."""

    def __init__(self, *, timeout_s: float = 2.0) -> None:
        if not timeout_s > 0:
            raise ConfigurationError(f"timeout_s must be positive seconds, got {timeout_s!r}")
        self.timeout_s = timeout_s
        self._checks: dict[str, tuple[HealthCheck, float]] = {}

    def add(self, name: str, check: HealthCheck, *, timeout_s: float | None = None) -> None:
        """Add `check` under `name` (a name already used is an error: remove it first)."""
        if not name or not isinstance(name, str):
            raise ConfigurationError(f"a health check needs a non-empty name, got {name!r}")
        if name in self._checks:
            raise ConfigurationError(
                f"a health check named {name!r} is already registered; pick another name or "
                "remove the first with remove()"
            )
        if not callable(check):
            raise ConfigurationError(
                f"health check {name!r} must be an async function of no arguments, got "
                f"{type(check).__name__}"
            )
        limit = self.timeout_s if timeout_s is None else timeout_s
        if not limit > 0:
            raise ConfigurationError(f"timeout_s must be positive seconds, got {timeout_s!r}")
        self._checks[name] = (check, limit)

    def remove(self, name: str) -> None:
        """Remove the check `name` (nothing happens when there is none)."""
        self._checks.pop(name, None)

    def names(self) -> list[str]:
        return list(self._checks)

    async def run(self) -> HealthReport:
        """Run every check at once; the report keeps the order they were added in."""
        results = await asyncio.gather(
            *(self._run_one(name, check, limit) for name, (check, limit) in self._checks.items())
        )
        return HealthReport(tuple(results))

    @staticmethod
    async def _run_one(name: str, check: HealthCheck, limit: float) -> CheckResult:
        started = time.perf_counter()
        try:
            detail = await asyncio.wait_for(check(), timeout=limit)
        except TimeoutError:
            ok, text = False, f"no answer within {limit:g}s"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ok, text = False, _failure_text(exc)
        else:
            ok, text = True, redact_url(str(detail)) if detail else "ok"
        return CheckResult(name, ok, text, (time.perf_counter() - started) * 1000)


@runtime_checkable
class SupportsHealthChecks(Protocol):
    """A driver (a runtime, say) that knows how to check its own dependencies."""

    def health_checks(self) -> Mapping[str, HealthCheck]: ...


def plugins_check() -> HealthCheck:
    """Fails when a hook plugin failed to load or one of its hooks raised. Only plugin names
    are shown (their errors can quote configuration): `penguiflow plugins check` on the host
    prints the errors."""

    async def check() -> str:
        from .plugins import active_hooks

        host = active_hooks()
        if host is None:
            return "no hook plugins loaded"
        failed = sorted(r.name for r in host.records if r.status == "failed")
        raised = sorted(f"{plugin}.{hook}" for plugin, hook in host.hook_failures)
        problems = []
        if failed:
            problems.append(f"failed to load: {', '.join(failed)}")
        if raised:
            problems.append(f"hooks that raised: {', '.join(raised)}")
        if problems:
            raise HealthCheckFailed(
                "; ".join(problems) + " (run `penguiflow plugins check` on this host for the "
                "errors)"
            )
        loaded = sum(1 for r in host.records if r.status == "loaded")
        return f"{loaded} hook plugin(s) loaded"

    return check


def state_store_check(store: Any) -> HealthCheck:
    """Checks `store` as deeply as its methods allow: a store with the `memory_state`
    capability gets a small document written and read back under `HEALTH_KEY` (writable);
    otherwise a read (`list_tasks` or `load_history` of a name no flow uses) shows it
    reachable. The detail says which."""
    kind = type(store).__name__

    async def check() -> str:
        save = getattr(store, "save_memory_state", None)
        load = getattr(store, "load_memory_state", None)
        if callable(save) and callable(load):
            await save(HEALTH_KEY, {"checked_at": time.time()})
            if await load(HEALTH_KEY) is None:
                raise HealthCheckFailed(f"{kind} accepted a write but reading it back gave nothing")
            return f"{kind} writable"
        for method in ("list_tasks", "load_history"):
            read = getattr(store, method, None)
            if callable(read):
                await read(HEALTH_KEY)
                return f"{kind} reachable (read probe: it has no memory_state to write to)"
        return f"{kind} has no method a probe can call; not checked"

    return check


def default_checks(*, state_store: Any = None, timeout_s: float = 2.0) -> HealthChecks:
    """The checks every process shares: `plugins`, and `state_store` when one is given."""
    checks = HealthChecks(timeout_s=timeout_s)
    checks.add("plugins", plugins_check())
    if state_store is not None:
        checks.add("state_store", state_store_check(state_store))
    return checks
