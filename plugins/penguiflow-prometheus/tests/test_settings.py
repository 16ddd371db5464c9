"""Settings: the [prometheus] section, overridden by PENGUIFLOW_PROMETHEUS_* variables."""

from __future__ import annotations

import pytest
from penguiflow_prometheus import DEFAULT_MAX_LABEL_VALUES, PrometheusSettings

from penguiflow.plugins import PluginConfigError


def test_defaults_serve_nothing() -> None:
    settings = PrometheusSettings.read({}, {})
    assert settings == PrometheusSettings()
    assert settings.ports == () and settings.host == "127.0.0.1"
    assert settings.max_label_values == DEFAULT_MAX_LABEL_VALUES and not settings.tenant_label


def test_the_environment_wins_over_the_file() -> None:
    config = {"prometheus": {"port": 9000, "max_label_values": 5, "tenant_label": True}}
    environ = {"PENGUIFLOW_PROMETHEUS_PORT": "9464-9466", "PENGUIFLOW_PROMETHEUS_TENANT_LABEL": "0"}
    settings = PrometheusSettings.read(config, environ)
    assert settings.ports == (9464, 9465, 9466)
    assert settings.max_label_values == 5
    assert settings.tenant_label is False


def test_port_zero_and_an_empty_port() -> None:
    assert PrometheusSettings.read({}, {"PENGUIFLOW_PROMETHEUS_PORT": "0"}).ports == (0,)
    assert (
        PrometheusSettings.read(
            {"prometheus": {"port": 9}}, {"PENGUIFLOW_PROMETHEUS_PORT": ""}
        ).ports
        == ()
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"port": "nine"}, "port must be an integer"),
        ({"port": "9470-9460"}, "a range such as 9464-9473"),
        ({"max_label_values": 0}, "at least 1"),
        ({"tenant_label": "maybe"}, "true or false"),
        ({"prot": 1}, "unknown .prometheus. setting.*prot"),
    ],
)
def test_bad_settings_say_what_and_where(section: dict[str, object], message: str) -> None:
    with pytest.raises(PluginConfigError, match=message):
        PrometheusSettings.read({"prometheus": section}, {})
    with pytest.raises(PluginConfigError, match="must be a table"):
        PrometheusSettings.read({"prometheus": 3}, {})
