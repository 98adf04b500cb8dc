"""Served traces recorded without MLflow's tracing runtime (serve/trace_recorder.py), through a real trace
sink child into a SQLite store in a temp FLYWHEEL_HOME: read back with MLflow's client, a recorded trace is
what MLflow's runtime stores for the same call (spans, types, inputs, outputs, attributes, token usage,
trace info), errors and sampling behave the same, and no span escapes into a trace of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dspy
import pytest
from dspy.utils import DummyLM
from mlflow import MlflowClient

from flywheel.config import Settings, load_settings
from flywheel.serve.trace_export import TraceServer, with_trace_sink
from flywheel.serve.tracing import Tracer
from tests.unit.test_serve_tracing import (  # noqa: F401  (autouse: a fresh exporter per test)
    CALLS,
    SPANS,
    isolated_export,
    program_call,
    run_concurrently,
    stored_traces,
)

PASSAGES = ["Oil is checked daily before the first flight.", "Tyres are checked weekly."]
# differs between two runs of one call, or only MLflow's runtime records (see the recorder's docstring);
# mlflow.spanFunctionName is the name of the closure the inline tracer wraps ("root"), which says nothing
RUN_SPECIFIC = {"mlflow.trace.sizeBytes", "mlflow.trace.sizeStats", "mlflow.artifactLocation"}
NOT_RECORDED = {"mlflow.traceRequestId", "mlflow.spanFunctionName"}


class Answer(dspy.Module):
    """A served RAG program in small: passages in, a chain of thought over them, a prediction out."""

    def __init__(self) -> None:
        super().__init__()
        self.respond = dspy.ChainOfThought("context: list[str], question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        reply = self.respond(context=PASSAGES, question=question)
        return dspy.Prediction(answer=reply.answer, passages=[{"chunk_id": "c1", "text": PASSAGES[0]}], citations=[])


class Broken(dspy.Module):
    def forward(self, question: str) -> dspy.Prediction:
        raise RuntimeError("LM down")


@pytest.fixture
def sink() -> Iterator[TraceServer]:
    server = TraceServer.start(load_settings())
    try:
        yield server
    finally:
        server.stop()


def recorded(settings: Settings, server: TraceServer) -> Tracer:
    tracer = Tracer(with_trace_sink(settings, server.uri))
    assert tracer.enabled and tracer._recorder is not None  # the served path records its traces itself
    return tracer


def answer_once(tracer: Tracer) -> str:
    lm = DummyLM([{"reasoning": "The first passage says so.", "answer": "daily"}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter(), track_usage=True):
        prediction, trace_id = tracer.run(
            "flywheel.rag", {"question": "When?", "user": "alice"}, lambda: Answer()(question="When?"), {"v": "3"}
        )
    tracer.flush()
    assert prediction.answer == "daily"
    return trace_id


def comparable(settings: Settings, trace_id: str) -> dict[str, Any]:
    """A stored trace without what differs between two runs of one call (ids, times, sizes)."""
    trace = MlflowClient(tracking_uri=settings.tracking_uri).get_trace(trace_id)
    names = {span.span_id: span.name for span in trace.data.spans}
    spans = {
        span.name: {
            "parent": names.get(span.parent_id),
            "type": span.span_type,
            "status": span.status.status_code,
            "attributes": {k: v for k, v in span.attributes.items() if k not in NOT_RECORDED},
        }
        for span in trace.data.spans
    }
    info = trace.info
    return {
        "spans": spans,
        "state": info.state,
        "previews": (info.request_preview, info.response_preview),
        "metadata": {k: v for k, v in info.trace_metadata.items() if k not in RUN_SPECIFIC},
        "tags": {k: v for k, v in info.tags.items() if k not in RUN_SPECIFIC},
        "token_usage": info.token_usage,
    }


def test_a_recorded_trace_is_what_mlflows_runtime_stores_for_the_same_call(sink: TraceServer) -> None:
    settings = load_settings()
    by_mlflow = comparable(settings, answer_once(Tracer(settings)))  # inline: MLflow's runtime
    by_recorder = comparable(settings, answer_once(recorded(settings, sink)))
    assert by_recorder == by_mlflow
    spans = by_recorder["spans"]
    assert set(spans) == {"flywheel.rag", "Answer.forward", "Predict.forward", "DummyLM.__call__"}
    assert spans["Predict.forward"]["parent"] == "Answer.forward"  # ChainOfThought's copy is left out
    assert spans["Predict.forward"]["attributes"]["mlflow.spanInputs"]["context"] == PASSAGES
    assert by_recorder["tags"]["v"] == "3" and by_recorder["state"].value == "OK"
    assert by_recorder["token_usage"] is not None  # aggregated by the store from the module span


def test_a_failing_call_raises_and_its_recorded_trace_holds_the_error(sink: TraceServer) -> None:
    settings = load_settings()
    tracer = recorded(settings, sink)
    with pytest.raises(RuntimeError, match="LM down"):
        tracer.run("flywheel.rag", {"question": "q", "user": "alice"}, lambda: Broken()(question="q"))
    tracer.flush()
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.tracking.experiment)
    (trace,) = client.search_traces(locations=[experiment.experiment_id])
    assert trace.info.state.value == "ERROR"
    spans = {span.name: span for span in trace.data.spans}
    assert set(spans) == {"flywheel.rag", "Broken.forward"}
    for span in spans.values():
        assert span.status.status_code.value == "ERROR" and span.outputs is None
        (event,) = span.events
        assert event.name == "exception" and event.attributes["exception.message"] == "LM down"


def test_recorded_traces_of_a_concurrent_load_are_whole_and_separate(sink: TraceServer) -> None:
    """Every call's spans land in its own trace, under its own root, whatever thread ran it."""
    settings = load_settings()
    tracer = recorded(settings, sink)
    ids = run_concurrently(tracer)
    tracer.flush()
    stored = stored_traces(settings)
    assert set(ids) == set(stored) and len(stored) == CALLS
    assert all(names == SPANS for names in stored.values())
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    for trace_id in ids[:5]:
        spans = client.get_trace(trace_id).data.spans
        root = next(s for s in spans if s.parent_id is None)
        by_id = {s.span_id: s for s in spans}
        assert all(by_id[s.parent_id].name == "StandIn.forward" for s in spans if s.name == "Lookup.forward")
        number = root.inputs["question"].removeprefix("q")
        assert root.outputs["answer"] == f"answer {number}"


def test_unsampled_calls_record_nothing_not_even_their_module_spans(sink: TraceServer) -> None:
    settings = load_settings(serve={"trace_sample": 0.0})
    tracer = recorded(settings, sink)
    ids = [tracer.run("flywheel.rag", {"question": "q"}, lambda n=n: program_call(n))[1] for n in range(5)]
    tracer.flush()
    assert len(set(ids)) == 5 and all(i.startswith("tr-") for i in ids)
    assert stored_traces(settings) == {}  # DSPy's spans did not start traces of their own


def test_a_trace_that_cannot_be_recorded_never_fails_the_answered_call(caplog: pytest.LogCaptureFixture) -> None:
    from flywheel.serve.trace_recorder import TraceRecorder

    def unreachable_sink(info: dict, experiment_id: str, spans: list) -> None:
        raise ConnectionError("the trace sink is gone")

    def unserializable(result: str) -> str:
        raise ValueError("cannot describe the result")

    sent: list[dict] = []
    with caplog.at_level("WARNING", logger="flywheel.serve"):
        result, trace_id = TraceRecorder("1", unreachable_sink, 1.0).run("flywheel.rag", {"q": 1}, lambda: "ok", str)
        assert result == "ok" and trace_id and trace_id.startswith("tr-")
        recorder = TraceRecorder("1", lambda info, e, spans: sent.append(info), 1.0)
        assert recorder.run("flywheel.rag", {"q": 1}, lambda: "ok", unserializable)[0] == "ok"
    assert sent == [] and sum("not recorded" in r.message for r in caplog.records) == 2
    with pytest.raises(KeyError):  # the call's own error still reaches the caller, and its trace is sent
        recorder.run("flywheel.rag", {"q": 1}, lambda: {}["missing"], str)
    assert [info["state"] for info in sent] == ["ERROR"]
