"""``POST /feedback`` (thumbs, correction, comment on one's own answer) and ``GET /feedback`` (admins).

Feedback is stored in Flywheel's feedback store (the source of truth for datasets) and mirrored onto
the answer's MLflow trace as assessments (``flywheel.registry.assessments``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from flywheel.serve.deps import Admin, Caller, ServiceDep

router = APIRouter(tags=["feedback"])


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(min_length=1, max_length=64, description="The trace_id returned with the answer.")
    rating: Literal["up", "down"] | None = None
    correction: str | None = Field(None, max_length=20_000, description="What the answer should have been.")
    comment: str | None = Field(None, max_length=20_000)


class FeedbackOut(BaseModel):
    id: int
    trace_id: str
    rating: str | None = None


class FeedbackRow(BaseModel):
    trace_id: str
    user: str
    program: str
    program_version: str | None = None  # the registered version that answered, if one did
    question: str
    answer: str
    citations: list[dict[str, Any]]
    rating: str | None = None
    correction: str | None = None
    comment: str | None = None
    created_at: str | None = None


class FeedbackList(BaseModel):
    feedback: list[FeedbackRow]


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackOut,
    responses={403: {"description": "Not the caller's answer"}, 404: {"description": "Unknown trace id"}},
)
async def give_feedback(service: ServiceDep, body: FeedbackIn, caller: Caller) -> dict[str, Any]:
    """Attach a rating, a correction and/or a comment to one of the caller's answers (repeat to update)."""
    feedback_id = await service.run(
        lambda: service.feedback.add_feedback(
            body.trace_id, caller.user, rating=body.rating, correction=body.correction, comment=body.comment
        ),
        timeout=False,
    )
    service.metrics.feedback.labels(body.rating or "none").inc()
    # Also as MLflow assessments on the trace (MLflow's UI shows them), written in the background.
    service.tracer.log_feedback(
        body.trace_id, caller.user, rating=body.rating, correction=body.correction, comment=body.comment
    )
    return {"id": feedback_id, "trace_id": body.trace_id, "rating": body.rating}


@router.get("/feedback", response_model=FeedbackList, responses={403: {"description": "Not an admin"}})
async def list_feedback(
    service: ServiceDep,
    _admin: Admin,
    program: str | None = Query(None, max_length=128),
    version: str | None = Query(None, max_length=32, description="Only answers by this registered version"),
) -> dict[str, Any]:
    """Every answer that received feedback, oldest first (admins only: answers quote documents)."""
    return {"feedback": await service.run(service.feedback.list_feedback, program, version, timeout=False)}
