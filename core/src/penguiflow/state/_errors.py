"""Errors a state store raises, and how a store is named in them.

```
PenguiFlowError
└── StateStoreError            anything a state store reports about how it was used
    ├── StoreClosedError       (also a RuntimeError) the store was used after aclose()
    ├── StoreRequestError      (also a ValueError) a call's arguments cannot be served
    └── SchemaVersionError     (also a RuntimeError) the data was written by a newer version
```
"""

from __future__ import annotations

from .._redaction import redact_url
from ..errors import PenguiFlowError

__all__ = [
    "SchemaVersionError",
    "StateStoreError",
    "StoreClosedError",
    "StoreRequestError",
    "describe_resource",
]


class StateStoreError(PenguiFlowError):
    """The base of the errors a state store raises about how it was used."""


class StoreClosedError(StateStoreError, RuntimeError):
    """A state store was used after `aclose()`.

    `store_name` names the store (its class, and its URL with any password masked)."""

    def __init__(self, store: object) -> None:
        self.store_name = describe_resource(store)
        super().__init__(
            f"{self.store_name} is closed (aclose() was called) and refuses further work; "
            "create a new store to keep going"
        )


class StoreRequestError(StateStoreError, ValueError):
    """A state-store call got arguments it cannot serve (a task without `task_id`, a
    binding query without a key, a log cursor that is not an id the log returned)."""


class SchemaVersionError(StateStoreError, RuntimeError):
    """The store's data was written by a newer version of its driver; upgrade the driver
    (nothing was changed in the data)."""


def describe_resource(resource: object) -> str:
    """`ClassName` or `ClassName at URL` (from a `url` attribute), password masked.

    Error messages end up in logs, so a `postgresql://user:secret@host/db` URL is shown as
    `postgresql://user:***@host/db` (`penguiflow.resources.redact_url`)."""
    name = type(resource).__name__
    url = getattr(resource, "url", None)
    if isinstance(url, str) and url:
        return f"{name} at {redact_url(url)}"
    return name
