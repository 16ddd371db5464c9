"""What a UTCP manual's tools may do: call only the manual's own origin and the hosts the
user allowed, and get only the variables the user allowed (manuals served by real HTTP apps
on 127.0.0.1), and the rules those checks are made of (`_policy`)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from penguiflow_utcp import UTCPConnector, UTCPPolicyError
from penguiflow_utcp._policy import (
    Origin,
    env_variable,
    origin_of,
    parse_allowed_host,
    placeholder_in_authority,
    resolve_url,
)

from penguiflow.errors import ConfigurationError
from penguiflow.testing import run_async


def base_of(manual_url: str) -> str:
    return manual_url.removesuffix("/utcp")


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def hits(manual_url: str) -> dict[str, int]:
    with urllib.request.urlopen(base_of(manual_url) + "/hits", timeout=10) as answer:
        counts: dict[str, int] = json.loads(answer.read())
    return counts


def run(connector: UTCPConnector, scenario: Any) -> Any:
    async def body() -> Any:
        async with connector:
            return await scenario(connector)

    return run_async(body)


def elsewhere(manual_url: str, base: str, **options: Any) -> UTCPConnector:
    """A manual served by the app at `manual_url` whose tool `add` calls `base`."""
    url = f"{manual_url}-elsewhere?base={quote(base, safe='')}"
    return UTCPConnector.http("elsewhere", url, **options)


# -- hosts ----------------------------------------------------------------------------------


def test_a_tool_pointed_at_another_port_is_refused_by_default(
    manual_url: str, other_manual_url: str
) -> None:
    # Regression: a manual could send its tools' calls to any port on loopback (or any
    # https host), and the connector followed.
    other = base_of(other_manual_url)
    connector = elsewhere(manual_url, other)
    with pytest.raises(UTCPPolicyError) as caught:
        run(connector, lambda c: c.call_tool("add", {"a": 1, "b": 2}))
    message = str(caught.value)
    assert f"elsewhere.add -> '{other}/add'" in message
    assert f"origin http://127.0.0.1:{port_of(manual_url)}" in message
    assert "allowed_hosts=" in message
    assert connector._client is None  # the refused manual's client was closed


@pytest.mark.parametrize(
    "rule", ["127.0.0.1:{port}", "http://127.0.0.1:{port}", "127.0.0.1", "127.0.0.1:{port}/"]
)
def test_allowed_hosts_lets_a_tool_call_another_port(
    manual_url: str, other_manual_url: str, rule: str
) -> None:
    allowed = rule.format(port=port_of(other_manual_url))
    connector = elsewhere(manual_url, base_of(other_manual_url), allowed_hosts=[allowed])
    assert run(connector, lambda c: c.call_tool("add", {"a": 1, "b": 2})).structured == {"sum": 3}


@pytest.mark.parametrize("rule", ["127.0.0.1:1", "https://127.0.0.1:{port}", "localhost"])
def test_a_rule_for_another_port_scheme_or_host_does_not_allow_it(
    manual_url: str, other_manual_url: str, rule: str
) -> None:
    allowed = rule.format(port=port_of(other_manual_url))
    connector = elsewhere(manual_url, base_of(other_manual_url), allowed_hosts=[allowed])
    with pytest.raises(UTCPPolicyError, match="allowed_hosts="):
        run(connector, lambda c: c.list_tools())


@pytest.mark.parametrize(
    "target",
    [
        "http://localhost:{port}",  # the same server under another name
        "https://169.254.169.254",  # a cloud metadata address (utcp-http allows https)
        "https://10.1.2.3:8443",  # a private range
        "http://[::1]:{port}",
    ],
)
def test_a_tool_pointed_at_another_host_is_refused_by_default(manual_url: str, target: str) -> None:
    base = target.format(port=port_of(manual_url))
    with pytest.raises(UTCPPolicyError, match=r"elsewhere\.add -> .*allowed_hosts="):
        run(elsewhere(manual_url, base), lambda c: c.list_tools())


def test_an_oauth_token_url_elsewhere_is_refused(manual_url: str) -> None:
    # The client POSTs its client id and secret to the token URL: it is a target like any.
    url = f"{manual_url}-oauth?token_url={quote('https://collector.example/token', safe='')}"
    connector = UTCPConnector.http("oauth", url)
    with pytest.raises(UTCPPolicyError, match=r"oauth\.add -> 'https://collector\.example/token'"):
        run(connector, lambda c: c.list_tools())


def test_a_host_taken_from_the_arguments_is_checked_before_each_call(manual_url: str) -> None:
    connector = UTCPConnector.http("anyhost", manual_url + "-any-host")

    async def scenario(c: UTCPConnector) -> None:
        assert [t.name for t in await c.list_tools()] == ["meta"]  # decided per call
        with pytest.raises(UTCPPolicyError, match=r"would call https://169\.254\.169\.254:443"):
            await c.call_tool("meta", {"host": "169.254.169.254"})
        # An argument cannot smuggle a port or a path into the host either.
        sneaky = f"127.0.0.1:{port_of(manual_url)}/utcp?"
        with pytest.raises(UTCPPolicyError, match="would call a URL with no valid host"):
            await c.call_tool("meta", {"host": sneaky})

    run(connector, scenario)


# -- variables -------------------------------------------------------------------------------


def test_a_variable_the_manual_asks_for_is_not_given_unless_allowed(
    manual_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: a manual's tool could put any `vars_*` environment variable in a header.
    monkeypatch.setenv("vars_SECRET", "s3cret-value")
    before = hits(manual_url).get("/echo-headers", 0)

    async def refused(c: UTCPConnector) -> None:
        with pytest.raises(UTCPPolicyError) as caught:
            await c.call_tool("whoami", {})
        message = str(caught.value)
        assert "'SECRET' (environment variable vars_SECRET)" in message
        assert "nothing was sent" in message and "allowed_variables=" in message
        assert "s3cret-value" not in message
        assert (await c.call_tool("plain", {})).structured == {"x_secret": None}

    run(UTCPConnector.http("vars", manual_url + "-variables"), refused)
    assert hits(manual_url).get("/echo-headers", 0) == before + 1  # only `plain` arrived

    allowed = UTCPConnector.http("vars", manual_url + "-variables", allowed_variables=["SECRET"])
    answer = run(allowed, lambda c: c.call_tool("whoami", {}))
    assert answer.structured == {"x_secret": "s3cret-value"}


def test_an_allowed_variable_that_is_not_set_is_a_clear_error(
    manual_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("vars_SECRET", raising=False)
    connector = UTCPConnector.http("vars", manual_url + "-variables", allowed_variables=["SECRET"])
    with pytest.raises(Exception, match=r"needs the variable\(s\) 'SECRET' .*not set") as caught:
        run(connector, lambda c: c.call_tool("whoami", {}))
    assert not isinstance(caught.value, UTCPPolicyError)


def test_the_connectors_own_configuration_may_use_variables(
    manual_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("private_TOKEN", "local-token")
    connector = UTCPConnector.http(
        "private", manual_url + "-private", headers={"X-Token": "${TOKEN}"}
    )
    assert run(connector, lambda c: c.call_tool("add", {"a": 2, "b": 3})).structured == {"sum": 5}


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    ["", "http://h/path", "ftp://h", "user@h", "h?x=1", "a\\b", "*.", "https://*.h", "%31.0.0.1"],
)
def test_bad_allowed_hosts_entries_say_what_to_write(entry: str) -> None:
    with pytest.raises(ConfigurationError, match=r"write 'host' \(any port\), 'host:port'"):
        UTCPConnector.http("m", "http://127.0.0.1:9/utcp", allowed_hosts=[entry])


def test_options_must_be_lists_and_variable_names_valid() -> None:
    with pytest.raises(ConfigurationError, match=r"allowed_hosts must be a list .*\['h'\]"):
        UTCPConnector.http("m", "http://127.0.0.1:9/utcp", allowed_hosts="h")
    with pytest.raises(ConfigurationError, match="'BAD-NAME' is not a variable name"):
        UTCPConnector.http("m", "http://127.0.0.1:9/utcp", allowed_variables=["BAD-NAME"])


def test_the_plugin_hook_passes_the_options_on() -> None:
    from penguiflow.plugins import PluginSettings, collect_connectors, load_hooks

    host = load_hooks(PluginSettings())
    entry = {"name": "n", "url": "http://127.0.0.1:9/utcp", "allowed_hosts": ["api.example"],
             "allowed_variables": ["KEY"]}  # fmt: skip
    template = {"call_template_type": "http", "url": "http://127.0.0.1:9/u"}
    config = {"utcp": {"manuals": [entry, {"name": "t", "call_template": template,
                                           "allowed_hosts": ["*.example"]}]}}  # fmt: skip
    found = [c for c in collect_connectors(host, config=config) if isinstance(c, UTCPConnector)]
    assert [(c.allowed_hosts, c.allowed_variables) for c in found] == [
        (("api.example",), ("KEY",)),
        (("*.example",), ()),
    ]


# -- the rules -------------------------------------------------------------------------------


def test_origin_of_reads_scheme_host_and_port_or_refuses() -> None:
    assert origin_of("http://127.0.0.1/x") == Origin("http", "127.0.0.1", 80)
    assert origin_of("HTTPS://API.Example.COM./v1") == Origin("https", "api.example.com", 443)
    assert origin_of("http://[0:0::1]:8080/") == Origin("http", "::1", 8080)
    assert origin_of("http://user@h.example:81") == Origin("http", "h.example", 81)
    assert str(Origin("http", "::1", 8080)) == "http://[::1]:8080"
    for unreadable in (
        "ftp://h.example/",
        "/relative",
        "http://h.example:99999/",
        "http://a.example\\@b.example/",  # parsers disagree about backslashes
        "http://%31%32%37.0.0.1/",  # a percent-escaped host
        "http://h .example/",
        "http://{host}/",
    ):
        assert origin_of(unreadable) is None, unreadable


def test_host_rules_match_host_port_subdomains_and_origins() -> None:
    def allows(rule: str, url: str) -> bool:
        origin = origin_of(url)
        assert origin is not None
        return parse_allowed_host(rule).matches(origin)

    assert allows("api.example", "https://api.example:8443/x")
    assert allows("API.example.", "http://api.example/")
    assert not allows("api.example", "https://api.example.evil/")
    assert allows("api.example:8443", "https://api.example:8443/")
    assert not allows("api.example:8443", "https://api.example/")
    assert allows("*.example", "https://a.b.example/")
    assert not allows("*.example", "https://example/")
    assert not allows("*.example", "https://badexample/")
    assert allows("https://api.example", "https://api.example:443/")
    assert not allows("https://api.example", "http://api.example/")
    assert allows("[::1]:8080", "http://[::1]:8080/")


def test_resolve_url_fills_path_parameters_as_utcp_http_does() -> None:
    args = {"id": "a/b c", "h": "x", "body": "y", "q": 1}
    url = resolve_url("https://{host}/u/{id}/{h}", args, header_fields=["h"], body_field="body")
    assert url == "https://{host}/u/a%2Fb%20c/{h}"
    assert placeholder_in_authority("https://{host}/u") and placeholder_in_authority("http://$H/")
    assert not placeholder_in_authority("https://h.example/{id}")


def test_env_variable_follows_utcps_naming() -> None:
    assert env_variable("notes", "KEY") == "notes_KEY"
    assert env_variable("my_api", "KEY") == "my__api_KEY"
