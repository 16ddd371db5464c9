"""Push notifications: URL validation and the HTTP sender, against a real loopback receiver."""

from __future__ import annotations

import asyncio
import socket

import penguiflow_a2a.push as push_api
import pytest
from _push_receiver import push_receiver
from penguiflow_a2a.push import (
    NOTIFICATION_TOKEN_HEADER,
    PushDelivery,
    PushSender,
    PushURLError,
    validate_push_url,
)
from pydantic import BaseModel

from penguiflow.errors import ConfigurationError, PenguiFlowError, UsageError

TASK = {"id": "t-1", "contextId": "c-1", "status": {"state": "TASK_STATE_WORKING"}}


class Auth(BaseModel):
    scheme: str
    credentials: str | None = None


class Config(BaseModel):
    """Shaped like the wire model's TaskPushNotificationConfig."""

    url: str
    token: str | None = None
    authentication: Auth | None = None


def test_public_api() -> None:
    assert sorted(push_api.__all__) == sorted(
        [
            "NOTIFICATION_TOKEN_HEADER",
            "PushAuthentication",
            "PushDelivery",
            "PushSender",
            "PushTarget",
            "PushURLError",
            "Resolver",
            "validate_push_url",
        ]
    )
    for name in push_api.__all__:
        assert getattr(push_api, name) is not None
    assert issubclass(PushURLError, PenguiFlowError)
    assert issubclass(PushURLError, ValueError)


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "kind"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1", "loopback"),
        ("http://[::1]/hook", "::1", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1", "loopback"),
        ("http://10.1.2.3/hook", "10.1.2.3", "private"),
        ("https://192.168.0.9/hook", "192.168.0.9", "private"),
        ("http://172.16.5.5/hook", "172.16.5.5", "private"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254", "link-local"),
        ("http://[fe80::1]/hook", "fe80::1", "link-local"),
        ("http://224.0.0.1/hook", "224.0.0.1", "multicast"),
        ("http://240.0.0.1/hook", "240.0.0.1", "reserved"),
        ("http://0.0.0.0/hook", "0.0.0.0", "unspecified"),
        ("http://100.64.0.1/hook", "100.64.0.1", "non-public"),
        ("http://user:pw@public.example@10.0.0.1/hook", "10.0.0.1", "private"),
    ],
)
async def test_non_public_addresses_are_refused(url: str, host: str, kind: str) -> None:
    with pytest.raises(PushURLError) as caught:
        await validate_push_url(url)
    message = str(caught.value)
    assert repr(host) in message
    assert f"{kind} address" in message
    assert "allow non-public targets with PushSender(allow_private=True)" in message
    assert caught.value.host == host
    # The operator's setting lets them through.
    assert await validate_push_url(url, allow_private=True) == url


async def test_the_message_names_the_servers_own_setting() -> None:
    with pytest.raises(PushURLError, match="with --allow-private-push if"):
        await validate_push_url("http://10.0.0.1/", setting="--allow-private-push")


@pytest.mark.parametrize(
    "url",
    ["ftp://hooks.example.com/x", "file:///etc/passwd", "gopher://1.2.3.4/", "hooks.example.com"],
)
async def test_non_http_schemes_are_refused_even_when_private_targets_are_allowed(
    url: str,
) -> None:
    with pytest.raises(PushURLError, match="only http and https"):
        await validate_push_url(url, allow_private=True)


async def test_url_without_host_or_unparseable_is_refused() -> None:
    with pytest.raises(PushURLError, match="has no host"):
        await validate_push_url("http:///hook")
    with pytest.raises(PushURLError, match="cannot be parsed"):
        await validate_push_url("http://[::1/hook")


async def test_dns_names_are_resolved_and_checked() -> None:
    # localhost resolves (from /etc/hosts, no network needed) to a loopback address.
    with pytest.raises(PushURLError) as caught:
        await validate_push_url("http://localhost:9000/hook")
    assert "'localhost' (it resolves to" in str(caught.value)
    assert "loopback address" in str(caught.value)


@pytest.mark.parametrize("host", ["0x7f000001", "2130706433", "127.1"])
async def test_numeric_spellings_of_loopback_are_refused(host: str) -> None:
    # ipaddress does not parse these, but the system resolver (and so httpx) does.
    with pytest.raises(PushURLError, match="loopback address"):
        await validate_push_url(f"http://{host}/hook")


async def test_a_name_with_any_inward_address_is_refused() -> None:
    seen: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        seen.append((host, port))
        return {"good.example": ["93.184.216.34"], "mixed.example": ["93.184.216.34", "10.9.9.9"]}[
            host
        ]

    assert await validate_push_url("https://good.example/h", resolver=resolver)
    with pytest.raises(PushURLError, match=r"'mixed.example' \(it resolves to 10.9.9.9\)"):
        await validate_push_url("http://mixed.example:8443/h", resolver=resolver)
    assert seen == [("good.example", 443), ("mixed.example", 8443)]


async def test_an_unresolvable_name_is_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(PushURLError, match=r"'nowhere\.invalid'.*does not resolve"):
        await validate_push_url("https://nowhere.invalid/h", resolver=resolver)


async def test_public_literal_addresses_pass() -> None:
    assert await validate_push_url("https://8.8.8.8/hook") == "https://8.8.8.8/hook"
    assert await validate_push_url("http://[2606:4700::1111]/h") == "http://[2606:4700::1111]/h"


# --- sending ---------------------------------------------------------------------------


async def test_delivers_task_with_token_and_authentication() -> None:
    async with push_receiver() as receiver, PushSender(allow_private=True) as sender:
        config = Config(
            url=receiver.url, token="tok-1", authentication=Auth(scheme="Bearer", credentials="s")
        )
        delivery = await sender.deliver(TASK, config)
        assert delivery == PushDelivery(url=receiver.url, ok=True, attempts=1, status=200)
        [request] = receiver.requests
        assert request.body == {"task": TASK}
        assert request.headers[NOTIFICATION_TOKEN_HEADER.lower()] == "tok-1"
        assert request.headers["authorization"] == "Bearer s"
        assert request.headers["content-type"] == "application/json"


async def test_stream_response_bodies_pass_unchanged_and_wire_dicts_work() -> None:
    update = {"statusUpdate": {"taskId": "t-1", "contextId": "c-1", "status": {}}}
    async with push_receiver() as receiver, PushSender(allow_private=True) as sender:
        wire = {"url": receiver.url, "authentication": {"scheme": "Bearer"}}
        assert (await sender.deliver(update, wire)).ok
        [request] = receiver.requests
        assert request.body == update
        # A scheme without credentials sends no Authorization, and no token header either.
        assert "authorization" not in request.headers
        assert NOTIFICATION_TOKEN_HEADER.lower() not in request.headers


async def test_a_failing_receiver_is_retried_a_bounded_number_of_times() -> None:
    seen: list[PushDelivery] = []
    async with (
        push_receiver() as receiver,
        PushSender(allow_private=True, max_attempts=3, backoff_s=0, on_delivery=seen.append) as s,
    ):
        receiver.script = [503, 500]
        delivery = await s.deliver(TASK, Config(url=receiver.url))
        assert delivery.ok and delivery.attempts == 3
        assert len(receiver.requests) == 3

        receiver.script = [503, 503, 503, 503]
        delivery = await s.deliver(TASK, Config(url=receiver.url))
        assert not delivery.ok
        assert delivery.attempts == 3 and delivery.status == 503
        assert delivery.error == "the receiver answered HTTP 503"
        assert len(receiver.requests) == 6
    assert [d.ok for d in seen] == [True, False]


async def test_a_client_error_answer_is_not_retried() -> None:
    async with push_receiver() as receiver, PushSender(allow_private=True, backoff_s=0) as s:
        receiver.script = [401]
        delivery = await s.deliver(TASK, Config(url=receiver.url))
        assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, 401)
        assert len(receiver.requests) == 1


async def test_an_unreachable_receiver_is_reported_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused
    async with PushSender(allow_private=True, max_attempts=2, backoff_s=0) as sender:
        delivery = await sender.deliver(TASK, Config(url=f"http://127.0.0.1:{port}/h"))
    assert not delivery.ok and delivery.attempts == 2
    assert delivery.error is not None and "ConnectError" in delivery.error
    assert "push notification to http://127.0.0.1" in caplog.text


async def test_refused_urls_are_never_posted_to() -> None:
    async with push_receiver() as receiver, PushSender() as sender:
        delivery = await sender.deliver(TASK, Config(url=receiver.url))
        assert not delivery.ok and delivery.attempts == 0
        assert delivery.error is not None and "allow_private=True" in delivery.error
        with pytest.raises(PushURLError):
            await sender.validate(receiver.url)
    assert receiver.requests == []


async def test_a_config_without_url_is_reported() -> None:
    async with PushSender() as sender:
        delivery = await sender.deliver(TASK, {"token": "x"})
    assert not delivery.ok and delivery.error is not None and "no url" in delivery.error


async def test_an_observer_that_raises_does_not_reach_the_task() -> None:
    def broken(delivery: PushDelivery) -> None:
        raise RuntimeError("observer bug")

    async with push_receiver() as receiver, PushSender(allow_private=True, on_delivery=broken) as s:
        assert (await s.deliver(TASK, Config(url=receiver.url))).ok


async def test_submit_returns_at_once_and_delivers_in_order() -> None:
    async with push_receiver() as receiver, PushSender(allow_private=True) as sender:
        receiver.gate = asyncio.Event()  # the receiver holds every answer
        config = Config(url=receiver.url)
        for n in range(3):
            assert sender.submit({**TASK, "n": n}, config)
        # The first post is in flight and held; the task that submitted was never blocked.
        await receiver.wait_for(1)
        receiver.gate.set()
        await sender.wait_idle()
        assert [r.body["task"]["n"] for r in receiver.requests] == [0, 1, 2]


async def test_submit_drops_updates_beyond_max_pending() -> None:
    async with push_receiver() as receiver, PushSender(allow_private=True, max_pending=2) as s:
        receiver.gate = asyncio.Event()
        config = Config(url=receiver.url)
        assert s.submit({**TASK, "n": 0}, config)
        await receiver.wait_for(1)  # n=0 taken off the queue and held by the receiver
        assert s.submit({**TASK, "n": 1}, config)
        assert s.submit({**TASK, "n": 2}, config)
        assert not s.submit({**TASK, "n": 3}, config)
        receiver.gate.set()
        await s.wait_idle()
        assert [r.body["task"]["n"] for r in receiver.requests] == [0, 1, 2]


async def test_aclose_gives_up_on_a_stuck_receiver_after_the_drain_timeout() -> None:
    async with push_receiver() as receiver:
        receiver.gate = asyncio.Event()  # never set before the sender closes
        sender = PushSender(allow_private=True, drain_timeout_s=0.05)
        sender.submit(TASK, Config(url=receiver.url))
        await receiver.wait_for(1)
        await sender.aclose()
        await sender.aclose()  # idempotent
        assert sender.closed
        with pytest.raises(UsageError, match="closed"):
            sender.submit(TASK, Config(url=receiver.url))


def test_bad_settings_are_refused() -> None:
    for kwargs in ({"max_attempts": 0}, {"max_pending": 0}, {"timeout_s": 0}, {"backoff_s": -1}):
        with pytest.raises(ConfigurationError):
            PushSender(**kwargs)  # type: ignore[arg-type]


async def test_a_caller_supplied_client_is_left_open() -> None:
    import httpx

    async with httpx.AsyncClient() as client, push_receiver() as receiver:
        async with PushSender(client=client, allow_private=True) as sender:
            assert (await sender.deliver(TASK, Config(url=receiver.url))).ok
        assert not client.is_closed
