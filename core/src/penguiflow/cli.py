"""The `penguiflow` command line: `penguiflow plugins list [--json]`, `penguiflow worker`."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import click

from ._version import __version__

__all__ = ["cli", "main"]

_COLUMNS = ("name", "group", "distribution", "version", "status", "error")


@click.group()
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
    rows = [[str(getattr(r, c) or "") for c in _COLUMNS] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(_COLUMNS)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)))
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    for record in records:
        if record.remedy and record.status in ("failed", "skipped"):
            click.echo(f"  {record.name}: {record.remedy}")


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
def worker_command(
    target: str, runtime_spec: str, nodes: tuple[str, ...], concurrency: int | None
) -> None:
    """Run the nodes of the flow TARGET ('module:attribute') for a distributed runtime.

    TARGET names a flow, or a function with no arguments that returns a flow or a
    (flow, registry) pair. Stops cleanly on SIGINT or SIGTERM: messages in progress finish,
    messages not yet started stay queued for other workers.
    """
    from .plugins import resolve_driver
    from .runtime import WorkerRuntime, load_flow_target

    try:
        flow_target = load_flow_target(target)
        for name in nodes:
            flow_target.definition.node(name)
    except (ValueError, KeyError) as exc:
        raise click.UsageError(str(exc.args[0] if exc.args else exc)) from None
    try:
        driver = resolve_driver("runtime", runtime_spec)
    except Exception as exc:
        raise click.UsageError(str(exc)) from None
    if not isinstance(driver, WorkerRuntime):
        raise click.UsageError(
            f"the runtime {runtime_spec!r} runs flows inside one process and has no workers; "
            "choose a distributed runtime such as redis://127.0.0.1:6379/0 "
            "(pip install penguiflow-redis)"
        )

    def ready(description: str) -> None:
        click.echo(f"penguiflow worker ready: {description}", err=True)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await driver.serve_worker(
            flow_target, nodes=nodes, concurrency=concurrency, stop=stop, on_ready=ready
        )

    asyncio.run(serve())
    click.echo("penguiflow worker stopped", err=True)
    sys.stdout.flush()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
