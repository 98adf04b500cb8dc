"""The service's request tracer against a real MLflow store (sqlite under a temp FLYWHEEL_HOME):
every sampled call's trace lands whole (root span and nested spans) through the asynchronous single
writer, unsampled calls record nothing, and every call gets its own id for feedback."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import dspy
import mlflow
import pytest
from mlflow import MlflowClient

from flywheel.config import Settings, load_settings
from flywheel.serve.tracing import Tracer

CALLS = 40


@pytest.fixture(autouse=True)
def isolated_export(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tracer switches this process to asynchronous export; give later tests a fresh exporter."""
    for name in (
        "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING",
        "MLFLOW_ASYNC_TRACE_LOGGING_MAX_WORKERS",
        "MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE",
        "MLFLOW_ASYNC_TRACE_LOGGING_MAX_SPAN_BATCH_SIZE",
        "MLFLOW_ASYNC_TRACE_LOGGING_MAX_INTERVAL_MILLIS",
    ):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    yield
    mlflow.flush_trace_async_logging()
    mlflow.tracing.reset()


class Lookup(dspy.Module):
    def forward(self, number: int) -> dspy.Prediction:
        return dspy.Prediction(answer=f"answer {number}", passages=[{"chunk_id": f"c{number}"}], citations=[])


class StandIn(dspy.Module):
    """A stand-in for a served program: a module calling a nested module (DSPy's callbacks trace both)."""

    def __init__(self) -> None:
        super().__init__()
        self.lookup = Lookup()

    def forward(self, number: int) -> dspy.Prediction:
        return self.lookup(number=number)


SPANS = ["Lookup.forward", "StandIn.forward", "flywheel.rag"]


def program_call(number: int) -> dspy.Prediction:
    return StandIn()(number=number)


def run_concurrently(tracer: Tracer) -> list[str]:
    def one(number: int) -> str:
        prediction, trace_id = tracer.run(
            "flywheel.rag", {"question": f"q{number}", "user": "alice"}, lambda: program_call(number)
        )
        assert prediction.answer == f"answer {number}"
        return trace_id

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(CALLS)))


def stored_traces(settings: Settings) -> dict[str, list[str]]:
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.tracking.experiment)
    traces = client.search_traces(locations=[experiment.experiment_id], max_results=1000) if experiment else []
    return {t.info.trace_id: sorted(s.name for s in t.data.spans) for t in traces}


def test_every_sampled_call_is_stored_whole() -> None:
    settings = load_settings()
    tracer = Tracer(settings)
    assert tracer.enabled
    ids = run_concurrently(tracer)
    tracer.flush()
    stored = stored_traces(settings)
    assert len(set(ids)) == CALLS and set(ids) == set(stored)
    assert all(names == SPANS for names in stored.values())
    root = MlflowClient(tracking_uri=settings.tracking_uri).get_trace(ids[3]).data.spans
    first = next(s for s in root if s.name == "flywheel.rag")
    assert first.inputs == {"question": "q3", "user": "alice"}
    assert first.outputs["answer"] == "answer 3" and first.outputs["retrieved_chunk_ids"] == ["c3"]


def test_unsampled_calls_store_nothing_and_still_get_unique_ids() -> None:
    settings = load_settings(serve={"trace_sample": 0.0})
    ids = run_concurrently(Tracer(settings))
    mlflow.flush_trace_async_logging()
    assert len(set(ids)) == CALLS and all(i.startswith("tr-") for i in ids)
    assert stored_traces(settings) == {}  # not even the nested spans, which follow their unsampled root


def test_a_sample_of_calls_is_stored() -> None:
    settings = load_settings(serve={"trace_sample": 0.5})
    tracer = Tracer(settings)
    ids = run_concurrently(tracer)
    tracer.flush()
    stored = stored_traces(settings)
    assert len(set(ids)) == CALLS
    assert 0 < len(stored) < CALLS and set(stored) <= set(ids)  # P(all or none of 40 sampled) ≈ 2e-12


def test_a_failing_call_raises_and_its_trace_records_the_error() -> None:
    settings = load_settings()
    tracer = Tracer(settings)

    def broken() -> SimpleNamespace:
        raise RuntimeError("LM down")

    with pytest.raises(RuntimeError, match="LM down"):
        tracer.run("flywheel.rag", {"question": "q", "user": "alice"}, broken)
    tracer.flush()
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.tracking.experiment)
    (trace,) = client.search_traces(locations=[experiment.experiment_id])
    assert trace.info.state.value == "ERROR"


def test_a_registry_lookup_during_a_call_keeps_its_trace_whole() -> None:
    """The champion refresh loop looks up the registry while requests are in flight; that lookup used
    to call mlflow.set_experiment, which resets MLflow's tracer provider and orphaned the in-flight
    request's outer spans (its root span never reached the store)."""
    from flywheel.registry.programs import ProgramRegistry

    settings = load_settings()
    tracer = Tracer(settings)
    registry = ProgramRegistry(settings)

    def call_with_refresh() -> SimpleNamespace:
        with mlflow.start_span(name="outer"):
            registry.get("rag")  # what Assistant.refresh() does, from another thread, mid-request
            return program_call(7)

    _, trace_id = tracer.run("flywheel.rag", {"question": "q7", "user": "alice"}, call_with_refresh)
    tracer.flush()
    assert stored_traces(settings)[trace_id] == sorted([*SPANS, "outer"])


def test_each_trace_info_is_stored_before_its_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's exporter logs a batch's spans, then each trace's info: the store then creates every trace
    row from its spans and takes its slow conflict path for the info (12.5 vs 4.8 ms of CPU per trace).
    The serving exporter sends the info first; the stored trace is as complete as before."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    order: list[tuple[str, str]] = []
    start_trace, log_spans = SqlAlchemyStore.start_trace, SqlAlchemyStore.log_spans

    def recorded_start_trace(self: SqlAlchemyStore, trace_info: object) -> object:
        order.append(("info", trace_info.trace_id))  # type: ignore[attr-defined]
        return start_trace(self, trace_info)

    def recorded_log_spans(self: SqlAlchemyStore, location: str, spans: list[object], **kwargs: object) -> object:
        order.extend(("spans", trace_id) for trace_id in dict.fromkeys(s.trace_id for s in spans))  # type: ignore[attr-defined]
        return log_spans(self, location, spans, **kwargs)

    monkeypatch.setattr(SqlAlchemyStore, "start_trace", recorded_start_trace)
    monkeypatch.setattr(SqlAlchemyStore, "log_spans", recorded_log_spans)
    monkeypatch.setenv("MLFLOW_ASYNC_TRACE_LOGGING_MAX_INTERVAL_MILLIS", "2000")  # whole traces in a batch
    settings = load_settings()
    tracer = Tracer(settings)
    ids = run_concurrently(tracer)
    tracer.flush()

    assert {trace_id for kind, trace_id in order if kind == "info"} == set(ids)
    first = {}
    for position, (kind, trace_id) in enumerate(order):
        first.setdefault((kind, trace_id), position)
    infos_first = sum(first[("info", t)] < first[("spans", t)] for t in ids)
    assert infos_first >= CALLS - 2  # a trace whose spans straddle two batches may still go spans-first

    trace = MlflowClient(tracking_uri=settings.tracking_uri).get_trace(ids[5])
    assert sorted(s.name for s in trace.data.spans) == SPANS
    assert trace.info.state.value == "OK" and trace.info.tags["mlflow.traceName"] == "flywheel.rag"
    assert '"q5"' in trace.info.request_preview and "answer 5" in trace.info.response_preview
    assert trace.info.trace_metadata["mlflow.trace.infoFinalized"] == "true"
    assert trace.info.trace_metadata["mlflow.trace_schema.version"] == "3"
    assert trace.info.tags["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    written = [p for p in settings.home.rglob("*") if p.is_file() and "traces" in p.parts]
    assert written == []  # the spans are in the store only: no trace data file per trace as well


def test_imports_of_absent_packages_fail_at_once_and_installed_ones_are_untouched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib
    import sys

    from flywheel.serve.trace_exporter import skip_absent_imports

    monkeypatch.delitem(sys.modules, "no_such_package_flywheel", raising=False)
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    marked = skip_absent_imports(("no_such_package_flywheel", "colorsys"))
    try:
        assert marked == ["no_such_package_flywheel"]
        assert "colorsys" not in sys.modules  # installed: left to the normal import
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("no_such_package_flywheel.sub")
        assert importlib.import_module("colorsys").rgb_to_hsv(0, 0, 0) == (0, 0, 0)
    finally:
        sys.modules.pop("no_such_package_flywheel", None)


def test_a_served_chain_of_thought_records_its_predict_step_once() -> None:
    """ChainOfThought only calls its Predict with the same inputs: its span would repeat the Predict span
    (passages included), so serving leaves it out and the Predict span hangs from the enclosing module."""
    import dspy
    from dspy.utils import DummyLM

    class Answer(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.respond = dspy.ChainOfThought("context, question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.respond(context="Oil is checked daily.", question=question)

    settings = load_settings()
    tracer = Tracer(settings)
    lm = DummyLM([{"reasoning": "The context says so.", "answer": "daily"}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        prediction, trace_id = tracer.run("flywheel.rag", {"question": "q"}, lambda: Answer()(question="When?"))
    tracer.flush()
    assert prediction.answer == "daily"
    spans = {s.name: s for s in MlflowClient(tracking_uri=settings.tracking_uri).get_trace(trace_id).data.spans}
    assert "ChainOfThought.forward" not in spans
    assert spans["Predict.forward"].parent_id == spans["Answer.forward"].span_id
    assert spans["Predict.forward"].inputs["context"] == "Oil is checked daily."
    assert spans["Predict.forward"].outputs["reasoning"] == "The context says so."
