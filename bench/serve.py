"""Serving throughput and latency of ``flywheel serve`` against a stub LM with a fixed latency.

The service answers the sample questions (each as its labelled user, with that user's API key)
through ``POST /v1/chat/completions`` (model ``rag``, not streamed) while the stub LM
(``bench.stub_lm``) waits a fixed time per completion. Next to each figure: the stub's own capacity
at the same concurrency (the stub loaded directly with the same completion request), so the gap is
what the service adds. Per request, the LM time is read at the stub, the retrieval time (query
embedding + LanceDB search) inside the service (``bench.instrument``), and framework overhead =
mean latency − LM time − retrieval time.

Run: python -m bench.serve [--quick] [--latencies 50,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import services
from bench.loadgen import LoadResult, RequestSpec, merge, run_load
from bench.report import markdown_table, write_section

LEVELS = (1, 8, 32)
RUN_CAP_S = 30.0  # a run also stops after this long, whatever its request budget (slow services stay bounded)
SERVICE_WORKERS = 64  # serve.workers: program calls in flight; the default (8) would cap concurrency 32


@dataclass
class Measured:
    """One load run plus the per-request times read at the LM and inside the service."""

    result: LoadResult
    lm_s: float  # LM time per request (sum over its LM calls)
    lm_calls: float  # LM calls per request
    retrieval_s: float  # embedding + index search per request
    server_s: float  # the service's own request time (arrival → last byte)
    cpu_s: float = float("nan")  # CPU of the service process per request (all its threads)
    export_cpu_s: float = float("nan")  # CPU of its child processes (trace export) per request, backlog included
    rounds: list[float] = field(default_factory=list)  # throughput of each interleaved round (combine)

    @property
    def throughput(self) -> float:
        """Median requests/s over the interleaved rounds (the whole run's when it was one run)."""
        return statistics.median(self.rounds) if self.rounds else self.result.throughput

    @property
    def overhead_s(self) -> float:
        """Mean latency − LM time − retrieval time."""
        return self.result.mean - self.lm_s - self.retrieval_s


def budget(level: int, quick: bool, stub_latency_ms: float) -> int:
    """Requests per run: enough for stable percentiles, bounded in time."""
    if level == 1:
        return max(10, min(60 if not quick else 20, int(6000 / max(stub_latency_ms, 1))))
    return max(4 * level, min((200 if not quick else 64), int(level * 8000 / max(stub_latency_ms, 1))))


def chat_request(
    url: str, keys: dict[str, str], rows: list[dict[str, str]], model: str = "rag", path: str = "/v1/chat/completions"
) -> Callable[[int], RequestSpec]:
    """The i-th request: question i (cycling) asked as its user, OpenAI chat shape."""

    def make(i: int) -> RequestSpec:
        row = rows[i % len(rows)]
        body = {"model": model, "messages": [{"role": "user", "content": row["question"]}]}
        return RequestSpec(
            url + path, body, headers={"Authorization": f"Bearer {keys[row['user']]}"}, check=_has_answer
        )

    return make


def _has_answer(response: httpx.Response) -> bool:
    try:
        return bool(response.json()["choices"][0]["message"]["content"].strip())
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return False


async def measure(
    make: Callable[[int], RequestSpec],
    concurrency: int,
    requests: int,
    *,
    lm: services.Server,
    service: services.Server | None,
    warmup: int | None = None,
    keep: bool = False,
    cap_s: float | None = RUN_CAP_S,
) -> Measured:
    """A warmed-up load run with the LM's and the service's counters zeroed after the warm-up."""

    cpu_before = (float("nan"), float("nan"))

    def reset() -> None:
        nonlocal cpu_before
        lm.reset()
        if service is not None:
            service.reset()
            cpu_before = service.cpu_seconds()

    result = await run_load(
        make,
        concurrency=concurrency,
        requests=requests,
        keep_responses=keep,
        duration_s=cap_s,
        warmup=concurrency * 2 if warmup is None else warmup,
        after_warmup=reset,
    )
    lm_stats = lm.stats()
    lm_count, lm_busy = _counter(lm_stats)
    done = max(result.ok + result.errors, 1)
    if service is None:
        return Measured(result, lm_busy / max(lm_count, 1), 1.0, 0.0, lm_busy / max(lm_count, 1))
    own_cpu = service.cpu_seconds()[0] - cpu_before[0]
    export_cpu = settled_child_cpu(service) - cpu_before[1]
    stats = service.stats()
    retrieval = stats.get("retrieval", {}).get("busy_s", 0.0)
    server = stats.get("http", {}).get("busy_s", 0.0)
    return Measured(
        result, lm_busy / done, lm_count / done, retrieval / done, server / done, own_cpu / done, export_cpu / done
    )


def settled_child_cpu(service: services.Server, timeout_s: float = 60.0) -> float:
    """CPU seconds of the service's child processes once they are idle (a trace export process still
    writing the backlog of a load run keeps working after it): polled until a half second adds < 10 ms."""
    deadline = time.monotonic() + timeout_s
    last = service.cpu_seconds()[1]
    while time.monotonic() < deadline and not math.isnan(last):  # NaN: no /proc, nothing to wait for
        time.sleep(0.5)
        now = service.cpu_seconds()[1]
        if now - last < 0.01:
            return now
        last = now
    return last


def _counter(stats: dict[str, Any]) -> tuple[int, float]:
    """(calls, seconds) from the stub's /stats or an instrumented server's http counter."""
    if "requests" in stats:
        return int(stats["requests"]), float(stats["busy_s"])
    http = stats.get("http", {})
    return int(http.get("count", 0)), float(http.get("busy_s", 0.0))


async def interleaved(runs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, Measured]:
    """Run each named measurement ``rounds`` times, alternating A B A B …, and merge per name."""
    collected: dict[str, list[Measured]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            collected[name].append(await run())
    return {name: combine(items) for name, items in collected.items()}


def combine(items: list[Measured]) -> Measured:
    weights = [max(m.result.ok + m.result.errors, 1) for m in items]
    total = sum(weights)

    def avg(get: Callable[[Measured], float]) -> float:
        return sum(get(m) * w for m, w in zip(items, weights, strict=True)) / total

    return Measured(
        merge([m.result for m in items]),
        avg(lambda m: m.lm_s),
        avg(lambda m: m.lm_calls),
        avg(lambda m: m.retrieval_s),
        avg(lambda m: m.server_s),
        avg(lambda m: m.cpu_s),
        avg(lambda m: m.export_cpu_s),
        [m.result.throughput for m in items],
    )


def paired_ratio(a: Measured, b: Measured) -> float:
    """Throughput of ``a`` over ``b``: the median of the ratios of their interleaved rounds (each pair ran
    back to back, so a slow spell of the machine weighs on both sides of a ratio), or of the whole runs."""
    if a.rounds and len(a.rounds) == len(b.rounds):
        ratios = [x / y for x, y in zip(a.rounds, b.rounds, strict=True) if y > 0]
        if ratios:
            return statistics.median(ratios)
    return a.result.throughput / b.result.throughput if b.result.throughput > 0 else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}" if seconds == seconds else "–"


async def lm_request_body(lm: services.Server) -> dict[str, Any]:
    """The completion request the service last sent to the stub (the capacity runs replay it)."""
    async with httpx.AsyncClient() as client:
        return (await client.get(lm.url + "/last")).json()


def stub_capacity_request(lm: services.Server, body: dict[str, Any]) -> Callable[[int], RequestSpec]:
    return lambda _i: RequestSpec(lm.url + "/v1/chat/completions", body)


async def run(latencies: list[float], quick: bool) -> tuple[str, dict[str, float], dict[str, float]]:
    rows_q = services.questions()
    home = services.fresh_home()
    keys = services.create_keys(home, sorted({r["user"] for r in rows_q}))
    stub = services.stub_lm(latencies[0])
    table_rows: list[list[Any]] = []
    with stub:
        env = services.service_env(home, stub.url + "/v1", "stub", SERVE__WORKERS=str(SERVICE_WORKERS))
        with services.flywheel_service(env) as service:
            make = chat_request(service.url, keys, rows_q)
            for latency in latencies:
                httpx.post(stub.url + "/config", json={"latency_ms": latency})
                await measure(make, 1, 3, lm=stub, service=service, warmup=2)
                body = await lm_request_body(stub)
                for level in LEVELS:
                    n = budget(level, quick, latency)
                    print(f"serve: stub {latency:g} ms, concurrency {level}, {n} requests", flush=True)
                    both = await interleaved(
                        {
                            "stub": lambda lv=level, n=n, b=body: measure(
                                stub_capacity_request(stub, b), lv, n // 2, lm=stub, service=None
                            ),
                            "flywheel": lambda lv=level, n=n: measure(make, lv, n // 2, lm=stub, service=service),
                        },
                        rounds=2,
                    )
                    cap, fw = both["stub"], both["flywheel"]
                    table_rows.append(row(latency, level, cap, fw))
    headers = [
        "stub LM ms",
        "concurrency",
        "stub capacity req/s",
        "Flywheel req/s",
        "Flywheel / capacity",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "LM ms/req",
        "retrieval ms/req",
        "overhead ms/req",
        "errors",
    ]
    table = markdown_table(headers, table_rows)
    ceiling = retrieval_ceiling(home)
    fw_c32 = max(float(r[3]) for r in table_rows if r[1] == LEVELS[-1])
    table += (
        f"\n\n**The limit on this machine.** Retrieval alone (query embedding + hybrid search, no LM, no HTTP, "
        f"{ceiling['threads']:.0f} threads in a process of its own) costs {ceiling['cpu_ms']:.0f} ms of CPU and "
        f"tops out at **{ceiling['qps']:.1f} retrievals/s** on these 2 cores, so no service doing this retrieval "
        f"(Flywheel's or LangChain's) can exceed it, whatever the stub's capacity. Flywheel at concurrency "
        f"{LEVELS[-1]}: {fw_c32:.1f} req/s = **{fw_c32 / ceiling['qps']:.2f}** of that ceiling, with the stub LM "
        f"and the load generator on the same cores."
    )
    print(table)
    ratios = {str(r[0]): float(r[4]) for r in table_rows if r[1] == LEVELS[-1]}
    return (
        table,
        ratios,
        {
            "retrieval_qps": ceiling["qps"],
            "retrieval_cpu_ms": ceiling["cpu_ms"],
            "flywheel_c32_qps": fw_c32,
            "ratio": fw_c32 / ceiling["qps"],
        },
    )


def retrieval_ceiling(home: Any, threads: int = 32, rounds: int = 3) -> dict[str, float]:
    """The machine's limit for any RAG service over this index: retrieval alone (query embedding +
    LanceDB hybrid search, as the service does it), in a process of its own, with no LM, no HTTP and
    no framework. Returns CPU ms per retrieval (one thread) and queries/s with ``threads`` threads."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "bench.serve", "--retrieval-ceiling", str(home), str(threads), str(rounds)],
        env=services.base_env(home),
        cwd=services.REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _measure_retrieval(threads: int, rounds: int) -> dict[str, float]:
    import time
    from concurrent.futures import ThreadPoolExecutor

    from flywheel.config import load_settings
    from flywheel.knowledge.base import KnowledgeBase

    settings = load_settings()
    kb = KnowledgeBase(settings)
    rows = services.questions()
    people = {r["user"]: kb.principal(r["user"]) for r in rows}

    def one(r: dict[str, str]) -> None:
        kb.search(people[r["user"]], r["question"], k=settings.programs.retrieval_k)

    for r in rows[:5]:
        one(r)
    cpu = time.process_time()
    for r in rows:
        one(r)
    cpu_ms = (time.process_time() - cpu) / len(rows) * 1e3
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, rows * rounds))
    return {"cpu_ms": cpu_ms, "qps": len(rows) * rounds / (time.perf_counter() - started), "threads": threads}


def row(latency: float, level: int, cap: Measured, fw: Measured) -> list[Any]:
    r = fw.result
    return [
        f"{latency:g}",
        level,
        f"{cap.result.throughput:.1f}",
        f"{r.throughput:.1f}",
        f"{r.throughput / cap.result.throughput:.2f}",
        ms(r.p50),
        ms(r.p95),
        ms(r.p99),
        ms(fw.lm_s),
        ms(fw.retrieval_s),
        ms(fw.overhead_s),
        r.errors,
    ]


NOTE = """\
`flywheel serve` (FastAPI + uvicorn, `serve.workers = {workers}`, DSPy cache off) answers the 60 sample
questions, each as its labelled user with an API key, on `POST /v1/chat/completions` (model `rag`), against
`bench.stub_lm`, an OpenAI-compatible stub that waits a fixed time per completion. *Stub capacity* is the stub
loaded directly with the same completion request at the same concurrency (ideally concurrency / latency).
Stub and service runs are interleaved (2 rounds each, after a warm-up of 2 × concurrency requests; a run stops
at its request budget or after {cap:.0f} s); the
load generator, the stub and the service share the machine's cores. LM ms/req is read at the stub,
retrieval (query embedding + LanceDB hybrid search) inside the service; overhead = mean latency − LM − retrieval
(queueing for the CPU under load included)."""


def main() -> None:
    import sys

    if sys.argv[1:2] == ["--retrieval-ceiling"]:  # the child process of retrieval_ceiling()
        import json

        print(json.dumps(_measure_retrieval(int(sys.argv[3]), int(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests per level")
    parser.add_argument("--latencies", default="50,1000", help="stub LM latencies in ms, comma-separated")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    services.exit_on_sigterm()
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    table, ratios, ceiling = asyncio.run(run(latencies, args.quick))
    services.save_summary("serve", {"capacity_ratio_c32": ratios, "ceiling": ceiling})
    if not args.no_write:
        body = NOTE.format(workers=SERVICE_WORKERS, cap=RUN_CAP_S) + "\n\n" + table
        write_section(
            "serve",
            "Serving: flywheel serve against a fixed-latency stub LM",
            body,
            "python -m bench.serve" + (" --quick" if args.quick else ""),
        )


if __name__ == "__main__":
    main()
