"""`penguiflow.resources.redact_url`: no password of a URL reaches a message, log or repr."""

from __future__ import annotations

import pytest

from penguiflow.bus import BusClosedError
from penguiflow.resources import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/flows", "postgresql://app:***@db:5432/flows"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://user:s3cret@cache.example/1", "rediss://user:***@cache.example/1"),
        ("unix://:s3cret@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        # Schemes are case-insensitive; so is masking.
        ("REDIS://:s3cret@h:6379/0", "REDIS://:***@h:6379/0"),
        ("Postgres://app:s3cret@db/x", "Postgres://app:***@db/x"),
        # Raw `@`, `:` and `/` in a password (not percent-encoded) are masked whole.
        ("redis://:p@ss:w/rd@h:6379/0", "redis://:***@h:6379/0"),
        ("postgresql://app:s3%40cret@db/x", "postgresql://app:***@db/x"),
        # IPv6 hosts, and URLs urlsplit refuses (an unclosed bracket, a bad port).
        ("redis://:s3cret@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://:s3cret@[::1", "redis://:***@[::1"),
        ("redis://:s3cret@h:port/0", "redis://:***@h:port/0"),
        # Secrets as parameters: redis-py's and libpq's query strings, libpq keyword strings.
        (
            "postgresql://db/x?sslmode=require&password=s3cret",
            "postgresql://db/x?sslmode=require&password=***",
        ),
        ("redis://h/0?Password=s3cret", "redis://h/0?Password=***"),
        ("host=db password=s3cret user=app", "host=db password=*** user=app"),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url) and "s3%40cret" not in redact_url(url)
    assert redact_url(shown) == shown  # masking twice changes nothing


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://user@h:6379/0",  # a user name alone is not a secret
        "postgresql://app:@db/x",  # an empty password: nothing to hide
        "sqlite:///var/flows.db",
        "memory://",
        "local",
        "redis://h:6379/0 as worker@box",  # an `@` after the URL is not its userinfo
        "",
    ],
)
def test_urls_without_a_secret_are_unchanged(url: str) -> None:
    assert redact_url(url) == url


def test_every_url_in_a_message_or_repr_is_masked() -> None:
    message = (
        "RedisRuntime('redis://:one@h:6379/0', prefix='p') could not reach "
        "postgresql://app:two@db/x; see redis://h:6379/0"
    )
    assert redact_url(message) == (
        "RedisRuntime('redis://:***@h:6379/0', prefix='p') could not reach "
        "postgresql://app:***@db/x; see redis://h:6379/0"
    )


def test_closed_errors_name_the_resource_without_its_password() -> None:
    class Bus:
        url = "redis://:s3cret@h:6379/0"

    error = BusClosedError(Bus())
    assert error.bus_name == "Bus at redis://:***@h:6379/0" and "s3cret" not in str(error)


def test_a_driver_that_builds_the_wrong_thing_is_named_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from penguiflow import Node, NodePolicy, create
    from penguiflow.errors import InvalidTypeError

    async def step(message: object, ctx: object) -> object:
        return message

    monkeypatch.setattr("penguiflow.plugins.resolve_driver", lambda kind, spec: object())
    with pytest.raises(InvalidTypeError) as info:
        create(
            Node(step, name="s", policy=NodePolicy(validate="none")).to(),
            state_store="odd://app:s3cret@h/0",
        )
    assert "state_store='odd://app:***@h/0'" in str(info.value) and "s3cret" not in str(info.value)


def test_require_server_names_the_server_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from penguiflow.testing import require_server

    with socket.socket() as sock:  # a port nothing listens on once this block ends
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        require_server(f"redis://:s3cret@127.0.0.1:{port}/0", default_port=1, how_to_start="x")
    assert f"redis://:***@127.0.0.1:{port}/0" in str(info.value) and "s3cret" not in str(info.value)
