"""What the A2A client raises: one base, a subclass per way a call to an agent goes wrong.

```
PenguiFlowError
└── A2AClientError                   a call to a remote agent failed
    ├── A2AConnectionError           (ConnectionError) the agent could not be reached
    ├── A2ATimeoutError              (TimeoutError) the agent did not answer in time
    ├── A2AProtocolError             (ValueError) the answer is not A2A's wire shape
    └── A2ATaskFailedError           (RuntimeError) the task ended failed, rejected or
                                     canceled, or a stream ended before a final state
```

An agent that answers with an A2A error (task not found, version not supported, wrong
token...) raises the matching `penguiflow_a2a.A2AError` subclass from `_errors` instead: the
same classes the server raises, so `except TaskNotFoundError` works on both sides.
"""

from __future__ import annotations

from penguiflow.errors import PenguiFlowError

__all__ = [
    "A2AClientError",
    "A2AConnectionError",
    "A2AProtocolError",
    "A2ATaskFailedError",
    "A2ATimeoutError",
]


class A2AClientError(PenguiFlowError):
    """A call to a remote A2A agent failed; `agent_url` names the agent."""

    def __init__(self, message: str, *, agent_url: str | None = None) -> None:
        super().__init__(message)
        self.agent_url = agent_url


class A2AConnectionError(A2AClientError, ConnectionError):
    """The agent could not be reached, even after the configured connect retries."""


class A2ATimeoutError(A2AClientError, TimeoutError):
    """The agent did not answer within the call's timeout."""


class A2AProtocolError(A2AClientError, ValueError):
    """The agent's answer is not in A2A's wire shape (bad JSON, missing fields)."""


class A2ATaskFailedError(A2AClientError, RuntimeError):
    """The remote task ended in `state` (failed, rejected or canceled), or its stream closed
    before any final state (`state` is then the last one seen, or None)."""

    def __init__(
        self,
        message: str,
        *,
        agent_url: str | None = None,
        state: str | None = None,
        task_id: str | None = None,
        context_id: str | None = None,
    ) -> None:
        super().__init__(message, agent_url=agent_url)
        self.state = state
        self.task_id = task_id
        self.context_id = context_id
