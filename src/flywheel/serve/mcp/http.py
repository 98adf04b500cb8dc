"""MCP over streamable HTTP inside ``flywheel serve``, at ``/mcp``, authenticated by the API key.

Every HTTP request to ``/mcp`` is authenticated like the REST routes (``Authorization: Bearer <key>``
or ``X-API-Key``, resolved by :func:`flywheel.serve.deps.principal_for_key`); a missing, unknown or
revoked key is a 401 with Flywheel's JSON error before the MCP SDK sees the request. The caller's
principal (groups as stored now) rides on the request into the tool call. The user is also set as the
ASGI ``user`` the SDK binds stateful sessions to, so a session opened with one user's key cannot be
used with another's. Both the 2026 stateless protocol and the older session handshake are served.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from flywheel.access import Principal
from flywheel.errors import AuthenticationError, FlywheelError
from flywheel.serve.deps import principal_for_key
from flywheel.serve.mcp.server import build_mcp_server
from flywheel.serve.runtime import Service

PATH = "/mcp"
_STATE_KEY = "flywheel_principal"


class ApiKeyAuth:
    """ASGI middleware: the request's API key → its principal, or a 401 JSON error."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorization = headers.get("authorization", "")
        key = authorization[7:].strip() if authorization.lower().startswith("bearer ") else headers.get("x-api-key")
        try:
            principal = await principal_for_key(self.service, key)
        except FlywheelError as exc:
            response = JSONResponse(
                {"error": exc.to_dict()},
                status_code=exc.status_code,
                headers={"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None,
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[_STATE_KEY] = principal
        scope["user"] = AuthenticatedUser(AccessToken(token="api-key", client_id=principal.user, scopes=[]))
        scope["auth"] = AuthCredentials([])
        await self.app(scope, receive, send)


async def request_principal(request: Any) -> Principal:
    """The principal :class:`ApiKeyAuth` put on the HTTP request carrying this MCP call."""
    scope = getattr(request, "scope", None) or {}
    principal = (scope.get("state") or {}).get(_STATE_KEY)
    if not isinstance(principal, Principal):  # never run a call without an authenticated caller
        raise AuthenticationError(
            "This MCP call carries no authenticated user.",
            hint="Send 'Authorization: Bearer <key>' with every request to /mcp.",
        )
    return principal


class McpEndpoint:
    """The MCP server of one app: an ASGI endpoint for ``/mcp`` and the lifespan its sessions need."""

    def __init__(self, service: Service) -> None:
        self.server = build_mcp_server(service, request_principal)
        # Builds the SDK's session manager (DNS-rebinding protection on when serving on loopback).
        self.server.streamable_http_app(streamable_http_path=PATH, host=service.settings.serve.host)
        self.manager = self.server.session_manager
        self.app: ASGIApp = ApiKeyAuth(self.manager.handle_request, service)

    def run(self) -> AbstractAsyncContextManager[None]:
        """Enter in the app's lifespan: the task group MCP sessions run in."""
        return self.manager.run()
