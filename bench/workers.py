"""Throughput of ``flywheel serve --workers N`` (processes) on SQLite stores, N = 1, 2, 4.

Each configuration serves the same chat requests (sample questions as their users) against the stub
LM with a fixed latency, tracing on (default), at one concurrency; the configurations are measured
one after the other on one FLYWHEEL_HOME (shared LanceDB, catalog, keys, feedback and MLflow store:
what N replicas behind a load balancer share). Reported: requests/s, p50/p95, failed requests and
traces stored per answer (all processes write to the one tracking database).

Run: python -m bench.workers [--workers 1,2,4] [--concurrency 32] [--requests 400] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from bench import services
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


def traces_settled(home: Path, quiet_s: float = 5.0, limit_s: float = 120.0) -> float:
    """Wait until the tracking store's trace count has not grown for ``quiet_s``; seconds waited."""
    started = last_change = time.monotonic()
    count = count_traces(home)
    while time.monotonic() - last_change < quiet_s and time.monotonic() - started < limit_s:
        time.sleep(1.0)
        now = count_traces(home)
        if now != count:
            count, last_change = now, time.monotonic()
    return last_change - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    services.exit_on_sigterm()
    rows = services.questions()
    home = services.fresh_home()
    keys = services.create_keys(home, sorted({r["user"] for r in rows}))
    out = []
    with services.stub_lm(args.latency_ms) as stub:
        env = services.service_env(home, stub.url + "/v1", "stub", SERVE__WORKERS="64", LOG_LEVEL="INFO")
        for n in (int(w) for w in args.workers.split(",")):
            before = count_traces(home)
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
                settled = traces_settled(home)  # queued traces written before the stop (which allows 15 s)
            traces = count_traces(home) - before
            out.append(
                [
                    str(n),
                    f"{result.throughput:.1f}",
                    f"{result.p50 * 1000:.0f}",
                    f"{result.p95 * 1000:.0f}",
                    str(result.errors),
                    f"{traces} / {result.ok + 4 * n}",
                    f"{settled:.0f}",
                ]
            )
            print(out[-1], result.error_samples[:3], flush=True)
    table = markdown_table(
        [
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
    write_section(
        "workers",
        "Many server processes on SQLite: `flywheel serve --workers N`",
        (
            f"Stub LM {args.latency_ms:g} ms, concurrency {args.concurrency}, {args.requests} chat requests per "
            "configuration after a warm-up, tracing on; one FLYWHEEL_HOME shared by the processes (LanceDB, "
            "SQLite catalog / keys / feedback, MLflow SQLite tracking store). Answers include the warm-up requests "
            f"in the traces column. Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores when written (other "  # noqa: E501
            "jobs shared the machine).\n\n" + table
        ),
        "python -m bench.workers",
    )


if __name__ == "__main__":
    main()
