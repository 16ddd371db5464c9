"""Push notifications: where an agent may post task updates, and the sender that posts them.

A client registers a push-notification config (a URL, an optional token, optional
authentication) and the server posts every update of the task there. Letting a remote caller
choose where *our* server sends requests is a server-side request forgery risk: a URL aimed
at 127.0.0.1, a private network or a cloud metadata address (169.254.169.254) would let the
caller reach services only the server can. `validate_push_url` refuses such targets unless
the operator allows them, resolving DNS names so that a name pointing inward is refused too.

`PushSender` posts updates: bounded retries on connection errors, timeouts, 429 and 5xx
answers; never raising into the task that produced the update (a failed delivery is logged
and reported in a `PushDelivery`); `submit` queues an update and returns at once, so a slow
receiver never slows the task. Updates for one target are posted in the order submitted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from penguiflow.errors import ConfigurationError, UsageError, describe_exception
from penguiflow.resources import AsyncResource, redact_url

__all__ = [
    "NOTIFICATION_TOKEN_HEADER",
    "PushAuthentication",
    "PushDelivery",
    "PushSender",
    "PushTarget",
    "PushURLError",
    "Resolver",
    "validate_push_url",
]

logger = logging.getLogger("penguiflow_a2a.push")

#: The header that carries a config's token, so the receiver can tell our posts from forgeries.
NOTIFICATION_TOKEN_HEADER = "X-A2A-Notification-Token"

#: How refusals name the setting that allows non-public targets (a server passes its own).
_DEFAULT_SETTING = "PushSender(allow_private=True)"

#: The stream-response keys a push body may already carry; anything else is a bare task.
_EVENT_KEYS = frozenset({"task", "message", "statusUpdate", "artifactUpdate"})

#: Resolves (host, port) to IP address strings; the default asks the event loop's resolver.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class PushURLError(ConfigurationError):
    """A push-notification URL that the server refuses to post to (a `ValueError` too): not
    http(s), no host, a host that does not resolve, or one that resolves to a loopback,
    private, link-local, multicast, reserved or otherwise non-public address. The message
    names the host and the setting that allows non-public targets."""

    def __init__(self, message: str, *, url: str, host: str | None) -> None:
        super().__init__(message)
        self.url = url
        self.host = host


class PushAuthentication(Protocol):
    """The `authentication` of a push config: sent as `Authorization: <scheme> <credentials>`."""

    @property
    def scheme(self) -> str: ...

    @property
    def credentials(self) -> str | None: ...


class PushTarget(Protocol):
    """What `PushSender.deliver` needs of a push-notification config (the wire model's
    `TaskPushNotificationConfig` has these attributes; a camelCase wire dict works too)."""

    @property
    def url(self) -> str: ...

    @property
    def token(self) -> str | None: ...

    @property
    def authentication(self) -> PushAuthentication | None: ...


@dataclass(frozen=True, slots=True)
class PushDelivery:
    """What became of one update: `ok` when the receiver answered 2xx; otherwise `error`
    says why (the last attempt's answer or exception) and `status` is its HTTP status."""

    url: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


async def _default_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _non_public_kind(address: str) -> str | None:
    """Why `address` is not a public internet address, or None when it is one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # ::ffff:127.0.0.1 reaches 127.0.0.1: judge the IPv4 address it carries.
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "an unspecified"
    if ip.is_loopback:
        return "a loopback"
    if ip.is_link_local:
        return "a link-local"
    if ip.is_multicast:
        return "a multicast"
    # Before is_private, which Python also sets for the reserved 240.0.0.0/4.
    if ip.is_reserved:
        return "a reserved"
    if ip.is_private:
        return "a private"
    if not ip.is_global:  # shared address space (100.64.0.0/10) and the like
        return "a non-public"
    return None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


async def validate_push_url(
    url: str,
    *,
    allow_private: bool = False,
    setting: str = _DEFAULT_SETTING,
    resolver: Resolver | None = None,
) -> str:
    """Check that the server may post push notifications to `url`; return it unchanged.

    Refuses (with `PushURLError`) anything but http and https, URLs without a host, hosts
    that do not resolve, and hosts any of whose addresses is loopback, private, link-local,
    multicast, reserved or unspecified. A DNS name is resolved and every address checked, so
    `localhost` or a name pointing at 10.0.0.5 is refused like the literal address; so are
    numeric spellings such as `0x7f000001`. `allow_private=True` (the operator's `setting`,
    named in the message) skips the address checks, for agents on one trusted network.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise PushURLError(
            f"the push-notification URL {url!r} cannot be parsed ({describe_exception(exc)}); "
            "give an absolute http:// or https:// URL",
            url=url,
            host=None,
        ) from None
    if parts.scheme not in ("http", "https"):
        raise PushURLError(
            f"the push-notification URL {redact_url(url)!r} uses the scheme "
            f"{parts.scheme or '(none)'!r}; only http and https URLs are accepted",
            url=url,
            host=host,
        )
    if not host:
        raise PushURLError(
            f"the push-notification URL {redact_url(url)!r} has no host; give an absolute "
            "URL such as https://hooks.example.com/a2a",
            url=url,
            host=None,
        )
    if allow_private:
        return url
    addresses = [host] if _is_ip_literal(host) else []
    if not addresses:
        try:
            addresses = await (resolver or _default_resolver)(
                host, port or (443 if parts.scheme == "https" else 80)
            )
        except OSError as exc:
            # Fail closed: a name we cannot resolve now could resolve inward later.
            raise PushURLError(
                f"the push-notification host {host!r} (in {redact_url(url)!r}) does not "
                f"resolve ({describe_exception(exc)}); give a host this server can reach",
                url=url,
                host=host,
            ) from None
        if not addresses:
            raise PushURLError(
                f"the push-notification host {host!r} (in {redact_url(url)!r}) resolves to "
                "no address; give a host this server can reach",
                url=url,
                host=host,
            )
    for address in addresses:
        kind = _non_public_kind(address)
        if kind is not None:
            via = "" if address == host else f" (it resolves to {address})"
            raise PushURLError(
                f"the push-notification host {host!r}{via} is {kind} address; posting there "
                f"would let a caller reach the server's own network. Use a public URL, or allow "
                f"non-public targets with {setting} if every agent caller is trusted",
                url=url,
                host=host,
            )
    return url


def _field(config: Any, name: str, wire_name: str) -> Any:
    if isinstance(config, Mapping):
        return config.get(wire_name, config.get(name))
    return getattr(config, name, None)


def _request_parts(config: PushTarget | Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    url = _field(config, "url", "url")
    if not isinstance(url, str) or not url:
        raise PushURLError(
            f"the push-notification config has no url (got {url!r}); set its url",
            url=str(url),
            host=None,
        )
    headers = {"Content-Type": "application/json"}
    token = _field(config, "token", "token")
    if token:
        headers[NOTIFICATION_TOKEN_HEADER] = str(token)
    auth = _field(config, "authentication", "authentication")
    if auth is not None:
        scheme = _field(auth, "scheme", "scheme")
        credentials = _field(auth, "credentials", "credentials")
        # A scheme without credentials has nothing to send; the receiver will say so.
        if scheme and credentials:
            headers["Authorization"] = f"{scheme} {credentials}"
    return url, headers


def _body(update: Mapping[str, Any]) -> dict[str, Any]:
    # A1's task manager may pass a whole task or a ready stream response ({"statusUpdate":
    # ...}); the A2A push body is always a stream response, so a bare task is wrapped.
    if len(update) == 1 and next(iter(update)) in _EVENT_KEYS:
        return dict(update)
    return {"task": dict(update)}


def _retryable(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


class PushSender(AsyncResource):
    """Posts task updates to push-notification URLs.

    `await deliver(update, config)` posts once with up to `max_attempts` tries and returns a
    `PushDelivery`; it never raises (cancellation aside). `submit(update, config)` queues the
    update and returns at once; per target URL a background worker posts in order, and at
    most `max_pending` updates wait per target (older ones are kept, newer dropped with a
    warning). `on_delivery` is called with every `PushDelivery`. `aclose()` lets queued
    updates finish for up to `drain_timeout_s` seconds, then cancels them, and closes the
    HTTP client if the sender made it.

    Each attempt re-validates the URL (DNS may have changed since the config was saved)
    unless `allow_private`; redirects are never followed, since a redirect could point
    anywhere the validation refused.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        allow_private: bool = False,
        max_attempts: int = 3,
        timeout_s: float = 10.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 5.0,
        max_pending: int = 100,
        drain_timeout_s: float = 5.0,
        on_delivery: Callable[[PushDelivery], None] | None = None,
        resolver: Resolver | None = None,
        setting: str = _DEFAULT_SETTING,
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {max_attempts}")
        if max_pending < 1:
            raise ConfigurationError(f"max_pending must be at least 1, got {max_pending}")
        if timeout_s <= 0:
            raise ConfigurationError(f"timeout_s must be positive, got {timeout_s}")
        if backoff_s < 0 or max_backoff_s < 0:
            raise ConfigurationError("backoff_s and max_backoff_s must not be negative")
        self._owns_client = client is None
        # trust_env=False: an HTTP(S)_PROXY in the server's environment must not silently
        # route posts to caller-chosen URLs; pass a client of your own to use a proxy.
        self._client = client or httpx.AsyncClient(
            timeout=timeout_s, follow_redirects=False, trust_env=False
        )
        self._allow_private = allow_private
        self._max_attempts = max_attempts
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_pending = max_pending
        self._drain_timeout_s = drain_timeout_s
        self._on_delivery = on_delivery
        self._resolver = resolver
        self._setting = setting
        self._queues: dict[str, asyncio.Queue[tuple[dict[str, Any], Any]]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def validate(self, url: str) -> str:
        """`validate_push_url` with this sender's settings (for checking a config when it is
        saved, so the caller hears about a refused URL at once)."""
        return await validate_push_url(
            url, allow_private=self._allow_private, setting=self._setting, resolver=self._resolver
        )

    async def deliver(
        self, update: Mapping[str, Any], config: PushTarget | Mapping[str, Any]
    ) -> PushDelivery:
        """Post `update` (a task as JSON, or a stream response such as `{"statusUpdate":
        ...}`) to the config's URL, retrying a bounded number of times; never raises."""
        try:
            delivery = await self._deliver(update, config)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must still not reach the task
            delivery = PushDelivery(
                url=str(_field(config, "url", "url")),
                ok=False,
                attempts=0,
                error=f"{type(exc).__name__}: {describe_exception(exc)}",
            )
        self._report(delivery)
        return delivery

    async def _deliver(
        self, update: Mapping[str, Any], config: PushTarget | Mapping[str, Any]
    ) -> PushDelivery:
        try:
            url, headers = _request_parts(config)
            body = _body(update)
        except PushURLError as exc:
            return PushDelivery(url=exc.url, ok=False, attempts=0, error=describe_exception(exc))
        status: int | None = None
        error = "not attempted"
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                # Capped exponential backoff between tries, so a struggling receiver is not
                # hammered; the worker (not the task) is the one waiting.
                delay = min(self._max_backoff_s, self._backoff_s * 2 ** (attempt - 2))
                if delay > 0:
                    await asyncio.sleep(delay)
            try:
                await self.validate(url)
            except PushURLError as exc:
                return PushDelivery(
                    url=url, ok=False, attempts=attempt - 1, error=describe_exception(exc)
                )
            try:
                response = await self._client.post(
                    url, json=body, headers=headers, timeout=self._timeout_s
                )
            except httpx.TransportError as exc:  # connect errors, timeouts, broken streams
                status = None
                error = f"{type(exc).__name__}: {describe_exception(exc)}"
                continue
            status = response.status_code
            if 200 <= status < 300:
                return PushDelivery(url=url, ok=True, attempts=attempt, status=status)
            error = f"the receiver answered HTTP {status}"
            if not _retryable(status):
                return PushDelivery(url=url, ok=False, attempts=attempt, status=status, error=error)
        return PushDelivery(
            url=url, ok=False, attempts=self._max_attempts, status=status, error=error
        )

    def _report(self, delivery: PushDelivery) -> None:
        if not delivery.ok:
            logger.warning(
                "push notification to %s failed after %d attempt(s): %s",
                redact_url(delivery.url),
                delivery.attempts,
                delivery.error,
            )
        if self._on_delivery is not None:
            try:
                self._on_delivery(delivery)
            except Exception:  # an observer's bug must not stop deliveries
                logger.exception("the push sender's on_delivery callback raised")

    def submit(self, update: Mapping[str, Any], config: PushTarget | Mapping[str, Any]) -> bool:
        """Queue `update` for the config's URL and return at once (True), or return False
        when that target already has `max_pending` updates waiting. Needs a running loop."""
        if self._closed:
            raise UsageError("this PushSender is closed; create a new one to send updates")
        key = str(_field(config, "url", "url"))
        queue = self._queues.get(key)
        if queue is None:
            queue = asyncio.Queue(maxsize=self._max_pending)
            self._queues[key] = queue
            worker = asyncio.get_running_loop().create_task(self._drain(key, queue))
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        try:
            # A snapshot: the caller goes on changing its task while this one waits.
            queue.put_nowait((dict(update), config))
        except asyncio.QueueFull:
            logger.warning(
                "push notification to %s dropped: %d updates already wait for it",
                redact_url(key),
                self._max_pending,
            )
            return False
        return True

    async def _drain(self, key: str, queue: asyncio.Queue[tuple[dict[str, Any], Any]]) -> None:
        try:
            while not queue.empty():
                update, config = queue.get_nowait()
                await self.deliver(update, config)
        finally:
            # Only now: a submit between the last get and here would otherwise be lost.
            if self._queues.get(key) is queue and queue.empty():
                del self._queues[key]

    async def wait_idle(self) -> None:
        """Return once every submitted update has been delivered or given up on."""
        while self._workers:
            await asyncio.gather(*list(self._workers), return_exceptions=True)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._workers:
            try:
                await asyncio.wait_for(self.wait_idle(), self._drain_timeout_s)
            except TimeoutError:
                for worker in list(self._workers):
                    worker.cancel()
                await asyncio.gather(*list(self._workers), return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()
