"""Throughput of ``flywheel serve --workers N`` (processes), N = 1, 2, 4, on SQLite and on PostgreSQL stores.

Each configuration serves the same chat requests (sample questions as their users) against the stub
LM with a fixed latency, tracing on (default), at one concurrency; the configurations of one store are
measured one after the other on one FLYWHEEL_HOME (shared LanceDB, catalog, keys, feedback and MLflow
store: what N replicas behind a load balancer share). Stores:

- ``sqlite``: the defaults, SQLite files under FLYWHEEL_HOME (catalog.db, mlflow.db);
- ``postgres``: a throwaway PostgreSQL server (:mod:`bench.postgres`), set by configuration only:
  ``knowledge.catalog_url`` (catalog, feedback, keys, conversations) and ``tracking.uri`` (MLflow
  traces and registry), both ``postgresql+psycopg://…``; the sample catalog is copied into it.

Reported: requests/s, p50/p95, failed requests and traces stored per answer (all processes write to
the one tracking store). ``--stores`` defaults to both when PostgreSQL can run here (Debian's
``postgresql`` package and psycopg), else SQLite alone (saying why).

Run: python -m bench.workers [--stores sqlite,postgres] [--workers 1,2,4] [--concurrency 32] [--requests 400]
     [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text

from bench import postgres, services
from bench.deploy import count_traces
from bench.loadgen import run_load
from bench.report import markdown_table, write_section
from bench.serve import chat_request


def serve_processes(env: dict[str, str], workers: int) -> services.Server:
    port = services.free_port()
    argv = [
        str(services.BIN / "flywheel"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return services.Server(f"flywheel-workers-{workers}", argv, env, port)


def all_started(server: services.Server, n: int, timeout_s: float = 600) -> None:
    """Wait until every process finished its start-up (uvicorn logs one line per process at INFO)."""
    deadline = time.monotonic() + timeout_s
    while server.tail(10**6).count("Application startup complete") < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n} processes did not all start:\n{server.tail()}")
        time.sleep(0.5)


def traces_settled(tracking_uri: str, quiet_s: float = 5.0, limit_s: float = 120.0) -> float:
    """Wait until the tracking store's trace count has not grown for ``quiet_s``; seconds waited."""
    started = last_change = time.monotonic()
    count = count_traces(tracking_uri)
    while time.monotonic() - last_change < quiet_s and time.monotonic() - started < limit_s:
        time.sleep(1.0)
        now = count_traces(tracking_uri)
        if now != count:
            count, last_change = now, time.monotonic()
    return last_change - started


STORES = ("sqlite", "postgres")


@dataclass
class Store:
    """Where one configuration keeps its state: the settings that say so, and the tracking URI to count traces in."""

    name: str
    home: Path
    tracking_uri: str
    settings: dict[str, str] = field(default_factory=dict)


def copy_database(source_url: str, target_url: str) -> dict[str, int]:
    """Every Flywheel table's rows from ``source_url`` into the (migrated, empty) database at ``target_url``;
    rows copied per table. PostgreSQL sequences are moved past the copied ids."""
    from flywheel.stores import Base, open_database  # declares every table

    source = create_engine(source_url)
    target = open_database(target_url, "the benchmark's database").engine
    copied: dict[str, int] = {}
    try:
        with source.connect() as reading, target.begin() as writing:
            for table in Base.metadata.sorted_tables:  # parents before children (foreign keys)
                rows = [dict(row._mapping) for row in reading.execute(select(table))]
                if rows:
                    writing.execute(insert(table), rows)
                copied[table.name] = len(rows)
                serial = [c for c in table.primary_key.columns if c.autoincrement is True]
                if rows and serial and target.dialect.name == "postgresql":
                    column = serial[0]
                    top = writing.execute(select(func.max(column))).scalar()
                    writing.execute(
                        text("SELECT setval(pg_get_serial_sequence(:table, :column), :top)"),
                        {"table": table.name, "column": column.name, "top": top},
                    )
    finally:
        source.dispose()
    return copied


@contextmanager
def store(name: str) -> Iterator[Store]:
    """A fresh copy of the sample home, its stores on SQLite files or on a throwaway PostgreSQL server
    (stopped and removed when the block ends)."""
    home = services.fresh_home()
    if name == "sqlite":
        yield Store(name, home, f"sqlite:///{home / 'mlflow.db'}")
        return
    with postgres.running() as server:
        catalog, tracking = server.new_database("catalog"), server.new_database("mlflow")
        copy_database(f"sqlite:///{home / 'catalog.db'}", catalog)
        (home / "catalog.db").unlink()  # nothing may fall back to the SQLite file unnoticed
        yield Store(name, home, tracking, {"KNOWLEDGE__CATALOG_URL": catalog, "TRACKING__URI": tracking})


def default_stores() -> str:
    reason = postgres.unavailable()
    if reason is None:
        return ",".join(STORES)
    print(f"bench.workers: SQLite stores only ({reason})", file=sys.stderr, flush=True)
    return "sqlite"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default=None, help="sqlite,postgres (default: both when PostgreSQL can run here)")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    stores = [s.strip() for s in (args.stores or default_stores()).split(",") if s.strip()]
    unknown = sorted(set(stores) - set(STORES))
    if unknown:
        parser.error(f"unknown store(s) {', '.join(unknown)}; known: {', '.join(STORES)}")
    workers = [int(w) for w in args.workers.split(",")]
    services.exit_on_sigterm()
    rows = services.questions()
    out: list[list[str]] = []
    summary: dict[str, dict[str, dict[str, float]]] = {}
    with services.stub_lm(args.latency_ms) as stub:
        for name in stores:
            with store(name) as where:
                keys = services.create_keys(where.home, sorted({r["user"] for r in rows}), **where.settings)
                env = services.service_env(
                    where.home, stub.url + "/v1", "stub", SERVE__WORKERS="64", LOG_LEVEL="INFO", **where.settings
                )
                for n in workers:
                    row, figures = measure(args, where, env, keys, rows, n)
                    out.append(row)
                    summary.setdefault(name, {})[str(n)] = figures
    table = markdown_table(
        [
            "stores",
            "processes",
            "requests/s",
            "p50 ms",
            "p95 ms",
            "failed",
            "traces stored / answers",
            "traces still being written after the load, s",
        ],
        out,
    )
    print(table)
    services.save_summary("workers", {"stores": summary, "requests": args.requests, "concurrency": args.concurrency})
    write_section(
        "workers",
        "Many server processes on SQLite and on PostgreSQL: `flywheel serve --workers N`",
        (
            f"Stub LM {args.latency_ms:g} ms, concurrency {args.concurrency}, {args.requests} chat requests per "
            "configuration after a warm-up, tracing on; one FLYWHEEL_HOME shared by the processes (LanceDB). "
            "Stores `sqlite`: SQLite catalog / keys / feedback and MLflow SQLite tracking store under the home; "
            "`postgres`: the same on a throwaway local PostgreSQL server (unix socket), set by "
            "`knowledge.catalog_url` and `tracking.uri` = `postgresql+psycopg://…`. Answers include the warm-up "
            f"requests in the traces column. Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores when "
            "written (other jobs shared the machine).\n\n" + table
        ),
        "python -m bench.workers" + (f" --stores {args.stores}" if args.stores else ""),
    )


def measure(
    args: argparse.Namespace,
    where: Store,
    env: dict[str, str],
    keys: dict[str, str],
    rows: list[dict[str, str]],
    n: int,
) -> tuple[list[str], dict[str, float]]:
    """One configuration: ``n`` processes under the load; its table row and its headline figures."""
    before = max(count_traces(where.tracking_uri), 0)  # -1: no trace table yet
    with serve_processes(env, n) as server:
        all_started(server, n)
        result = asyncio.run(
            run_load(
                chat_request(server.url, keys, rows),
                concurrency=args.concurrency,
                requests=args.requests,
                warmup=4 * n,
                duration_s=120,
            )
        )
        settled = traces_settled(where.tracking_uri)  # queued traces written before the stop (which allows 15 s)
    traces = count_traces(where.tracking_uri) - before
    answers = result.ok + 4 * n
    row = [
        where.name,
        str(n),
        f"{result.throughput:.1f}",
        f"{result.p50 * 1000:.0f}",
        f"{result.p95 * 1000:.0f}",
        str(result.errors),
        f"{traces} / {answers}",
        f"{settled:.0f}",
    ]
    print(row, result.error_samples[:3], flush=True)
    figures = {
        "throughput": result.throughput,
        "p50_ms": result.p50 * 1000,
        "p95_ms": result.p95 * 1000,
        "failed": float(result.errors),
        "traces": float(traces),
        "answers": float(answers),
    }
    return row, figures


if __name__ == "__main__":
    main()
