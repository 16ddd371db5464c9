"""The cardinality guard: at most N distinct values per label of each metric.

Every label value a metric has ever seen is a time series Prometheus keeps; a label fed from
data that grows without bound (a node name built from user input, a model name echoed back by
a proxy, a tenant id in a multi-tenant service) would grow the server's memory with it. Each
metric's labels admit their first `limit` distinct values; later new values are reported as
`OTHER` and counted in `penguiflow_prometheus_label_overflow_total{metric}`, so the overflow
is visible instead of silent. Values once admitted stay admitted: a series never changes
bucket while the process runs.
"""

from __future__ import annotations

from collections.abc import Callable

from penguiflow.errors import ConfigurationError

__all__ = ["DEFAULT_MAX_LABEL_VALUES", "OTHER", "LabelGuard"]

#: the default cap on distinct values of one label of one metric
DEFAULT_MAX_LABEL_VALUES = 100

#: the value that stands for every value past the cap
OTHER = "other"

#: the longest label value kept (longer ones are cut: a value is a name, not a message)
_MAX_VALUE_LENGTH = 120


class LabelGuard:
    """Admits label values for one metric, up to `limit` distinct values per label."""

    __slots__ = ("_limit", "_metric", "_on_overflow", "_seen")

    def __init__(
        self,
        metric: str,
        labels: tuple[str, ...],
        limit: int,
        on_overflow: Callable[[str], None] | None = None,
    ) -> None:
        if limit < 1:
            raise ConfigurationError(
                f"max_label_values must be at least 1, got {limit}; it caps the distinct "
                "values each label of a metric may take"
            )
        self._metric = metric
        self._limit = limit
        self._seen: dict[str, set[str]] = {label: set() for label in labels}
        self._on_overflow = on_overflow

    def admit(self, label: str, value: object) -> str:
        """The value to use for `label`: `value` as text if seen before or under the cap,
        else `OTHER`."""
        text = "" if value is None else str(value)[:_MAX_VALUE_LENGTH]
        seen = self._seen[label]
        if text in seen:
            return text
        if len(seen) < self._limit:
            seen.add(text)
            return text
        if self._on_overflow is not None:
            self._on_overflow(self._metric)
        return OTHER

    def values(self, label: str) -> frozenset[str]:
        """The values admitted so far for `label` (for tests and diagnostics)."""
        return frozenset(self._seen[label])
