"""`A2AHttpTransport`: the kernel's `RemoteTransport` over A2A 1.x's HTTP+JSON binding."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, final
from urllib.parse import quote

import anyio
import httpx

from penguiflow.errors import ConfigurationError, UsageError, describe_exception
from penguiflow.remote import RemoteCallRequest, RemoteCallResult, RemoteStreamEvent
from penguiflow.resources import AsyncResource
from penguiflow.tracecontext import inject

from ._client_codec import (
    ResultBuilder,
    build_send_body,
    parse_body,
    parts_text,
    state_name,
)
from ._client_errors import (
    A2AConnectionError,
    A2AProtocolError,
    A2ATaskFailedError,
    A2ATimeoutError,
)
from ._client_http import error_from_answer, iter_sse, response_error
from ._errors import TaskNotCancelableError
from ._wire import (
    AGENT_CARD_PATH,
    BINDING_HTTP_JSON,
    PROTOCOL_VERSION,
    VERSION_HEADER,
    AgentCard,
    CancelTaskRequest,
    to_wire,
)

__all__ = ["A2AHttpTransport"]

logger = logging.getLogger("penguiflow_a2a.client")


@dataclass(slots=True, frozen=True)
class _Endpoint:
    """Where the HTTP+JSON binding of an agent lives: its base URL and tenant."""

    base_url: str
    tenant: str | None

    def url(self, path: str) -> str:
        prefix = f"/{quote(self.tenant, safe='')}" if self.tenant else ""
        return f"{self.base_url}{prefix}{path}"


def _base(url: str) -> str:
    return url.rstrip("/")


@final
class A2AHttpTransport(AsyncResource):
    """Calls A2A agents over the HTTP+JSON binding, for `RemoteNode` and planner tools.

    - `send` posts `message:send` and returns the task's result (the artifact that came
      last: its text joined, its one data part's value, or its parts), with the task and
      context ids;
    - `stream` posts `message:stream` and turns its server-sent events into
      `RemoteStreamEvent`s: artifact text as chunks, then a last event (`done=True`) carrying
      the result;
    - `cancel` posts `tasks/{id}:cancel` (a task that already finished is left alone).

    A task that ends failed, rejected or canceled raises `A2ATaskFailedError`, from `send`
    and from `stream` alike, and so does a stream that closes before the task reached a final
    state: a caller never mistakes a failed remote task for an empty answer. An agent's
    error answer raises the matching `A2AError` subclass (`TaskNotFoundError`,
    `VersionNotSupportedError`, `AuthenticationError`...).

    `bearer_token` sends `Authorization: Bearer ...`; `api_key` sends `api_key_header`;
    `headers` adds any others. Every request carries the `A2A-Version` header.
    `timeout_s` is httpx's timeout (connect, each write, each wait for data) unless a
    request's own `timeout_s` replaces it. A connection that cannot be opened is retried
    `connect_retries` times with a doubling pause from `retry_backoff_s`; nothing else is
    retried, because a request that reached the agent may have started work there.

    With `discover=True` the transport reads each agent's card (cached for `card_ttl_s`
    seconds) and calls the HTTP+JSON interface it names; otherwise `agent_url` is the
    binding's base URL (the card is then only fetched when asked, by `get_agent_card`). A
    request's own `agent_card` is used the same way when it lists an HTTP+JSON interface.
    `tenant` puts every call under `/{tenant}/...`, the binding's tenant prefix.

    Pass `client` to share an `httpx.AsyncClient`; the transport then leaves it open.
    `aclose()` (or leaving `async with`) closes the client the transport made.
    """

    def __init__(
        self,
        *,
        bearer_token: str | None = None,
        api_key: str | None = None,
        api_key_header: str = "X-API-Key",
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = 30.0,
        connect_retries: int = 2,
        retry_backoff_s: float = 0.05,
        discover: bool = False,
        card_ttl_s: float = 300.0,
        tenant: str | None = None,
        history_length: int | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if connect_retries < 0:
            raise ConfigurationError(
                f"connect_retries must be 0 or more, got {connect_retries}; "
                "0 tries each connection once"
            )
        if timeout_s is not None and timeout_s <= 0:
            raise ConfigurationError(
                f"timeout_s must be a positive number of seconds or None, got {timeout_s}"
            )
        if card_ttl_s < 0:
            raise ConfigurationError(f"card_ttl_s must be 0 or more seconds, got {card_ttl_s}")
        sent: dict[str, str] = {VERSION_HEADER: PROTOCOL_VERSION}
        if bearer_token is not None:
            sent["Authorization"] = f"Bearer {bearer_token}"
        if api_key is not None:
            sent[api_key_header] = api_key
        sent.update(headers or {})
        self._headers = sent
        self._timeout_s = timeout_s
        self._connect_retries = connect_retries
        self._retry_backoff_s = retry_backoff_s
        self._discover = discover
        self._card_ttl_s = card_ttl_s
        self._tenant = tenant
        self._history_length = history_length
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()
        self._cards: dict[str, tuple[float, AgentCard]] = {}
        self._card_locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    # -- resource ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Closes the HTTP client the transport made (a shared one stays open). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(
                "this A2AHttpTransport was closed with aclose(); make a new one to call agents"
            )

    # -- plumbing ----------------------------------------------------------------------------

    def _timeout(self, timeout_s: float | None) -> httpx.Timeout:
        return httpx.Timeout(timeout_s if timeout_s is not None else self._timeout_s)

    async def _open(
        self, request: httpx.Request, *, agent_url: str, what: str, stream: bool = False
    ) -> httpx.Response:
        """Sends `request`, retrying only connections that could not be opened."""
        self._check_open()
        # The caller's trace goes with the request (RemoteNode's remote.call span), so the
        # agent runs the task as part of it.
        inject(request.headers)
        attempt = 0
        while True:
            try:
                return await self._client.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached the agent: trying again cannot run the work twice.
                if attempt >= self._connect_retries:
                    raise A2AConnectionError(
                        f"could not connect to the agent at {agent_url} for {what} after "
                        f"{attempt + 1} tries ({describe_exception(exc)}); check that it "
                        "runs and that the URL is right",
                        agent_url=agent_url,
                    ) from exc
                await anyio.sleep(self._retry_backoff_s * (2**attempt))
                attempt += 1
            except httpx.TimeoutException as exc:
                raise self._timed_out(exc, agent_url, what) from exc
            except httpx.HTTPError as exc:
                raise self._broken(exc, agent_url, what) from exc

    def _timed_out(self, exc: Exception, agent_url: str, what: str) -> A2ATimeoutError:
        return A2ATimeoutError(
            f"the agent at {agent_url} did not answer {what} in time "
            f"({describe_exception(exc) or type(exc).__name__}); raise timeout_s (transport "
            "or node policy) if the agent is slow",
            agent_url=agent_url,
        )

    def _broken(self, exc: Exception, agent_url: str, what: str) -> A2AConnectionError:
        return A2AConnectionError(
            f"the connection to the agent at {agent_url} failed during {what} "
            f"({type(exc).__name__}: {describe_exception(exc)}); it was not retried because "
            "the agent may have started the work",
            agent_url=agent_url,
        )

    async def _json(
        self,
        method: str,
        url: str,
        *,
        agent_url: str,
        what: str,
        body: Any = None,
        timeout_s: float | None = None,
    ) -> Any:
        request = self._client.build_request(
            method,
            url,
            json=body,
            headers=self._headers,
            timeout=self._timeout(timeout_s),
        )
        response = await self._open(request, agent_url=agent_url, what=what)
        try:
            if response.is_error:
                raise await response_error(response, agent_url=agent_url, what=what)
            try:
                return response.json()
            except ValueError as exc:
                raise A2AProtocolError(
                    f"the agent at {agent_url} answered {what} with a body that is not JSON "
                    f"({describe_exception(exc)})",
                    agent_url=agent_url,
                ) from exc
        finally:
            await response.aclose()

    # -- agent cards -------------------------------------------------------------------------

    async def get_agent_card(self, agent_url: str, *, refresh: bool = False) -> AgentCard:
        """The agent card at `agent_url`'s well-known path, cached for `card_ttl_s` seconds
        (`refresh=True` reads it again). Concurrent callers share one fetch."""
        base = _base(agent_url)
        lock = self._card_locks.setdefault(base, asyncio.Lock())
        async with lock:
            cached = self._cards.get(base)
            if cached is not None and not refresh and time.monotonic() < cached[0]:
                return cached[1]
            body = await self._json(
                "GET", f"{base}{AGENT_CARD_PATH}", agent_url=base, what="the agent card"
            )
            card = parse_body(AgentCard, body, what="an agent card", agent_url=base)
            self._cards[base] = (time.monotonic() + self._card_ttl_s, card)
            return card

    def _card_endpoint(self, card: AgentCard) -> _Endpoint | None:
        interface = card.interface(BINDING_HTTP_JSON)
        if interface is None:
            return None
        return _Endpoint(_base(interface.url), self._tenant or interface.tenant or None)

    async def _endpoint(
        self, agent_url: str, agent_card: Mapping[str, Any] | None = None
    ) -> _Endpoint:
        card: AgentCard | None = None
        if agent_card is not None:
            card = parse_body(
                AgentCard, dict(agent_card), what="an agent card (given)", agent_url=agent_url
            )
        elif self._discover:
            card = await self.get_agent_card(agent_url)
        if card is not None:
            endpoint = self._card_endpoint(card)
            if endpoint is not None:
                return endpoint
            if self._discover and agent_card is None:
                raise ConfigurationError(
                    f"the agent card at {agent_url} lists no {BINDING_HTTP_JSON} interface "
                    f"(it offers: {[i.protocol_binding for i in card.supported_interfaces]}); "
                    "this transport speaks HTTP+JSON only"
                )
        return _Endpoint(_base(agent_url), self._tenant)

    # -- RemoteTransport ---------------------------------------------------------------------

    async def send(self, request: RemoteCallRequest) -> RemoteCallResult:
        """`message:send`: waits for the task to finish (or to ask for input)."""
        endpoint = await self._endpoint(request.agent_url, request.agent_card)
        body = build_send_body(request, history_length=self._history_length)
        answer = await self._json(
            "POST",
            endpoint.url("/message:send"),
            agent_url=request.agent_url,
            what="message:send",
            body=body,
            timeout_s=request.timeout_s,
        )
        builder = ResultBuilder(request.agent_url)
        builder.add_send_response(answer)
        failure = builder.failure()
        if failure is not None:
            raise self._failed(builder, failure)
        return RemoteCallResult(
            result=builder.result(),
            context_id=builder.context_id,
            task_id=builder.task_id,
            agent_url=request.agent_url,
            meta=builder.meta(),
        )

    def _failed(self, builder: ResultBuilder, message: str) -> A2ATaskFailedError:
        return A2ATaskFailedError(
            message,
            agent_url=builder.agent_url,
            state=state_name(builder.state) if builder.state is not None else None,
            task_id=builder.task_id,
            context_id=builder.context_id,
        )

    async def stream(self, request: RemoteCallRequest) -> AsyncGenerator[RemoteStreamEvent, None]:
        """`message:stream`: relays the agent's events as they come (see the class doc)."""
        endpoint = await self._endpoint(request.agent_url, request.agent_card)
        body = build_send_body(request, history_length=self._history_length)
        http_request = self._client.build_request(
            "POST",
            endpoint.url("/message:stream"),
            json=body,
            headers={**self._headers, "Accept": "text/event-stream"},
            timeout=self._timeout(request.timeout_s),
        )
        what = "message:stream"
        response = await self._open(
            http_request, agent_url=request.agent_url, what=what, stream=True
        )
        try:
            if response.is_error:
                raise await response_error(response, agent_url=request.agent_url, what=what)
            builder = ResultBuilder(request.agent_url)
            try:
                # aclosing: leaving early (the final event) closes the inner generator now,
                # not whenever the garbage collector finds it
                async with aclosing(self._events(response, builder, request.agent_url)) as events:
                    async for event in events:
                        yield event
                        if event.done:
                            return
            except httpx.TimeoutException as exc:
                raise self._timed_out(exc, request.agent_url, what) from exc
            except httpx.HTTPError as exc:
                raise self._broken(exc, request.agent_url, what) from exc
            last = f" (last state: {state_name(builder.state)})" if builder.state else ""
            raise self._failed(
                builder,
                f"the stream from the agent at {request.agent_url} ended before the task "
                f"{builder.task_id or '(no task id)'} reached a final state{last}",
            )
        finally:
            await response.aclose()

    async def _events(
        self, response: httpx.Response, builder: ResultBuilder, agent_url: str
    ) -> AsyncGenerator[RemoteStreamEvent, None]:
        if "text/event-stream" not in response.headers.get("content-type", ""):
            # An agent may refuse a stream with a plain JSON answer (an error, or the task).
            await response.aread()
            self._plain_answer(response, builder, agent_url)
            yield self._final(builder)
            return
        async for sse in iter_sse(response.aiter_lines()):
            try:
                data: Any = json.loads(sse.data)
            except ValueError as exc:
                raise A2AProtocolError(
                    f"the agent at {agent_url} sent a stream event that is not JSON "
                    f"({describe_exception(exc)}): {sse.data[:200]!r}",
                    agent_url=agent_url,
                ) from exc
            if sse.event == "error":
                error = data.get("error") if isinstance(data, dict) else None
                code = error.get("code") if isinstance(error, dict) else None
                raise error_from_answer(
                    code if isinstance(code, int) else 500,
                    data,
                    agent_url=agent_url,
                    what="message:stream (an error event in the stream)",
                )
            event = builder.add_stream_response(data)
            failure = builder.failure()
            if failure is not None:
                raise self._failed(builder, failure)
            if event.artifact_update is not None:
                update = event.artifact_update
                text = parts_text(update.artifact.parts)
                yield RemoteStreamEvent(
                    text=text or None,
                    meta={
                        "artifact_id": update.artifact.artifact_id,
                        "artifact_name": update.artifact.name,
                        "append": bool(update.append),
                        "last_chunk": bool(update.last_chunk),
                    },
                    context_id=builder.context_id,
                    task_id=builder.task_id,
                    agent_url=agent_url,
                )
            elif not builder.finished:
                # A task snapshot or a status change: no text, but the ids, so the caller
                # can bind (and cancel) the remote task as soon as it exists.
                yield RemoteStreamEvent(
                    meta=builder.meta(),
                    context_id=builder.context_id,
                    task_id=builder.task_id,
                    agent_url=agent_url,
                )
            if builder.finished:
                yield self._final(builder)
                return

    def _plain_answer(
        self, response: httpx.Response, builder: ResultBuilder, agent_url: str
    ) -> None:
        try:
            body = response.json()
        except ValueError as exc:
            raise A2AProtocolError(
                f"the agent at {agent_url} answered message:stream with neither server-sent "
                f"events nor JSON ({describe_exception(exc)})",
                agent_url=agent_url,
            ) from exc
        builder.add_send_response(body)
        failure = builder.failure()
        if failure is not None:
            raise self._failed(builder, failure)

    def _final(self, builder: ResultBuilder) -> RemoteStreamEvent:
        # The last event: an empty chunk marked done (so chunk readers see the end) that
        # carries the whole result, which RemoteNode returns as the node's output.
        return RemoteStreamEvent(
            text="",
            done=True,
            meta=builder.meta(),
            context_id=builder.context_id,
            task_id=builder.task_id,
            agent_url=builder.agent_url,
            result=builder.result(),
        )

    async def cancel(self, *, agent_url: str, task_id: str) -> None:
        """`tasks/{id}:cancel`. A task that already finished cannot be canceled: that is not
        an error here (the trace that asked is gone either way)."""
        endpoint = await self._endpoint(agent_url)
        try:
            await self._json(
                "POST",
                endpoint.url(f"/tasks/{quote(task_id, safe='')}:cancel"),
                agent_url=agent_url,
                what=f"cancel of task {task_id}",
                body=to_wire(CancelTaskRequest(id=task_id)),
            )
        except TaskNotCancelableError:
            logger.debug("remote task %s at %s had already finished", task_id, agent_url)
