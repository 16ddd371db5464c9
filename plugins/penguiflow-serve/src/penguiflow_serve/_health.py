"""`GET /healthz` and `GET /readyz` as Starlette routes, answering like every PenguiFlow process.

The checks model and the JSON body are the kernel's (`penguiflow.health`), so the session
server, an A2A server and `penguiflow worker --health-port` answer probes identically. The
routes take no authentication: orchestrators probe without credentials, and the body names
checks and masks passwords, never holding a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from penguiflow.health import HealthChecks

__all__ = ["health_routes"]

_NO_STORE = {"Cache-Control": "no-store"}


def health_routes(checks: HealthChecks) -> list[Any]:
    """Starlette `Route`s for `/healthz` (200 while the app answers) and `/readyz` (200 when
    every check in `checks` passes, else 503; both with the kernel's JSON body). GET and
    HEAD. Starlette is imported here: the apps that call this already use it."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from penguiflow.health import liveness_body

    async def healthz(request: Request) -> Response:
        return JSONResponse(liveness_body(), headers=_NO_STORE)

    async def readyz(request: Request) -> Response:
        report = await checks.run()
        return JSONResponse(report.to_dict(), status_code=report.status_code, headers=_NO_STORE)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
