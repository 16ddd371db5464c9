"""`mcp-server-git` from the package registry (a server nobody here wrote) over stdio, on a
real git repository: its annotations become the catalog's side effects and safety notes, and
a change made through its tools shows in git itself."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from penguiflow_mcp import MCPConnector, MCPServerConfig


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "notes.txt").write_text("first\n")
    git = ["git", "-C", str(path), "-c", "user.email=t@example.com", "-c", "user.name=Test"]
    subprocess.run([*git, "add", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "initial"], check=True)
    return path


def git_server(repo: Path) -> MCPServerConfig:
    command = Path(sys.executable).parent / "mcp-server-git"
    if not command.exists():
        pytest.fail("mcp-server-git is not installed in this environment (pip install it)")
    # An identity of its own: a fresh machine has no git user configured for commits.
    identity = {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return MCPServerConfig(
        name="git", command=str(command), args=["--repository", str(repo)], env=identity
    )


def test_annotations_become_side_effects_and_safety_notes(repo: Path) -> None:
    async def scenario() -> None:
        async with MCPConnector(git_server(repo)) as connector:
            specs = {spec.name: spec for spec in await connector.tool_specs()}
        status = specs["git.git_status"]
        assert status.side_effects == "read"
        assert status.safety_notes is None
        reset = specs["git.git_reset"]
        assert reset.side_effects == "write"
        assert reset.safety_notes is not None and "destructive" in reset.safety_notes
        commit = specs["git.git_commit"]
        assert commit.side_effects == "write"
        assert commit.safety_notes is not None and "additive" in commit.safety_notes

    asyncio.run(scenario())


def test_a_commit_made_through_the_server_is_in_the_repository(repo: Path) -> None:
    (repo / "notes.txt").write_text("first\nsecond\n")

    async def scenario() -> str:
        async with MCPConnector(git_server(repo)) as connector:
            diff = await connector.call_tool("git_diff_unstaged", {"repo_path": str(repo)})
            assert "+second" in diff.text
            await connector.call_tool("git_add", {"repo_path": str(repo), "files": ["notes.txt"]})
            await connector.call_tool(
                "git_commit", {"repo_path": str(repo), "message": "add a second line"}
            )
            log = await connector.call_tool("git_log", {"repo_path": str(repo), "max_count": 1})
            return log.text

    assert "add a second line" in asyncio.run(scenario())
    subject = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%s"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert subject == "add a second line"
