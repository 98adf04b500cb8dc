"""User feedback as MLflow assessments on the answer's trace, so MLflow's UI shows it with the trace.

Flywheel's feedback store (:mod:`flywheel.stores.feedback`) stays the source of truth for datasets; this is
a mirror. A thumbs rating becomes the feedback ``user_rating`` (``True`` = up; the comment is its
rationale), a correction the expectation ``expected_response``, a comment without a rating the
feedback ``user_comment`` — each with source ``HUMAN`` and the user as source id. Giving feedback
again updates that user's earlier assessment of the same name instead of adding another. An answer
whose trace was not recorded (tracing off, or not sampled) has nothing to attach to: skipped.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("flywheel.feedback")
RATING, CORRECTION, COMMENT = "user_rating", "expected_response", "user_comment"


def log_user_feedback(
    trace_id: str, user: str, *, rating: str | None = None, correction: str | None = None, comment: str | None = None
) -> list[str]:
    """Attach the feedback to the MLflow trace ``trace_id``; the assessment names written (none if no trace)."""
    # Lazy (start-up time): only this path needs MLflow.
    import mlflow
    from mlflow.entities import AssessmentSource, AssessmentSourceType, Expectation, Feedback

    trace = mlflow.get_trace(trace_id, silent=True) or mlflow.get_trace(trace_id, silent=True, flush=True)
    if trace is None:
        log.debug("No MLflow trace %s (not sampled, or tracing off): feedback stays in Flywheel only", trace_id)
        return []
    source = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id=user)
    existing = {a.name: a for a in trace.info.assessments or [] if a.source and a.source.source_id == user}
    wanted: list[Any] = []
    if rating is not None:
        wanted.append(Feedback(name=RATING, value=rating == "up", source=source, rationale=comment))
    elif comment is not None:
        wanted.append(Feedback(name=COMMENT, value=comment, source=source))
    if correction is not None:
        wanted.append(Expectation(name=CORRECTION, value=correction, source=source))
    for assessment in wanted:
        earlier = existing.get(assessment.name)
        if earlier is not None:
            if isinstance(assessment, Feedback) and assessment.rationale is None:
                assessment.rationale = earlier.rationale  # a rating given later keeps the earlier comment
            mlflow.update_assessment(trace_id, earlier.assessment_id, assessment)
        elif isinstance(assessment, Feedback):
            mlflow.log_feedback(
                trace_id=trace_id,
                name=assessment.name,
                value=assessment.value,
                source=source,
                rationale=assessment.rationale,
            )
        else:
            mlflow.log_expectation(trace_id=trace_id, name=assessment.name, value=assessment.value, source=source)
    return [a.name for a in wanted]
