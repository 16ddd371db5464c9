"""ScriptedHTTPServer, the loopback server adapter tests run against."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
from penguiflow_llm_http.testing import RecordedRequest, ScriptedHTTPServer, ScriptedResponse


@pytest.fixture
def server() -> Iterator[ScriptedHTTPServer]:
    with ScriptedHTTPServer() as running:
        yield running


def request(server: ScriptedHTTPServer, body: bytes = b"{}") -> tuple[int, dict[str, str], bytes]:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/p?q=1", body=body, headers={"X-Test": "yes"})
        response = connection.getresponse()
        try:
            data = response.read()
        except http.client.IncompleteRead as exc:
            data = exc.partial
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        connection.close()


def test_answers_in_order_and_records_requests(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse(body={"n": 1}), ScriptedResponse(status=201, body="two"))
    assert server.remaining == 2
    status, headers, data = request(server, b'{"a": 1}')
    assert (status, headers["content-type"]) == (200, "application/json")
    assert json.loads(data) == {"n": 1}
    assert request(server)[::2] == (201, b"two")
    first = server.requests[0]
    assert (first.method, first.path, first.json()) == ("POST", "/p?q=1", {"a": 1})
    assert first.headers["x-test"] == "yes" and server.remaining == 0


def test_an_empty_script_answers_500_saying_so(server: ScriptedHTTPServer) -> None:
    status, _, data = request(server)
    assert status == 500 and b"ScriptedHTTPServer has no response left" in data


def test_responses_computed_from_the_request(server: ScriptedHTTPServer) -> None:
    def echo(sent: RecordedRequest) -> ScriptedResponse:
        return ScriptedResponse(body={"got": sent.json()})

    server.add(echo)
    assert json.loads(request(server, b'{"x": 2}')[2]) == {"got": {"x": 2}}


def test_sse_streams_and_cut_connections(server: ScriptedHTTPServer) -> None:
    server.add(ScriptedResponse.sse([{"a": 1}, "[DONE]"], event_names=["delta", None]))
    server.add(ScriptedResponse.sse(["1", "2", "3"], cut_after=1))
    server.add(ScriptedResponse(body="0123456789", cut_after=0))
    status, headers, data = request(server)
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert data == b'event: delta\ndata: {"a": 1}\n\ndata: [DONE]\n\n'
    assert request(server)[2] == b"data: 1\n\n"
    assert request(server)[2] == b"01234"  # half the body, then the connection closes
