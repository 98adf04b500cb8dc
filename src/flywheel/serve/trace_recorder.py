"""Served traces recorded as MLflow's own trace records, without MLflow's tracing runtime in the request path.

A served call's trace is a handful of spans (the root, the program module, its ``Predict``, the LM call).
Through MLflow's runtime each span is an OpenTelemetry span wrapped in an MLflow ``LiveSpan``, registered
with the trace manager, handed to OpenTelemetry's batch processor, then to MLflow's export queue, which
turns it back into a dict (``Span.to_dict``) for the trace sink. Measured in one process with the trace
sink's post stubbed out (DSPy ``DummyLM``, a RAG-sized prompt): **4.5–6 ms of CPU per call** with MLflow's
runtime against 0.6–0.9 ms untraced, all of it under the GIL that the request threads share.

:class:`TraceRecorder` writes the same records directly: each span is the dict ``Span.to_dict`` gives
(base64 ids, nanosecond times, attributes as JSON strings: ``mlflow.spanType``, ``mlflow.spanInputs``,
``mlflow.spanOutputs``, token usage, the LM's parameters), the trace info the dict ``TraceInfo.to_dict``
gives (state, previews, the environment metadata MLflow records, the tags). Both go to the trace sink
(:class:`~flywheel.serve.trace_sink.TraceSinkClient`), which rebuilds them with ``TraceInfo.from_dict`` /
``Span.from_dict`` and stores them with MLflow's SQL store: what ``mlflow.get_trace`` and the MLflow UI
read back is what MLflow's runtime would have stored (tests compare the two), including the trace's
token usage, which the store aggregates from the spans. Not recorded: MLflow's trace size statistics
(``mlflow.trace.sizeStats``) and user span processors (``mlflow.tracing.configure``), which Flywheel does
not set.

The DSPy spans come from :class:`ServingSpanCallback`: while a recorded trace is active in the calling
context it records module, LM and tool spans as MLflow's DSPy callback does (same names, types,
attributes), leaving out what serving does not need (adapter spans, ``ChainOfThought``'s copy of its
``Predict`` span); outside one (``/invocations``, which traces with MLflow's runtime) it is MLflow's
callback.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import random
import time
import traceback
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("flywheel.serve")
_TRACE: ContextVar[RecordedTrace | None] = ContextVar("flywheel_recorded_trace", default=None)
_PARENT: ContextVar[str | None] = ContextVar("flywheel_recorded_span", default=None)
METADATA_CHARS = 250  # MLflow's MAX_CHARS_IN_TRACE_INFO_METADATA
TRUNCATED = "..."


@dataclass
class RecordedTrace:
    """One call's trace being recorded: its ids and its finished spans (children before parents)."""

    trace_id: str  # MLflow's "tr-<32 hex>"
    otel_trace_id: str  # the same 16 bytes, base64 (the span records' form)
    spans: list[dict[str, Any]] = field(default_factory=list)
    sampled: bool = True  # False: a call left out of the sample, which records no span at all

    @classmethod
    def new(cls, *, sampled: bool = True) -> RecordedTrace:
        raw = os.urandom(16)
        return cls(trace_id=f"tr-{raw.hex()}", otel_trace_id=base64.b64encode(raw).decode(), sampled=sampled)


@dataclass
class OpenSpan:
    """A span started and not yet ended: its record, and the context token that made it the parent."""

    record: dict[str, Any]
    trace: RecordedTrace
    token: Token[str | None]
    span_type: str


def active_trace() -> RecordedTrace | None:
    """The trace being recorded in this context, if any."""
    return _TRACE.get()


def attribute(value: Any) -> str:
    """A span attribute as MLflow stores it: JSON (MLflow's encoder, for objects JSON lacks)."""
    from mlflow.tracing.utils import TraceJSONEncoder

    try:
        return json.dumps(value, cls=TraceJSONEncoder, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(str(value), ensure_ascii=False)


def start_span(name: str, span_type: str, inputs: Any, attributes: dict[str, Any] | None = None) -> OpenSpan | None:
    """Start a span under the current one of the active trace (``None``: no trace is being recorded, or the
    call is not sampled)."""
    trace = _TRACE.get()
    if trace is None or not trace.sampled:
        return None
    span_id = base64.b64encode(os.urandom(8)).decode()
    record: dict[str, Any] = {
        "trace_id": trace.otel_trace_id,
        "span_id": span_id,
        "parent_span_id": _PARENT.get(),
        "name": name,
        "start_time_unix_nano": time.time_ns(),
        "end_time_unix_nano": None,
        "events": [],
        "status": {"code": "STATUS_CODE_OK", "message": ""},
        "attributes": {
            "mlflow.traceRequestId": json.dumps(trace.trace_id),
            "mlflow.spanType": json.dumps(span_type),
            "mlflow.spanInputs": attribute(inputs),
            **{key: attribute(value) for key, value in (attributes or {}).items()},
        },
        "links": [],
    }
    return OpenSpan(record, trace, _PARENT.set(span_id), span_type)


def end_span(
    span: OpenSpan, outputs: Any, exception: BaseException | None = None, attributes: dict[str, Any] | None = None
) -> None:
    """End ``span`` (its parent becomes current again) and add it to its trace."""
    from mlflow.tracing.utils.default_log_level import default_log_level_for_span_type

    with contextlib.suppress(ValueError):  # ended in another context than it started in: it keeps its parent
        _PARENT.reset(span.token)
    record = span.record
    record["end_time_unix_nano"] = time.time_ns()
    record["attributes"].update({key: attribute(value) for key, value in (attributes or {}).items()})
    if outputs is not None:  # as MLflow: a span that failed or returned nothing has no outputs
        record["attributes"]["mlflow.spanOutputs"] = attribute(outputs)
    if exception is None:
        level = int(default_log_level_for_span_type(span.span_type))
    else:
        record["status"] = {"code": "STATUS_CODE_ERROR", "message": f"{type(exception).__name__}: {exception}"}
        record["events"].append(exception_event(exception))
        level = 40  # MLflow raises a span with an exception event to ERROR
    record["attributes"]["mlflow.spanLogLevel"] = str(level)
    span.trace.spans.append(record)


def exception_event(exception: BaseException) -> dict[str, Any]:
    """MLflow's ``SpanEvent.from_exception`` as a record."""
    return {
        "name": "exception",
        "time_unix_nano": time.time_ns(),
        "attributes": {
            "exception.message": str(exception),
            "exception.type": type(exception).__name__,
            "exception.stacktrace": "".join(traceback.format_exception(exception)).strip(),
        },
    }


def truncated(text: str, limit: int = METADATA_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


class TraceRecorder:
    """Runs calls inside recorded traces of experiment ``experiment_id`` and hands each finished trace
    (its info, then its spans) to ``send(info, experiment_id, spans)``; a share ``sample`` of calls is
    recorded, the others record nothing."""

    def __init__(
        self, experiment_id: str, send: Callable[[dict[str, Any], str, list[dict[str, Any]]], None], sample: float
    ) -> None:
        from mlflow.tracing.utils.environment import resolve_env_metadata

        self.experiment_id = experiment_id
        self.sample = sample
        self._send = send
        # what MLflow records about the process on every trace (user, entry point, git), resolved once as it does
        self._environment = {**resolve_env_metadata(), "mlflow.trace_schema.version": "3"}

    def run(
        self,
        name: str,
        inputs: dict[str, Any],
        func: Callable[[], T],
        outputs: Callable[[T], Any],
        tags: dict[str, str] | None = None,
    ) -> tuple[T, str]:
        """``func()`` and its trace id (a call left out of the sample gets an id of the same shape and
        records nothing); ``outputs(result)`` is what the root span records of the result."""
        if self.sample < 1 and random.random() >= self.sample:
            unsampled = RecordedTrace.new(sampled=False)
            token = _TRACE.set(unsampled)
            try:
                return func(), unsampled.trace_id
            finally:
                _TRACE.reset(token)
        trace = RecordedTrace.new()
        trace_token = _TRACE.set(trace)
        root = start_span(name, "CHAIN", inputs)
        assert root is not None
        try:
            result = func()
        except BaseException as exc:
            _TRACE.reset(trace_token)
            self._finish(trace, root, name, tags or {}, lambda: None, exc)
            raise
        _TRACE.reset(trace_token)
        self._finish(trace, root, name, tags or {}, lambda: outputs(result), None)
        return result, trace.trace_id

    def _finish(
        self,
        trace: RecordedTrace,
        root: OpenSpan,
        name: str,
        tags: dict[str, str],
        outputs: Callable[[], Any],
        exception: BaseException | None,
    ) -> None:
        """End the root span and send the trace; a failure here is logged, never raised (tracing is an aid,
        never a reason to fail a call)."""
        try:
            end_span(root, outputs(), exception)
            self._send(self._info(trace, root.record, name, tags), self.experiment_id, trace.spans)
        except Exception as exc:
            log.warning("Trace %s not recorded: %s: %s", trace.trace_id, type(exc).__name__, exc)

    def _info(self, trace: RecordedTrace, root: dict[str, Any], name: str, tags: dict[str, str]) -> dict[str, Any]:
        """The trace's ``TraceInfo.to_dict()`` form, from its root span."""
        from mlflow.tracing.utils.truncation import _get_truncated_preview

        attributes = root["attributes"]
        request, response = attributes["mlflow.spanInputs"], attributes.get("mlflow.spanOutputs")
        started_ns, ended_ns = root["start_time_unix_nano"], root["end_time_unix_nano"]
        return {
            "trace_id": trace.trace_id,
            "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": self.experiment_id}},
            "request_time": datetime.fromtimestamp(started_ns / 1e9, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "execution_duration_ms": (ended_ns - started_ns) // 1_000_000,
            "state": "ERROR" if root["status"]["code"] == "STATUS_CODE_ERROR" else "OK",
            "trace_metadata": {
                **self._environment,
                "mlflow.traceInputs": truncated(request),
                "mlflow.traceOutputs": truncated(response or ""),
            },
            "tags": {**tags, "mlflow.traceName": name},
            "request_preview": _get_truncated_preview(request, role="user"),
            "response_preview": _get_truncated_preview(response, role="assistant"),
        }


def serving_span_callback() -> Any:
    """The DSPy callback of a serving process (:class:`ServingSpanCallback`, built lazily: it subclasses
    MLflow's callback, and this module is imported without MLflow)."""
    import dspy
    from mlflow.dspy.callback import MlflowCallback
    from mlflow.dspy.util import sanitize_params

    class ServingSpanCallback(MlflowCallback):  # type: ignore[misc]
        """Records the module, LM and tool spans of a recorded trace (:class:`TraceRecorder`); outside one it
        is MLflow's DSPy callback. Either way without the adapter spans (``JSONAdapter.format`` / ``.parse``):
        format's output is the LM span's input messages, parse's input the LM span's output and its output
        the ``Predict`` span's outputs; they were 3 of 8 spans and half the bytes of a served RAG trace. Nor
        the ``ChainOfThought.forward`` span: it only calls its ``Predict`` with the same inputs and returns
        its outputs, so the ``Predict`` span beneath it (then under the enclosing module) holds the same.
        Evaluations and optimization keep all of them (:func:`flywheel.registry.tracking.dspy_autologging`)."""

        def __init__(self) -> None:
            super().__init__()
            self._unrecorded: set[str] = set()  # call ids of modules whose span is left out
            self._recording: dict[str, OpenSpan] = {}  # call id → span of a recorded trace

        def _start(self, call_id: str, name: str, span_type: str, inputs: Any, attributes: dict[str, Any]) -> None:
            span = start_span(name, span_type, inputs, attributes)
            if span is None:  # a call left out of the sample
                self._unrecorded.add(call_id)
            else:
                self._recording[call_id] = span

        def _inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
            """A call's inputs as MLflow's callback records them (keyword arguments merged, no empty ``args``)."""
            unpacked: dict[str, Any] = self._unpack_kwargs(inputs)
            if "args" in unpacked and not unpacked["args"]:
                del unpacked["args"]
            return unpacked

        def _skipped(self, call_id: str) -> bool:
            if call_id in self._unrecorded:
                self._unrecorded.discard(call_id)
                return True
            return False

        def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            if type(instance) is dspy.ChainOfThought:
                self._unrecorded.add(call_id)
            elif active_trace() is None:
                super().on_module_start(call_id, instance, inputs)
            else:
                name, span_type = f"{type(instance).__name__}.forward", str(self._get_span_type_for_module(instance))
                attributes = self._get_span_attribute_for_module(instance)
                self._start(call_id, name, span_type, self._inputs(inputs), attributes)

        def on_module_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None:
            if self._skipped(call_id):
                return
            span = self._recording.pop(call_id, None)
            if span is None:
                super().on_module_end(call_id, outputs, exception)
                return
            attributes = {}
            if isinstance(outputs, dspy.Prediction):
                usage = outputs.get_lm_usage() if hasattr(outputs, "get_lm_usage") else None
                outputs = outputs.toDict()
                if usage:
                    attributes["mlflow.chat.tokenUsage"] = {
                        "input_tokens": sum(u.get("prompt_tokens", 0) for u in usage.values()),
                        "output_tokens": sum(u.get("completion_tokens", 0) for u in usage.values()),
                        "total_tokens": sum(u.get("total_tokens", 0) for u in usage.values()),
                    }
            end_span(span, outputs, exception, attributes)

        def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            if active_trace() is None:
                super().on_lm_start(call_id, instance, inputs)
                return
            attributes = {
                **sanitize_params(instance.kwargs),
                "model": instance.model,
                "model_type": instance.model_type,
                "cache": instance.cache,
                "mlflow.message.format": "dspy",
                "mlflow.llm.model": instance.model,
            }
            if "/" in instance.model:
                attributes["mlflow.llm.provider"] = instance.model.split("/", 1)[0]
            span_type = "CHAT_MODEL" if getattr(instance, "model_type", None) == "chat" else "LLM"
            self._start(call_id, f"{type(instance).__name__}.__call__", span_type, self._inputs(inputs), attributes)

        def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            if active_trace() is None:
                super().on_tool_start(call_id, instance, inputs)
            elif instance.name == "finish":  # DSPy's tool that ends an agent's loop
                self._unrecorded.add(call_id)
            else:
                attributes = {"name": instance.name, "description": instance.desc, "args": instance.args}
                self._start(call_id, f"Tool.{instance.name}", "TOOL", self._inputs(inputs), attributes)

        def on_lm_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None:
            self._end(call_id, outputs, exception, super().on_lm_end)

        def on_tool_end(self, call_id: str, outputs: Any | None, exception: Exception | None = None) -> None:
            self._end(call_id, outputs, exception, super().on_tool_end)

        def _end(self, call_id: str, outputs: Any, exception: Exception | None, mlflows: Callable[..., None]) -> None:
            if self._skipped(call_id):
                return
            span = self._recording.pop(call_id, None)
            if span is None:
                mlflows(call_id, outputs, exception)
            else:
                end_span(span, outputs, exception)

        def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            pass

        def on_adapter_format_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
            pass

        def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
            pass

        def on_adapter_parse_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
            pass

    return ServingSpanCallback()
