"""`penguiflow worker` never prints a runtime URL's password: not in its ready line, not in
its usage errors, whatever the runtime driver puts in its own messages."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from penguiflow.cli import cli
from penguiflow.testing import DistributionSite

SECRET = "s3cret-Pa55"

# A third-party runtime driver that quotes its URL, password included, in what it says.
CHATTY_RUNTIME = """
class ChattyRuntime:
    name = "chatty"

    def __init__(self, url, **options):
        if "refuse" in url:
            from penguiflow.errors import ConfigurationError

            raise ConfigurationError(f"cannot use {url}")
        self.url = url

    def create_flow(self, definition, **options):
        raise NotImplementedError

    async def aclose(self):
        pass

    async def serve_worker(
        self, target, *, nodes=(), concurrency=None, stop, on_ready=None, **options
    ):
        on_ready(f"nodes of {target.source} on {self.url}")
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"redactapp_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from penguiflow import Node, NodePolicy, create

            async def step(message, ctx):
                return message

            def build():
                return create(Node(step, name="step", policy=NodePolicy(validate="none")).to())
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def chatty(penguiflow_site: DistributionSite) -> None:
    penguiflow_site.install(
        "pf-chatty-runtime",
        {"penguiflow.runtimes": {"chatty": "pf_chatty_runtime:ChattyRuntime"}},
        {"pf_chatty_runtime": CHATTY_RUNTIME},
    )


def test_the_ready_line_masks_the_password(app: str, chatty: None) -> None:
    url = f"chatty://app:{SECRET}@127.0.0.1:1/0"
    result = CliRunner().invoke(cli, ["worker", f"{app}:build", "--runtime", url])
    assert result.exit_code == 0, result.output
    assert "penguiflow worker ready: nodes of" in result.output
    assert "chatty://app:***@127.0.0.1:1/0" in result.output
    assert SECRET not in result.output


def test_usage_errors_mask_the_password(app: str, chatty: None) -> None:
    runner = CliRunner()
    refused = runner.invoke(
        cli, ["worker", f"{app}:build", "--runtime", f"chatty://refuse:{SECRET}@h/0"]
    )
    assert refused.exit_code == 2 and "cannot use chatty://refuse:***@h/0" in refused.output
    assert SECRET not in refused.output
    # Mixed case routes to the same driver: schemes are case-insensitive.
    upper = runner.invoke(
        cli, ["worker", f"{app}:build", "--runtime", f"CHATTY://refuse:{SECRET}@h/0"]
    )
    assert upper.exit_code == 2 and "CHATTY://refuse:***@h/0" in upper.output
    assert SECRET not in upper.output
