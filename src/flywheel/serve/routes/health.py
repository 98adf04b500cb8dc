"""``/health`` (the process answers), ``/ready`` (programs built), ``/metrics`` (Prometheus), ``/me``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from flywheel.serve.deps import Caller, ServiceDep

router = APIRouter()


class Health(BaseModel):
    status: str


class Me(BaseModel):
    user: str
    groups: list[str]
    is_admin: bool
    programs: list[str]


@router.get("/health", tags=["operations"], response_model=Health)
async def health() -> dict[str, str]:
    """The process is up (no key needed)."""
    return {"status": "ok"}


@router.get(
    "/ready",
    tags=["operations"],
    response_model=Health,
    responses={503: {"description": "Starting, or a program could not be built"}},
)
async def ready(service: ServiceDep) -> Any:
    """The default program is built and requests can be answered (no key needed)."""
    if not service.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    return {"status": "ready"}


@router.get(
    "/metrics",
    tags=["operations"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(service: ServiceDep, _caller: Caller) -> Response:
    """Request and program-call counters and latency histograms (Prometheus text format; any valid key)."""
    return Response(service.metrics.render(), media_type=service.metrics.content_type)


@router.get("/me", tags=["auth"], response_model=Me)
async def me(service: ServiceDep, caller: Caller) -> dict[str, Any]:
    """Who the key belongs to: user, groups, admin role, and the programs that can be asked."""
    return {
        "user": caller.user,
        "groups": sorted(caller.groups),
        "is_admin": caller.is_admin,
        "programs": service.program_names(),
    }
