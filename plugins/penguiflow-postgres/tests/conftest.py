"""Tests run against a real PostgreSQL server (scripts/services/postgres.sh start)."""

from __future__ import annotations

import os

import pytest

from penguiflow.testing import require_server


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return require_server(
        os.environ.get(
            "PENGUIFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5439/penguiflow_test"
        ),
        default_port=5432,
        how_to_start="start one with `bash scripts/services/postgres.sh start` "
        "or set PENGUIFLOW_POSTGRES_URL",
    )
