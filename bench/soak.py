"""Soak: `flywheel serve` under a steady mixed load for a bounded time, against the stub LM.

    python -m bench.soak                  # 10 minutes at concurrency 16 (the issue's soak)
    python -m bench.soak --minutes 3      # a shorter run

Several sample users (one API key each) send, at a fixed concurrency, a mix of: chat completions (plain
and streamed), ``/invocations`` rows, feedback on their own earlier answers, small uploads (a rolling
set of five file names per user, so the index does not grow without bound) and document listings.
Retrieval runs inside every chat and invocation (real embedder, real LanceDB, sample knowledge base);
the LM is ``bench.stub_lm`` with a fixed latency, so the service itself is what is measured.

Reported: requests and errors (goal 0) in total and per operation, p50/p99 latency per minute,
the service's RSS and open file descriptors at the start and the end (bounded growth), and traces
stored vs answers given (traces are written off the request path; MLflow drops them only when its
queue overflows). Everything runs on loopback and stops by itself; written to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import services
from bench.report import markdown_table, percentile, write_section

OPERATIONS = {"chat": 30, "chat_stream": 15, "invocations": 15, "feedback": 15, "upload": 5, "documents": 20}
USERS = {"alice": "mechanics", "bob": "pilots", "carol": "customer-support", "erin": "mechanics"}
SAMPLE_EVERY_S = 10.0


@dataclass
class Outcome:
    minute: int
    op: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class Soak:
    url: str
    keys: dict[str, str]
    questions: dict[str, list[str]]
    pid: int
    outcomes: list[Outcome] = field(default_factory=list)
    traces: dict[str, collections.deque[str]] = field(default_factory=dict)
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, rss bytes, fds)
    uploads: int = 0


def process_usage(pid: int) -> tuple[int, int]:
    """(RSS bytes, open file descriptors) of a process, read from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def one_request(soak: Soak, client: httpx.AsyncClient, rng: random.Random, op: str) -> tuple[str, bool, str]:
    """Send one request of kind ``op``; returns (the kind actually sent, success, a short description)."""
    user = rng.choice(sorted(soak.keys))
    headers = {"Authorization": f"Bearer {soak.keys[user]}"}
    question = rng.choice(soak.questions[user])
    chat = {"model": "rag", "messages": [{"role": "user", "content": question}]}
    known = soak.traces.setdefault(user, collections.deque(maxlen=50))
    if op == "feedback" and not known:
        op = "chat"  # nothing to rate yet
    if op == "chat":
        reply = await client.post("/v1/chat/completions", json=chat, headers=headers)
        if reply.status_code == 200:
            known.append(reply.json()["flywheel"]["trace_id"])
        return op, reply.status_code == 200, f"{op} {reply.status_code} {reply.text[:120]}"
    if op == "chat_stream":
        async with client.stream(
            "POST", "/v1/chat/completions", json={**chat, "stream": True}, headers=headers
        ) as reply:
            body = (await reply.aread()).decode(errors="replace")
        done = reply.status_code == 200 and body.rstrip().endswith("[DONE]")
        return op, done, f"{op} {reply.status_code} {body[:120]}"
    if op == "invocations":
        reply = await client.post("/invocations", json={"dataframe_records": [{"question": question}]}, headers=headers)
        good = reply.status_code == 200 and not reply.json()["predictions"][0].get("error")
        return op, good, f"{op} {reply.status_code} {reply.text[:120]}"
    if op == "feedback":
        body = {"trace_id": rng.choice(list(known)), "rating": rng.choice(["up", "down"]), "comment": "soak"}
        reply = await client.post("/feedback", json=body, headers=headers)
        return op, reply.status_code == 201, f"{op} {reply.status_code} {reply.text[:120]}"
    if op == "upload":
        soak.uploads += 1
        name = f"soak-{user}-{soak.uploads % 5}.md"
        text = f"# Soak note {soak.uploads}\n\nShift handover {soak.uploads}: {question}\n"
        reply = await client.post(
            "/documents",
            headers=headers,
            data={"groups": USERS[user]},
            files=[("files", (name, text.encode(), "text/markdown"))],
        )
        return op, reply.status_code == 201, f"{op} {reply.status_code} {reply.text[:120]}"
    reply = await client.get("/documents", headers=headers)
    return op, reply.status_code == 200, f"{op} {reply.status_code} {reply.text[:120]}"


async def drive(soak: Soak, minutes: float, concurrency: int, seed: int = 0) -> float:
    """Run the mixed load for ``minutes``; returns the wall-clock seconds it ran."""
    names, weights = list(OPERATIONS), list(OPERATIONS.values())
    started = time.monotonic()
    end = started + minutes * 60
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(n: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(seed * 1000 + n)
        while time.monotonic() < end:
            op = rng.choices(names, weights)[0]
            t0 = time.monotonic()
            try:
                op, ok, detail = await one_request(soak, client, rng, op)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                ok, detail = False, f"{op} {type(exc).__name__}: {exc}"
            soak.outcomes.append(Outcome(int((t0 - started) // 60), op, time.monotonic() - t0, ok, detail))

    async def sampler() -> None:
        while time.monotonic() < end:
            soak.samples.append((time.monotonic() - started, *process_usage(soak.pid)))
            await asyncio.sleep(SAMPLE_EVERY_S)

    async with httpx.AsyncClient(base_url=soak.url, timeout=120, limits=limits) as client:
        await asyncio.gather(sampler(), *(worker(n, client) for n in range(concurrency)))
    soak.samples.append((time.monotonic() - started, *process_usage(soak.pid)))
    return time.monotonic() - started


def count_rows(database: Path, query: str) -> int | None:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            return int(db.execute(query).fetchone()[0])
    except sqlite3.Error:
        return None


def op_latencies(soak: Soak, op: str) -> tuple[float, float, float]:
    values = [o.seconds * 1000 for o in soak.outcomes if o.op == op and o.ok]
    return percentile(values, 50), percentile(values, 99), max(values, default=float("nan"))


def user_questions() -> dict[str, list[str]]:
    rows = services.questions()
    out = {user: [r["question"] for r in rows if r["user"] == user] for user in USERS}
    return {user: qs or [r["question"] for r in rows[:10]] for user, qs in out.items()}


def report(soak: Soak, seconds: float, home: Path, args: argparse.Namespace) -> str:
    per_minute: dict[int, list[Outcome]] = collections.defaultdict(list)
    for outcome in soak.outcomes:
        per_minute[outcome.minute].append(outcome)
    rows = []
    for minute in sorted(per_minute):
        items = per_minute[minute]
        latencies = [o.seconds * 1000 for o in items if o.ok]
        span = min(60.0, seconds - minute * 60) or 60.0
        rows.append(
            [
                minute + 1,
                len(items),
                sum(not o.ok for o in items),
                f"{len(items) / span:.1f}",
                f"{percentile(latencies, 50):.0f}",
                f"{percentile(latencies, 99):.0f}",
            ]
        )
    by_op = collections.Counter(o.op for o in soak.outcomes)
    failed = collections.Counter(o.op for o in soak.outcomes if not o.ok)
    answered = sum(1 for o in soak.outcomes if o.ok and o.op in ("chat", "chat_stream", "invocations"))
    traces = count_rows(home / "mlflow.db", "SELECT count(*) FROM trace_info")
    interactions = count_rows(home / "catalog.db", "SELECT count(*) FROM interactions")
    (_, rss0, fds0), (_, rss1, fds1) = soak.samples[0], soak.samples[-1]
    peak = max(s[1] for s in soak.samples)
    errors = [o.detail for o in soak.outcomes if not o.ok][:5]
    total = len(soak.outcomes)
    return "\n\n".join(
        [
            f"{total} requests in {seconds / 60:.1f} min at concurrency {args.concurrency} from {len(USERS)} users "
            f"(stub LM {args.latency_ms:g} ms, {total / seconds:.1f} req/s), **{sum(failed.values())} errors**.",
            markdown_table(["minute", "requests", "errors", "req/s", "p50 ms", "p99 ms"], rows),
            markdown_table(
                ["operation", "requests", "errors", "p50 ms", "p99 ms", "max ms"],
                [[op, by_op[op], failed[op], *(f"{v:.0f}" for v in op_latencies(soak, op))] for op in OPERATIONS],
            ),
            markdown_table(
                ["service process", "start", "end", "peak"],
                [
                    ["RSS (MiB)", f"{rss0 / 2**20:.0f}", f"{rss1 / 2**20:.0f}", f"{peak / 2**20:.0f}"],
                    ["open file descriptors", fds0, fds1, max(s[2] for s in soak.samples)],
                ],
            ),
            f"Traces stored: {traces} for {answered} answers (chat, streamed chat and invocation rows; "
            f"trace sample {args.trace_sample:g}); answers recorded for feedback: {interactions}.",
            ("First errors: " + "; ".join(f"`{e}`" for e in errors)) if errors else "No errors.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Soak flywheel serve with a mixed load (bounded).")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="The stub LM's fixed latency.")
    parser.add_argument("--trace-sample", type=float, default=1.0)
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    args = parser.parse_args()
    services.exit_on_sigterm()
    home = services.fresh_home()
    keys = services.create_keys(home, sorted(USERS))
    soak = Soak("", keys, user_questions(), 0)
    with services.stub_lm(args.latency_ms) as stub:
        env = services.service_env(
            home, stub.url + "/v1", "stub", SERVE__WORKERS="64", SERVE__TRACE_SAMPLE=str(args.trace_sample)
        )
        service = services.flywheel_service(env)
        with service:
            assert service.proc is not None
            soak.url, soak.pid = service.url, service.proc.pid
            print(f"soak: {args.minutes:g} min at concurrency {args.concurrency} …", flush=True)
            seconds = asyncio.run(drive(soak, args.minutes, args.concurrency))
        # leaving the block stopped the service gracefully: queued traces were flushed
    body = report(soak, seconds, home, args)
    print(body)
    (services.CACHE / "soak-last.json").write_text(
        json.dumps({"seconds": seconds, "requests": len(soak.outcomes), "errors": sum(not o.ok for o in soak.outcomes)})
    )
    if not args.no_write:
        command = f"python -m bench.soak --minutes {args.minutes:g}"
        write_section("soak", "Soak: flywheel serve under a mixed load", body, command)


if __name__ == "__main__":
    main()
