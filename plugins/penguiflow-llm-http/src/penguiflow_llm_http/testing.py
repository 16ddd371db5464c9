"""Test helpers for LLM adapter authors: a scripted HTTP server on 127.0.0.1.

    from penguiflow_llm_http.testing import ScriptedHTTPServer, ScriptedResponse

    with ScriptedHTTPServer() as server:
        server.add(ScriptedResponse(body={"choices": [...]}))
        client = MyClient("m", base_url=server.url)
        ...
        assert server.requests[0].json()["model"] == "m"

Pair it with `penguiflow.testing.LLMAdapterConformance`, the kernel's suite for every
`llm_adapter` driver.
"""

from __future__ import annotations

from ._http_server import RecordedRequest, ScriptedHTTPServer, ScriptedResponse

__all__ = ["RecordedRequest", "ScriptedHTTPServer", "ScriptedResponse"]
