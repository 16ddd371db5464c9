"""The `penguiflow` command line: `penguiflow plugins list|check [--json]`, `penguiflow worker`,
`penguiflow health URL`."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import traceback
from typing import TYPE_CHECKING, Any

import click

from ._version import __version__
from .logging import log_options

if TYPE_CHECKING:
    from .health import HealthServer

__all__ = ["cli", "main"]

_COLUMNS = ("name", "group", "distribution", "version", "status", "error")


#: Entry-point group of plugin subcommands: each entry names a `click.Command`.
COMMANDS_GROUP = "penguiflow.commands"


def _unavailable(name: str, reason: str) -> click.Command:
    """A stand-in for a plugin command that cannot run: it says why, and exits 1."""

    def fail() -> None:
        raise click.ClickException(f"the command {name!r} is unavailable: {reason}")

    return click.Command(name, callback=fail, help=f"(unavailable: {reason})")


class _PluginCommandGroup(click.Group):
    """The `penguiflow` group, extended by plugins through `penguiflow.commands` entry points.

    Listing (`penguiflow --help` included) reads installed metadata only; a plugin's command
    is imported when it is run or its own `--help` describes it, so a broken or heavy plugin
    never slows or stops the built-in commands. A
    built-in name always wins; two plugins claiming one name is an error naming both."""

    def _plugin_entries(self) -> dict[str, list[Any]]:
        from .plugins import PluginSettings
        from .plugins._discovery import discover

        found: dict[str, list[Any]] = {}
        for candidate in discover(COMMANDS_GROUP, "command", PluginSettings.from_env()):
            if candidate.record.name not in self.commands:
                found.setdefault(candidate.record.name, []).append(candidate)
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        plugin_names = [
            name
            for name, candidates in self._plugin_entries().items()
            if any(c.record.status == "available" for c in candidates)
        ]
        return sorted({*super().list_commands(ctx), *plugin_names})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's default loads every command for its one-line help, which would import each
        # plugin (and its web framework) just to print `penguiflow --help`. A plugin command's
        # line names the distribution it comes from instead; its own --help loads it.
        entries = self._plugin_entries()
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            builtin = super().get_command(ctx, name)
            if builtin is not None:
                if not builtin.hidden:
                    rows.append((name, builtin))
                continue
            candidates = entries[name]
            if len(candidates) > 1:
                owners = " and ".join(str(c.record.distribution) for c in candidates)
                line = f"(unavailable: {owners} both provide it)"
            else:
                record = candidates[0].record
                where = " ".join(str(part) for part in (record.distribution, record.version))
                line = f"From the plugin {where} (see its --help)."
            # A stand-in that only carries the line: click shortens it like any help text.
            rows.append((name, click.Command(name, help=line)))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        candidates = self._plugin_entries().get(cmd_name)
        if not candidates:
            return None
        if len(candidates) > 1:
            owners = " and ".join(str(c.record.distribution) for c in candidates)
            return _unavailable(
                cmd_name, f"{owners} both provide it; uninstall or disable one of them"
            )
        record = candidates[0].record
        if record.status != "available":
            return _unavailable(cmd_name, f"{record.status}: {record.error or record.remedy}")
        from .errors import describe_exception

        try:
            loaded = candidates[0].entry_point.load()
        except Exception as exc:
            return _unavailable(
                cmd_name,
                f"{record.distribution} failed to load {record.value}: "
                f"{type(exc).__name__}: {describe_exception(exc)}",
            )
        if not isinstance(loaded, click.Command):
            return _unavailable(
                cmd_name,
                f"{record.value} (from {record.distribution}) is a {type(loaded).__name__}, "
                "not a click command",
            )
        return loaded


@click.group(cls=_PluginCommandGroup)
@click.version_option(__version__, prog_name="penguiflow")
def cli() -> None:
    """PenguiFlow: typed async pipelines, and the plugins that extend them."""


@cli.group()
def plugins() -> None:
    """Inspect installed plugins and drivers."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@click.option(
    "--metadata-only",
    is_flag=True,
    help="Do not load hook plugins; report what the installed metadata says.",
)
def list_command(as_json: bool, metadata_only: bool) -> None:
    """List every installed hook plugin and driver with its status.

    Status is one of: loaded, available (a driver, imported only when chosen), disabled,
    failed, skipped (its penguiflow requirement does not match this kernel). A failed plugin
    is reported, not fatal: the exit code is 0.
    """
    from .plugins import PluginSettings, list_plugins

    # Listing must survive broken plugins even when strict mode is set for flows.
    settings = PluginSettings.from_env().merged(strict=False)
    records = list_plugins(settings, include_hooks=not metadata_only)
    if as_json:
        click.echo(json.dumps([record.to_dict() for record in records], indent=2))
        return
    _echo_table(_COLUMNS, [[str(getattr(r, c) or "") for c in _COLUMNS] for r in records])
    for record in records:
        if record.remedy and record.status in ("failed", "skipped"):
            click.echo(f"  {record.name}: {record.remedy}")


@plugins.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
def check_command(as_json: bool) -> None:
    """Import every installed driver and load every hook plugin; report each as ok or failed.

    `plugins list` reads metadata only, so a driver that cannot be imported is listed as
    available until a flow chooses it; this imports each one as choosing it would (nothing is
    built). Each row says ok, failed (with the error and a remedy), disabled or skipped (not
    imported). The exit code is 1 when any plugin failed, 0 otherwise.
    """
    from .errors import describe_exception
    from .plugins import PluginError, PluginSettings, check_plugins, check_result

    # Strict mode would stop at the first broken plugin; a check reports them all.
    try:
        records = check_plugins(PluginSettings.from_env().merged(strict=False))
    except PluginError as exc:  # what no single plugin owns: an unreadable PENGUIFLOW_CONFIG
        raise click.ClickException(describe_exception(exc)) from None
    results = [check_result(record) for record in records]
    if as_json:
        rows = [
            {**record.to_dict(), "result": result}
            for record, result in zip(records, results, strict=True)
        ]
        click.echo(json.dumps(rows, indent=2))
    else:
        columns = ("name", "group", "distribution", "version", "result", "error")
        _echo_table(
            columns,
            [
                [str(getattr(r, c, "") or "") for c in columns[:4]] + [result, r.error or ""]
                for r, result in zip(records, results, strict=True)
            ],
        )
        for record, result in zip(records, results, strict=True):
            if result == "failed" and record.remedy:
                click.echo(f"  {record.name}: {record.remedy}")
        counts = {name: results.count(name) for name in ("ok", "failed")}
        unchecked = len(results) - counts["ok"] - counts["failed"]
        click.echo(
            f"{counts['ok']} ok, {counts['failed']} failed, {unchecked} not checked "
            "(disabled or skipped)"
        )
    if "failed" in results:
        raise SystemExit(1)


def _echo_table(columns: tuple[str, ...], rows: list[list[str]]) -> None:
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@cli.command("worker")
@click.argument("target")
@click.option(
    "--runtime",
    "runtime_spec",
    required=True,
    envvar="PENGUIFLOW_RUNTIME",
    help="The runtime driver's URL, e.g. redis://127.0.0.1:6379/0 (env: PENGUIFLOW_RUNTIME).",
)
@click.option(
    "--node",
    "nodes",
    multiple=True,
    help="Serve only this node (repeatable); by default every node of the flow.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Messages processed at once per node in this process (driver default if unset).",
)
@click.option(
    "--connect-timeout",
    "connect_timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds to wait for the runtime's server at start before exiting with an error "
    "(driver default if unset; the redis runtime waits 30 s).",
)
@log_options(
    level_help="What the worker logs to stderr (takeovers, retries and dead letters are WARNING)."
)
@click.option(
    "--health-port",
    "health_port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve GET /healthz (alive) and /readyz (the runtime's server reachable, the worker "
    "consuming, plugins loaded) on this port; 0 picks a free one (printed). Off by default.",
)
@click.option(
    "--health-host",
    "health_host",
    default="127.0.0.1",
    show_default=True,
    help="Address the health endpoints bind (0.0.0.0 to let an orchestrator's probes in).",
)
def worker_command(
    target: str,
    runtime_spec: str,
    nodes: tuple[str, ...],
    concurrency: int | None,
    connect_timeout: float | None,
    log_level: str,
    log_format: str,
    health_port: int | None,
    health_host: str,
) -> None:
    """Run the nodes of the flow TARGET ('module:attribute') for a distributed runtime.

    TARGET names a flow, or a function with no arguments that returns a flow or a
    (flow, registry) pair. Stops cleanly on SIGINT or SIGTERM: messages in progress finish,
    messages not yet started stay queued for other workers.
    """
    from .errors import PenguiFlowError, describe_exception
    from .logging import configure_command_logging
    from .plugins import resolve_driver
    from .resources import redact_url
    from .runtime import WorkerRuntime, load_flow_target

    configure_command_logging(log_level, log_format.lower())
    try:
        flow_target = load_flow_target(target)
        for name in nodes:
            flow_target.definition.node(name)
    except (ValueError, KeyError) as exc:
        raise click.UsageError(str(exc.args[0] if exc.args else exc)) from None
    except Exception as exc:  # something else in the user's module
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise click.UsageError(
            f"loading the flow {target!r} failed: {type(exc).__name__}: "
            f"{describe_exception(exc)} (at {where.filename}:{where.lineno})"
        ) from None
    try:
        driver = resolve_driver("runtime", runtime_spec)
    except Exception as exc:
        raise click.UsageError(redact_url(describe_exception(exc))) from None
    if not isinstance(driver, WorkerRuntime):
        raise click.UsageError(
            f"the runtime {redact_url(runtime_spec)!r} runs flows inside one process and has no "
            "workers; choose a distributed runtime such as redis://127.0.0.1:6379/0 (pip install "
            "penguiflow-redis; from a checkout: pip install ./plugins/penguiflow-redis)"
        )

    consuming: list[str] = []

    def ready(description: str) -> None:
        # The driver describes itself: mask any URL it quotes, whoever wrote the driver.
        consuming.append(redact_url(description))
        click.echo(f"penguiflow worker ready: {consuming[-1]}", err=True)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        options: dict[str, Any] = {}
        if connect_timeout is not None:
            options["connect_timeout_s"] = connect_timeout
        health = None
        if health_port is not None:
            health = await _worker_health(
                driver, flow_target, stop, consuming, health_host, health_port
            )
            click.echo(f"penguiflow worker health: {health.url}", err=True)
        try:
            await driver.serve_worker(
                flow_target,
                nodes=nodes,
                concurrency=concurrency,
                stop=stop,
                on_ready=ready,
                **options,
            )
        finally:
            if health is not None:
                await health.aclose()

    try:
        asyncio.run(serve())
    except PenguiFlowError as exc:
        click.echo(f"penguiflow worker: {redact_url(describe_exception(exc))}", err=True)
        sys.exit(1)
    click.echo("penguiflow worker stopped", err=True)
    sys.stdout.flush()


async def _worker_health(
    driver: Any,
    flow_target: Any,
    stop: asyncio.Event,
    consuming: list[str],
    host: str,
    port: int,
) -> HealthServer:
    """The worker's health server: the shared checks, the driver's own (the redis runtime:
    Redis answers) and `worker` (the consumer loop runs: it has started and is not stopping)."""
    from .health import SupportsHealthChecks, default_checks, serve_health

    checks = default_checks(state_store=getattr(flow_target.flow, "state_store", None))
    if isinstance(driver, SupportsHealthChecks):
        for name, check in driver.health_checks().items():
            checks.add(name, check)

    async def worker() -> str:
        from .health import HealthCheckFailed

        if stop.is_set():
            raise HealthCheckFailed("stopping: finishing the messages in progress")
        if not consuming:
            raise HealthCheckFailed("starting: waiting for the runtime's server")
        return f"consuming {consuming[-1]}"

    checks.add("worker", worker)
    try:
        return await serve_health(checks, host=host, port=port)
    except OSError as exc:
        raise click.UsageError(
            f"cannot serve health on {host}:{port}: {exc.strerror or exc}; choose another "
            "--health-port (0 picks a free one) or --health-host"
        ) from None


@cli.command("health")
@click.argument("url")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds to wait for the answer.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer's JSON body as it came.")
def health_command(url: str, timeout_s: float, as_json: bool) -> None:
    """Check whether the PenguiFlow process at URL is ready.

    URL names a server (http://127.0.0.1:8000, or host:port), whose /readyz is asked, or a
    readiness endpoint itself (any URL with a path). Prints each check and its result. Exit
    code 0: ready; 1: answered, not ready; 2: nothing answered (down, wrong address).
    """
    from ._health_probe import probe, readiness_url
    from .errors import ConfigurationError

    try:
        target = readiness_url(url)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    answer = probe(target, timeout_s=timeout_s)
    if answer.status is None:
        click.echo(f"penguiflow health: cannot reach {target}: {answer.error}", err=True)
        sys.exit(2)
    ready = 200 <= answer.status < 300
    if as_json:
        click.echo(json.dumps(answer.body, indent=2) if answer.body is not None else answer.text)
    else:
        word = "ready" if ready else "not ready"
        click.echo(f"{word}: {target} answered {answer.status}")
        _echo_checks(answer.body, answer.text)
    sys.exit(0 if ready else 1)


def _echo_checks(body: Any, text: str) -> None:
    checks = body.get("checks") if isinstance(body, dict) else None
    if not isinstance(checks, dict) or not checks:
        shown = text.strip()
        if shown:
            click.echo("  " + (shown if len(shown) <= 200 else shown[:200] + "..."))
        return
    rows = []
    for name, result in checks.items():
        result = result if isinstance(result, dict) else {"status": str(result)}
        rows.append([str(result.get("status", "?")), str(name), str(result.get("detail", ""))])
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for status, name, detail in rows:
        click.echo(f"  {status.ljust(widths[0])}  {name.ljust(widths[1])}  {detail}".rstrip())


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
