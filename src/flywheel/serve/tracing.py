"""Request tracing: one MLflow trace per program call (steps, retrieved chunk ids, tokens, latency).

With tracing on, a sampled call (``serve.trace_sample``, default every call) is recorded as an MLflow
trace: a root span for the call, the DSPy module and LM spans (with token usage) beneath it, stored in
the tracking store of ``tracking.uri``. The trace id is returned to the caller so feedback can attach to
it. An unsampled call records no spans at all and, as with tracing off, gets a random id of the same
shape; answers are recorded for feedback either way.

How a trace is recorded and where it is written depends on ``serve.trace_export``:

- ``"process"`` (default for ``flywheel serve`` over a local store): ``serve.trace_sink`` names a child
  trace sink (:mod:`flywheel.serve.trace_sink`, started by :mod:`flywheel.serve.trace_export`) that
  writes the store. A served call records its trace itself (:mod:`flywheel.serve.trace_recorder`: the
  records MLflow's runtime would produce, at a fraction of its CPU) and queues it whole for the sink;
  one sender thread posts what queued meanwhile over loopback HTTP. Storing a trace (SQLAlchemy +
  SQLite) cost about as much CPU as a retrieval and, in this process, took the GIL from the request
  threads.
- ``"inline"`` (or a remote tracking server): MLflow's own runtime, ``mlflow.dspy.autolog``'s spans and
  its asynchronous queue with **one** writer thread, fed in batches of spans, which writes the store
  itself (one SQLite transaction per batch) or posts to the server.

A single writer keeps each trace's writes in order: its info, then its spans
(:mod:`flywheel.serve.trace_exporter`). If MLflow's writer falls behind for long (its queue holds
``MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE`` tasks, 8000 here) MLflow drops traces with a warning; the
trace sink's client makes the request threads wait instead once 2000 writes are queued. Lower
``serve.trace_sample`` for sustained loads above the writer's pace (docs/benchmarks.md).
:meth:`Tracer.flush` (the app's shutdown) waits for the queues, before the export process is stopped,
so a graceful stop loses no trace.
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
from flywheel.serve.trace_recorder import TraceRecorder, serving_span_callback

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
        self._recorder: TraceRecorder | None = None
        self._sink: Any = None  # the recorder's trace sink client
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
            use_serving_span_callback()
        except Exception as exc:  # nested DSPy spans are a bonus; the root span still records the call
            log.warning("DSPy autologging unavailable: %s", exc)
        self._mlflow = mlflow
        if settings.serve.trace_sink:  # served calls record their traces themselves (trace_recorder.py)
            from flywheel.serve.trace_sink import TraceSinkClient

            experiment = mlflow.get_experiment_by_name(settings.tracking.experiment)
            self._sink = TraceSinkClient(settings.serve.trace_sink, client=None)
            self._recorder = TraceRecorder(experiment.experiment_id, self._sink.send_trace, self.sample)

    def run(
        self, name: str, inputs: dict[str, Any], func: Callable[[], T], tags: dict[str, str] | None = None
    ) -> tuple[T, str]:
        """``func()`` and the id of the trace recording it (a fresh id when the call is not sampled); ``tags``
        are set on the trace (searchable: ``tags.`flywheel.program_version` = '3'``)."""
        if not self.enabled:
            return func(), new_trace_id()
        if self._recorder is not None:
            return self._recorder.run(name, inputs, func, trace_outputs, tags)
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
                if self._sink is not None:  # the answer's trace may still be queued for the sink
                    self._sink.flush(30)
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


def use_serving_span_callback() -> None:
    """Make :func:`~flywheel.serve.trace_recorder.serving_span_callback` DSPy's tracing callback in this
    process (in place of ``mlflow.dspy.autolog``'s, or of one an earlier Tracer installed)."""
    import dspy
    from mlflow.dspy.callback import MlflowCallback

    callbacks = [c for c in dspy.settings.callbacks if not isinstance(c, MlflowCallback)]
    dspy.settings.configure(callbacks=[*callbacks, serving_span_callback()])
