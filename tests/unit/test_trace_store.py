"""SinkTrackingStore (serve/trace_store.py): the trace sink stores many trace infos in one transaction,
with MLflow's own start_trace, and the rows read back exactly as MLflow's one-by-one path writes them;
a trace that already exists or a failing one costs no other trace of the batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.entities import Span, TraceInfo
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from sqlalchemy import event

from flywheel.serve.trace_exporter import use_trace_sink
from flywheel.serve.trace_store import SinkTrackingStore


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    """Six finished traces (root, retrieval, LM spans), as the serving process exports them. Written
    synchronously into a store of their own, whatever exporter earlier tests of this process left."""
    home = tmp_path_factory.mktemp("source")
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        patch.setenv("MLFLOW_TRACE_SAMPLING_RATIO", "1")
        use_trace_sink(None)  # a trace sink an earlier test's service posted to is gone
        mlflow.set_tracking_uri(f"sqlite:///{home}/source.db")
        mlflow.tracing.reset()
        try:
            yield record_six()
        finally:
            mlflow.tracing.reset()
            mlflow.set_tracking_uri(previous)


def record_six() -> list[Any]:
    experiment = mlflow.set_experiment("source")

    @mlflow.trace(span_type="RETRIEVER")
    def retrieve(question: str) -> list[str]:
        return [f"passage about {question}"]

    @mlflow.trace(span_type="CHAIN")
    def answer(question: str) -> dict[str, str]:
        return {"answer": retrieve(question)[0]}

    for i in range(6):
        answer(f"question {i}")
    mlflow.flush_trace_async_logging()
    client = mlflow.MlflowClient()
    found = client.search_traces(locations=[experiment.experiment_id], max_results=10)
    traces = [client.get_trace(trace.info.trace_id) for trace in found]
    assert len(traces) == 6, f"recorded {len(traces)} of 6 traces"
    return traces


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Empty tracking databases: SQLite files, then fresh databases on the PostgreSQL server."""
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{tmp_path / name}.db"
    server = request.getfixturevalue("postgres")
    return lambda name: server.new_database(name)


def fresh(cls: type, url: str, artifacts: Path) -> tuple[Any, str]:
    store = cls(url, str(artifacts))
    return store, store.create_experiment("served")


def infos_for(traces: list[Any], experiment_id: str) -> list[TraceInfo]:
    infos = []
    for trace in traces:
        info = trace.info.to_dict()
        info["trace_location"]["mlflow_experiment"]["experiment_id"] = experiment_id
        info["tags"].pop("mlflow.artifactLocation", None)
        infos.append(TraceInfo.from_dict(info))
    return infos


def spans_of(trace: Any) -> list[Span]:
    return [Span.from_dict(span.to_dict()) for span in trace.data.spans]


def stored(store: Any, trace_id: str) -> dict[str, Any]:
    info = store.get_trace_info(trace_id).to_dict()
    info["tags"].pop("mlflow.artifactLocation")  # names the store's artifact directory
    return info


def count_commits(store: Any) -> list[int]:
    commits = [0]
    event.listen(store.engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1))
    return commits


def test_a_batch_of_new_traces_is_one_transaction_with_mlflows_rows(
    recorded: list[Any], database: Any, tmp_path: Path
) -> None:
    mlflow_store, mlflow_experiment = fresh(SqlAlchemyStore, database("mlflow"), tmp_path)
    sink_store, sink_experiment = fresh(SinkTrackingStore, database("sink"), tmp_path)
    assert mlflow_experiment == sink_experiment
    for info in infos_for(recorded, mlflow_experiment):
        mlflow_store.start_trace(info)
    commits = count_commits(sink_store)
    sink_store.start_traces(infos_for(recorded, sink_experiment))
    # The batch, then the check that all arrived (MLflow: a session per trace).
    assert commits[0] <= 2
    for trace in recorded:
        assert stored(sink_store, trace.info.trace_id) == stored(mlflow_store, trace.info.trace_id)


def test_a_trace_already_stored_is_merged_and_the_others_stored(
    recorded: list[Any], database: Any, tmp_path: Path
) -> None:
    url = database("sink")
    store, experiment = fresh(SinkTrackingStore, url, tmp_path)
    early = recorded[2]
    store.log_spans(experiment, spans_of(early))  # its spans came in an earlier post
    store.start_traces(infos_for(recorded, experiment))
    for trace in recorded:
        info = store.get_trace_info(trace.info.trace_id)
        assert info.request_preview == trace.info.request_preview
    merged = mlflow.MlflowClient(tracking_uri=url).get_trace(early.info.trace_id)
    assert merged is not None and len(merged.data.spans) == len(early.data.spans)
    assert merged.info.tags.get("mlflow.traceName") == early.info.tags.get("mlflow.traceName")


def test_a_failing_trace_costs_no_other_trace_of_the_batch(recorded: list[Any], database: Any, tmp_path: Path) -> None:
    store, experiment = fresh(SinkTrackingStore, database("sink"), tmp_path)
    gone = store.create_experiment("deleted")
    store.delete_experiment(gone)
    infos = infos_for(recorded[:3], experiment) + infos_for(recorded[3:4], gone) + infos_for(recorded[4:], experiment)
    with pytest.raises(MlflowException):
        store.start_traces(infos)
    for trace in recorded[:3] + recorded[4:]:
        assert store.get_trace_info(trace.info.trace_id).trace_id == trace.info.trace_id


def test_the_experiment_is_read_once_for_many_traces(recorded: list[Any], tmp_path: Path, monkeypatch) -> None:
    store, experiment = fresh(SinkTrackingStore, f"sqlite:///{tmp_path / 'sink.db'}", tmp_path)
    reads = []
    original = SqlAlchemyStore.get_experiment
    monkeypatch.setattr(SqlAlchemyStore, "get_experiment", lambda self, eid: reads.append(eid) or original(self, eid))
    for info in infos_for(recorded, experiment):
        store.start_trace(info)
    assert reads == [experiment]
