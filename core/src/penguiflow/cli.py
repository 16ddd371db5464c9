"""The `penguiflow` command line: `penguiflow plugins list [--json]`."""

from __future__ import annotations

import json

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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
