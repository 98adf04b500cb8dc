"""MLflow's SQL tracking store as the trace sink uses it: many trace infos stored in one transaction.

MLflow's ``SqlAlchemyStore.start_trace`` stores one trace info per call, in a session of its own (on
SQLite: three PRAGMA statements, the inserts, a commit), after reading the trace's experiment (another
session) to check that it is active and to derive the trace's artifact location. In the trace sink that
was 70 % of the time per served trace (py-spy, concurrency 8): the experiment read 23 %, the session and
its commit 27 %, the inserts 21 %. :class:`SinkTrackingStore` keeps MLflow's own ``start_trace`` — the
rows are MLflow's, written by MLflow's code, read back by ``mlflow.get_trace`` and the MLflow UI — and
changes only where its sessions come from and how often the experiment is read:

- :meth:`SinkTrackingStore.start_traces` runs the ``start_trace`` of many traces in one session (one
  commit), then checks the batch with one query: a trace that is not there is stored again on its own.
  That covers MLflow's conflict path for a trace already stored (its spans came in an earlier post),
  which rolls the shared session back and merges that trace, and any error.
- ``get_experiment`` answers from a cache for :data:`EXPERIMENT_TTL_S` seconds: an experiment deleted
  meanwhile still receives the traces of those seconds (MLflow itself checks at the start of each trace
  only).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from mlflow.store.tracking.dbmodels.models import SqlTraceInfo
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

EXPERIMENT_TTL_S = 10.0


class SinkTrackingStore(SqlAlchemyStore):  # type: ignore[misc]
    """``SqlAlchemyStore`` with :meth:`start_traces` and a short-lived experiment cache."""

    def __init__(self, db_uri: str, default_artifact_root: str) -> None:
        self._shared = threading.local()
        self._experiments: dict[str, tuple[float, Any]] = {}
        super().__init__(db_uri, default_artifact_root)
        self._own_sessions: Any = self.ManagedSessionMaker  # type: ignore[has-type]
        self.ManagedSessionMaker = self._session  # MLflow's methods ask this attribute for sessions

    def get_experiment(self, experiment_id: str) -> Any:
        now = time.monotonic()
        cached = self._experiments.get(str(experiment_id))
        if cached is not None and now - cached[0] < EXPERIMENT_TTL_S:
            return cached[1]
        experiment = super().get_experiment(experiment_id)
        self._experiments[str(experiment_id)] = (now, experiment)
        return experiment

    def start_traces(self, trace_infos: list[Any]) -> None:
        """Store ``trace_infos`` as ``start_trace`` does, in one transaction where it can; a failing
        trace info costs no other one (the first failure is raised once the others are stored)."""
        rest = trace_infos
        if len(trace_infos) > 1:
            # A trace already stored (its spans came first) takes MLflow's merge path, which rolls the
            # shared session back; an error does too. What is missing after the commit is stored one by one.
            with contextlib.suppress(Exception), self._one_session():
                for info in trace_infos:
                    self.start_trace(info)
            stored = self._stored_ids([info.trace_id for info in trace_infos])
            rest = [info for info in trace_infos if info.trace_id not in stored]
        failure: Exception | None = None
        for info in rest:
            try:
                self.start_trace(info)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _stored_ids(self, trace_ids: list[str]) -> set[str]:
        with self._own_sessions() as session:
            rows = session.query(SqlTraceInfo.request_id).filter(SqlTraceInfo.request_id.in_(trace_ids)).all()
        return {row[0] for row in rows}

    @contextlib.contextmanager
    def _one_session(self) -> Iterator[Any]:
        """A write session that MLflow's methods called meanwhile in this thread use (committed at the end)."""
        with self._own_sessions(read_only=False) as session:
            self._shared.session = session
            try:
                yield session
            finally:
                self._shared.session = None

    @contextlib.contextmanager
    def _session(self, read_only: bool = True) -> Iterator[Any]:
        shared = getattr(self._shared, "session", None)
        if shared is not None:
            yield shared
            return
        with self._own_sessions(read_only=read_only) as session:
            yield session
