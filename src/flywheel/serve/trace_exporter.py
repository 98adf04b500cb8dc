"""The serving process's span exporter: MLflow's, sending each finished trace's info before its spans.

MLflow's exporter gets finished spans in batches (up to ``MLFLOW_ASYNC_TRACE_LOGGING_MAX_SPAN_BATCH_SIZE``,
from OpenTelemetry's batch span processor) and queues one ``log_spans`` for the batch, then one
``start_trace`` per root span in it. The tracking store's ``log_spans`` creates the row of a trace it does
not know yet, so every ``start_trace`` that follows takes the store's conflict path (roll back, re-read the
trace, merge its tags and metadata row by row). Measured on MLflow 3.17's SQLite store (WAL), per served
trace of 4 spans: 2.6 ms of CPU for the spans + **12.5 ms** for the trace info in MLflow's order, against
**4.8 ms** for the info + 1.5 ms for the spans in this order — the same rows either way (the tests read
traces back through ``mlflow.get_trace``). In ``flywheel serve`` that work runs in the trace export child
(:mod:`flywheel.serve.trace_export`), on the machine's other core.

The trace info then reaches the store before the store knows its spans are there: MLflow's exporter
would take that for a store without span logging and also write every trace's spans to an artifact
file (a file per trace, in the serving process); this one does not (``log_spans`` tags the trace).

A trace whose spans straddle two batches still has its early spans logged first (then MLflow's conflict
path does the merge, as before): correct, only slower.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

MARK = "exports_trace_info_first"
_SINK: dict[str, str | None] = {"url": None}  # the trace sink the exporters built from now on post to
# Optional packages MLflow tries to import on every traced call or tracking-server request, to
# recognise objects or environments it special-cases: llama_index (TraceJSONEncoder, for each value
# JSON cannot encode itself), dbruntime (each HTTP request's headers), IPython (each exported trace).
PROBED_PACKAGES = ("llama_index", "dbruntime", "IPython")


def export_trace_info_first() -> None:
    """Make every MLflow span exporter built from now on in this process (MLflow rebuilds its tracer
    provider on ``set_experiment`` and ``mlflow.tracing.reset``) queue trace infos before spans."""
    from mlflow.tracing.export import mlflow_v3

    if not getattr(mlflow_v3.MlflowV3SpanExporter, MARK, False):
        # provider._get_mlflow_span_processor looks the class up in this module when it builds one.
        mlflow_v3.MlflowV3SpanExporter = trace_info_first(mlflow_v3.MlflowV3SpanExporter)


def use_trace_sink(url: str | None) -> None:
    """Make the exporters built from now on post their writes to the trace sink at ``url``
    (:mod:`flywheel.serve.trace_sink`); ``None``: write with MLflow's tracking client, as MLflow does."""
    _SINK["url"] = url or None


def trace_info_first(base: type) -> type:
    """A subclass of MLflow's ``MlflowV3SpanExporter`` (``base``) whose ``export`` queues the batch's
    trace infos (``start_trace``) before the batch's spans (``log_spans``)."""
    from mlflow.tracing.export.async_export_queue import Task
    from mlflow.utils.uri import is_databricks_uri

    from flywheel.serve.trace_sink import TraceSinkClient

    class TraceInfoFirstExporter(base):  # type: ignore[misc]
        exports_trace_info_first = True

        def __init__(self, tracking_uri: str | None = None) -> None:
            super().__init__(tracking_uri)
            if _SINK["url"]:
                self._client: Any = TraceSinkClient(_SINK["url"], self._client)

        def export(self, spans: Any) -> None:
            if not self._store_supports_log_spans or is_databricks_uri(self._client.tracking_uri):
                super().export(spans)
                return
            # Collected while the roots' traces are still in MLflow's trace manager (exporting a
            # trace takes it out of there), queued after the trace infos.
            by_experiment = self._collect_mlflow_spans_for_export(spans)
            self._export_traces(spans)
            for (experiment_id, workspace), batch in by_experiment.items():
                if self._should_log_async():
                    task = Task(self._log_spans, (experiment_id, batch, workspace), "Failed to log spans.")
                    self._async_queue.put(task=task)
                else:
                    self._log_spans(experiment_id, batch, workspace=workspace)

        def _should_log_spans_to_artifacts(self, trace_info: Any) -> bool:
            # MLflow uploads a trace's spans as an artifact file when the store's answer to start_trace
            # does not say they are in the tracking store — which it says once log_spans has run, and
            # here that comes right after. Only a store without span logging needs the file.
            return not self._store_supports_log_spans and super()._should_log_spans_to_artifacts(trace_info)

    return TraceInfoFirstExporter


def skip_absent_imports(packages: tuple[str, ...] = PROBED_PACKAGES) -> list[str]:
    """Make imports of the ``packages`` that are not installed fail at once; the ones marked.

    Python does not remember a failed import: each attempt searches every ``sys.path`` entry again.
    MLflow's tracing makes such attempts per value and per request (:data:`PROBED_PACKAGES`), which
    was about 6 % of the serving process's CPU under load (py-spy). ``None`` in ``sys.modules`` is
    Python's own marker for "this import fails" (``ModuleNotFoundError``, as before, only sooner).
    An installed package is left alone."""
    marked = []
    for name in packages:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = None  # type: ignore[assignment]
            marked.append(name)
    return marked
