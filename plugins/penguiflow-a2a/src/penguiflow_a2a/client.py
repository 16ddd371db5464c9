"""Calling A2A agents: a `RemoteTransport` for `RemoteNode`, and agents as planner tools.

```python
from penguiflow.remote import RemoteNode
from penguiflow_a2a.client import A2AHttpTransport, a2a_agent_tools

transport = A2AHttpTransport(bearer_token="...")
node = RemoteNode(transport=transport, skill="search", agent_url="http://agent:8000",
                  name="search", streaming=True)
tools = await a2a_agent_tools("http://agent:8000", transport=transport)
```

Errors: the client's own (`A2AClientError` and its subclasses, below) for connections,
timeouts, malformed answers and tasks that end failed, rejected or canceled; the agent's
A2A error answers as the `A2AError` subclasses of `penguiflow_a2a` (`TaskNotFoundError`,
`AuthenticationError`, `VersionNotSupportedError`...).
"""

from __future__ import annotations

from ._client_errors import (
    A2AClientError,
    A2AConnectionError,
    A2AProtocolError,
    A2ATaskFailedError,
    A2ATimeoutError,
)
from ._client_tools import a2a_agent_tools
from ._client_transport import A2AHttpTransport

__all__ = [
    "A2AClientError",
    "A2AConnectionError",
    "A2AHttpTransport",
    "A2AProtocolError",
    "A2ATaskFailedError",
    "A2ATimeoutError",
    "a2a_agent_tools",
]
