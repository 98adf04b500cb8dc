"""Request dependencies: the service state and the authenticated caller (API key → user → principal)."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from flywheel.access import Principal
from flywheel.errors import AccessDeniedError, AuthenticationError, NotFoundError
from flywheel.serve.runtime import Service

bearer_scheme = HTTPBearer(auto_error=False, description="An API key from `flywheel keys create USER`.")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same API key, as a header.")


def get_service(request: Request) -> Service:
    """The app's :class:`Service` (set by ``create_app``)."""
    service: Service = request.app.state.flywheel
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def current_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    """The caller, with their groups as stored now (group changes apply to the next request)."""
    key = (bearer.credentials if bearer else None) or api_key
    principal = await principal_for_key(get_service(request), key)
    request.state.user = principal.user
    return principal


async def principal_for_key(service: Service, key: str | None) -> Principal:
    """API key → user → principal (groups as stored now), or an AuthenticationError saying what to do.

    Shared by the REST routes and the MCP endpoint, so every interface resolves callers the same way.
    """
    if not key:
        raise AuthenticationError(
            "This endpoint needs an API key.",
            hint="Send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; "
            "create one with `flywheel keys create USER`.",
        )
    user = await anyio.to_thread.run_sync(service.keys.authenticate, key)
    if user is None:
        raise AuthenticationError(
            "The API key is unknown or has been revoked.",
            hint="Ask an admin for a new key (`flywheel keys create USER`).",
        )
    return await principal_for_user(service, user)


async def principal_for_user(service: Service, user: str) -> Principal:
    """The principal of an authenticated user, read from the catalog now."""
    try:
        return await anyio.to_thread.run_sync(service.knowledge.principal, user)
    except NotFoundError:
        raise AuthenticationError(
            f"The API key belongs to {user!r}, who is no longer a user.",
            hint="Ask an admin to re-create the user or issue a new key.",
        ) from None


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise AccessDeniedError(
            f"{principal.user} is not an admin.", hint="Ask an admin (`flywheel users add NAME --admin`)."
        )
    return principal


Caller = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(admin_principal)]
