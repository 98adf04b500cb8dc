"""Request tracing: one MLflow trace per program call (steps, retrieved chunk ids, tokens, latency).

With tracing on, a sampled call (``serve.trace_sample``, default every call) runs inside an MLflow
root span; ``mlflow.dspy.autolog`` adds the DSPy module and LM spans (with token usage) beneath it,
in the tracking store of ``tracking.uri``. The trace id is returned to the caller so feedback can
attach to it. An unsampled call records no spans at all (the DSPy spans follow their root), and,
as with tracing off, gets a random id of the same shape; answers are recorded for feedback either
way.

Export is off the request path: MLflow's asynchronous queue with **one** writer thread, fed in
batches of spans. Where the writer writes depends on ``serve.trace_export``:

- ``"process"`` (default for ``flywheel serve`` over a local store): ``serve.trace_sink`` names a child
  trace sink (:mod:`flywheel.serve.trace_sink`, started by :mod:`flywheel.serve.trace_export`) that
  writes the store; the writer thread only serializes trace infos and batches of spans (JSON) and
  posts them over loopback HTTP. Storing a trace (SQLAlchemy + SQLite) cost about as much CPU as a
  retrieval and, in this process, took the GIL from the request threads.
- ``"inline"``: the writer thread writes the store itself (one SQLite transaction per batch).

A single writer keeps each trace's writes in order: its info, then its spans
(:mod:`flywheel.serve.trace_exporter`). If it falls
behind for long (the queue holds ``MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE`` tasks, 8000 here)
MLflow drops traces with a warning: lower ``serve.trace_sample`` for sustained loads above the
writer's pace (docs/benchmarks.md). :meth:`Tracer.flush` (the app's shutdown) waits for the queue,
before the export process is stopped, so a graceful stop loses no trace.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flywheel.answers import Answer
from flywheel.config import Settings
from flywheel.registry.assessments import log_user_feedback
from flywheel.registry.tracking import use_tracking
from flywheel.serve.trace_exporter import export_trace_info_first, skip_absent_imports, use_trace_sink

log = logging.getLogger("flywheel.serve")
T = TypeVar("T")


def new_trace_id() -> str:
    return f"tr-{uuid.uuid4().hex}"


def trace_outputs(prediction: Any) -> dict[str, Any]:
    """What a trace records of a prediction: the answer and chunk ids, not whole passages."""
    return Answer.from_prediction(prediction).trace_outputs()


class Tracer:
    """Runs calls inside an MLflow trace when enabled; always yields a trace id."""

    def __init__(self, settings: Settings, *, enabled: bool = True) -> None:
        self.enabled = False
        self.sample = settings.serve.trace_sample
        self._mlflow: Any = None
        # Feedback is mirrored onto traces by one background writer: waiting for a trace's export
        # (up to tens of seconds under load) must not hold a request worker.
        self._feedback: queue.Queue[tuple[str, str, dict[str, str | None]]] = queue.Queue(maxsize=10_000)
        self._feedback_writer: threading.Thread | None = None
        self._feedback_lock = threading.Lock()
        if enabled:
            try:
                self._setup(settings)
                self.enabled = True
            except Exception as exc:  # tracing is an aid, never a reason to refuse requests
                log.warning("MLflow tracing is off: %s", exc)

    def _setup(self, settings: Settings) -> None:
        # Lazy (start-up time): only this path needs MLflow.
        import mlflow

        # Read when MLflow builds its exporter, so they are set before the first span of this process.
        os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "true"
        os.environ["MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS"] = "1"
        os.environ.setdefault("MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE", "8000")
        # Spans reach the writer in batches of up to 256 (MLflow's default is 5), at least once a second:
        # one SQLite transaction per batch instead of one per few spans cut the writer's time by about
        # half in a 200-trace test, and the writer shares the GIL with the request threads.
        os.environ.setdefault("MLFLOW_ASYNC_TRACE_LOGGING_MAX_SPAN_BATCH_SIZE", "256")
        os.environ.setdefault("MLFLOW_ASYNC_TRACE_LOGGING_MAX_INTERVAL_MILLIS", "1000")
        export_trace_info_first()
        use_trace_sink(settings.serve.trace_sink)
        skip_absent_imports()
        use_tracking(settings)  # tracking URI and experiment under FLYWHEEL_HOME
        mlflow.tracing.reset()  # an exporter built earlier in this process would keep exporting synchronously
        try:
            # Lazy (start-up time): only this path needs MLflow.
            import mlflow.dspy

            mlflow.dspy.autolog(log_traces=True, silent=True)
            _drop_adapter_spans()
        except Exception as exc:  # nested DSPy spans are a bonus; the root span still records the call
            log.warning("DSPy autologging unavailable: %s", exc)
        self._mlflow = mlflow

    def run(
        self, name: str, inputs: dict[str, Any], func: Callable[[], T], tags: dict[str, str] | None = None
    ) -> tuple[T, str]:
        """``func()`` and the id of the trace recording it (a fresh id when the call is not sampled); ``tags``
        are set on the trace (searchable: ``tags.`flywheel.program_version` = '3'``)."""
        if not self.enabled:
            return func(), new_trace_id()
        mlflow = self._mlflow
        outcome: dict[str, Any] = {}

        def root() -> dict[str, Any]:  # its return value is the root span's outputs
            span = mlflow.get_current_active_span()  # None when the sampler dropped this call
            if span is not None:
                span.set_inputs(inputs)
                outcome["trace_id"] = span.trace_id
                if tags:
                    mlflow.update_current_trace(tags=tags)
            outcome["result"] = func()
            return trace_outputs(outcome["result"])

        mlflow.trace(root, name=name, span_type="CHAIN", sampling_ratio_override=self.sample)()
        return outcome["result"], outcome.get("trace_id") or new_trace_id()

    def log_feedback(self, trace_id: str, user: str, **feedback: str | None) -> None:
        """Queue a user's feedback to be mirrored onto the answer's MLflow trace as assessments (returns at
        once, never raises: the feedback store already holds it; :meth:`flush` waits for the writes)."""
        if not self.enabled:
            return
        with self._feedback_lock:
            if self._feedback_writer is None:
                self._feedback_writer = threading.Thread(
                    target=self._write_feedback, name="flywheel-feedback", daemon=True
                )
                self._feedback_writer.start()
        try:
            self._feedback.put_nowait((trace_id, user, feedback))
        except queue.Full:
            log.warning("Feedback on trace %s not mirrored to MLflow: the queue is full", trace_id)

    def _write_feedback(self) -> None:
        while True:
            trace_id, user, feedback = self._feedback.get()
            try:
                log_user_feedback(trace_id, user, **feedback)
            except Exception as exc:
                log.warning("Could not log feedback on MLflow trace %s: %s", trace_id, exc)
            finally:
                self._feedback.task_done()

    def flush(self) -> None:
        """Wait until every finished trace and every queued feedback is written (tests, shutdown)."""
        if self.enabled:
            from flywheel.serve.trace_sink import flush_clients

            self._mlflow.flush_trace_async_logging()
            if not flush_clients():
                log.warning("Some traces were not stored before the timeout: the trace sink is slow or gone")
            self._feedback.join()


def _drop_adapter_spans() -> None:
    """Serve without the DSPy adapter spans (``JSONAdapter.format`` / ``.parse``), which repeat what the
    trace already holds: format's output is the LM span's input messages (its inputs are the module's
    inputs and demos, also in those messages), parse's input is the LM span's output and its output the
    ``Predict`` span's outputs. They were 3 of 8 spans and about half the bytes of a served RAG trace
    (two 8 KB prompt copies), all written by the export path. Nor the ``ChainOfThought.forward`` span:
    the module only calls its ``Predict`` with the same inputs and returns its outputs, so the
    ``Predict.forward`` span beneath it (which then hangs from the enclosing span) holds the same —
    with the passages, the largest inputs of the trace. Evaluations and optimization keep all of them
    (:func:`flywheel.registry.tracking.dspy_autologging`)."""
    import dspy
    from mlflow.dspy.callback import MlflowCallback

    class ServingCallback(MlflowCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self._unrecorded: set[str] = set()  # call ids of modules whose span is left out

        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            if type(instance) is dspy.ChainOfThought:
                self._unrecorded.add(call_id)
                return
            super().on_module_start(call_id, instance, inputs)

        def on_module_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None:
            if call_id in self._unrecorded:
                self._unrecorded.discard(call_id)
                return
            super().on_module_end(call_id, outputs, exception)

        def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            pass

        def on_adapter_format_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
            pass

        def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            pass

        def on_adapter_parse_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
            pass

    callbacks = [c for c in dspy.settings.callbacks if type(c) is not MlflowCallback]
    if not any(isinstance(c, MlflowCallback) for c in callbacks):  # one from an earlier Tracer
        callbacks.append(ServingCallback())
    dspy.settings.configure(callbacks=callbacks)
