"""Request tracing: one MLflow trace per program call (steps, retrieved chunk ids, tokens, latency).

With tracing on, every call runs inside an MLflow root span; ``mlflow.dspy.autolog`` adds the
DSPy module and LM spans (with token usage) beneath it, in the tracking store of
``tracking.uri``. The trace id is returned to the caller so feedback can attach to it. With tracing
off (or MLflow unusable) a random id of the same shape is used instead, and answers are still
recorded for feedback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flywheel.config import Settings

log = logging.getLogger("flywheel.serve")
T = TypeVar("T")


def new_trace_id() -> str:
    return f"tr-{uuid.uuid4().hex}"


def trace_outputs(prediction: Any) -> dict[str, Any]:
    """What a trace records of a prediction: the answer and chunk ids, not whole passages."""
    passages = getattr(prediction, "passages", None) or []
    citations = getattr(prediction, "citations", None) or []
    return {
        "answer": str(getattr(prediction, "answer", "")),
        "retrieved_chunk_ids": [p.get("chunk_id") for p in passages if isinstance(p, dict)],
        "cited": [c.get("chunk_id") or c.get("record") or c.get("tool") for c in citations if isinstance(c, dict)],
        "steps": [s.get("tool") for s in (getattr(prediction, "steps", None) or []) if isinstance(s, dict)],
    }


class Tracer:
    """Runs calls inside an MLflow trace when enabled; always yields a trace id."""

    def __init__(self, settings: Settings, *, enabled: bool = True) -> None:
        self.enabled = False
        self._mlflow: Any = None
        if enabled:
            try:
                self._setup(settings)
                self.enabled = True
            except Exception as exc:  # tracing is an aid, never a reason to refuse requests
                log.warning("MLflow tracing is off: %s", exc)

    def _setup(self, settings: Settings) -> None:
        import mlflow

        from flywheel.registry.tracking import use_tracking

        use_tracking(settings)  # tracking URI and experiment under FLYWHEEL_HOME
        try:
            import mlflow.dspy

            mlflow.dspy.autolog(log_traces=True, silent=True)
        except Exception as exc:  # nested DSPy spans are a bonus; the root span still records the call
            log.warning("DSPy autologging unavailable: %s", exc)
        self._mlflow = mlflow

    def run(self, name: str, inputs: dict[str, Any], func: Callable[[], T]) -> tuple[T, str]:
        """``func()`` and the id of the trace recording it."""
        if not self.enabled:
            return func(), new_trace_id()
        mlflow = self._mlflow
        with mlflow.start_span(name=name, span_type="CHAIN") as span:
            span.set_inputs(inputs)
            result = func()
            span.set_outputs(trace_outputs(result))
            trace_id = span.trace_id
        return result, trace_id
