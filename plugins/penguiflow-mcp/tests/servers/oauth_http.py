"""An MCP server over streamable HTTP on 127.0.0.1 protected by OAuth 2.1: the SDK's
authorization server routes (discovery, dynamic client registration, authorize, token) backed
by `oauth_provider.TestAuthorizationServer`, and the MCP endpoint as the resource server.

python oauth_http.py PORT

Test-only routes (no authorization needed): `GET /test/stats` (what the authorization server
did, as JSON) and `POST /test/revoke-access` (every access token issued so far stops working;
refresh tokens stay valid).
"""

from __future__ import annotations

import sys

import uvicorn
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions
from mcp.server.mcpserver import MCPServer
from oauth_provider import TestAuthorizationServer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

port = int(sys.argv[1])
base = f"http://127.0.0.1:{port}"
provider = TestAuthorizationServer()
server = MCPServer(
    name="vault",
    auth_server_provider=provider,
    auth=AuthSettings(
        issuer_url=base,
        resource_server_url=f"{base}/mcp",
        validate_token_resource=False,
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=["notes"], default_scopes=["notes"]
        ),
        required_scopes=["notes"],
    ),
)


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


@server.custom_route("/test/stats", methods=["GET"])
async def stats(request: Request) -> Response:
    return JSONResponse(dict(provider.stats))


@server.custom_route("/test/revoke-access", methods=["POST"])
async def revoke(request: Request) -> Response:
    provider.revoke_access_tokens()
    return JSONResponse({"revoked": True})


uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning")
