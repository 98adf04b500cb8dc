"""Zero-downtime deploys: promote a new program version under load, versus restarting a LangChain app.

Flywheel: ``flywheel serve`` (stub LM, fixed latency) answers a steady concurrent load of chat
requests; version 1 of ``rag`` is champion, version 2 is registered as a candidate. Mid-run the
benchmark moves the champion alias to version 2 (``ProgramRegistry.promote``, what ``flywheel
programs promote`` and the optimize gate do). Measured: seconds from the alias move to the first answer
that says it came from version 2 (``flywheel.version`` in the reply), failed requests during the run
(goal 0), and traces stored vs requests answered. The service polls the registry every
``serve.reload_interval_s`` (default 5 s), so that interval bounds the swap time.

LangChain: its app (``bench.langchain_app``) has no registry: a new version means a restart. The
same load runs against it while it is stopped and started again; measured: restart → first answer,
and the requests that failed meanwhile.

Run: python -m bench.deploy [--concurrency 8] [--latency-ms 50] [--reload-s 5]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import services
from bench.compare import first_answer, langchain_request
from bench.report import markdown_table, write_section
from bench.serve import chat_request


@dataclass
class Outcome:
    sent: float
    done: float
    ok: bool
    version: int | None = None
    error: str = ""


@dataclass
class Load:
    """Concurrent requests in a background thread until ``stop()``; every outcome kept."""

    make: Any  # i -> RequestSpec
    concurrency: int
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=120)
        return self.outcomes

    async def _run(self) -> None:
        counter = iter(range(10**9))
        async with httpx.AsyncClient(timeout=60) as client:

            async def worker() -> None:
                while not self._stop.is_set():
                    spec = self.make(next(counter))
                    sent = time.perf_counter()
                    try:
                        reply = await client.post(spec.url, json=spec.json, headers=spec.headers)
                        ok = reply.status_code == 200 and (spec.check is None or spec.check(reply))
                        version = (reply.json().get("flywheel") or {}).get("version") if ok else None
                        error = "" if ok else f"HTTP {reply.status_code}"
                    except httpx.HTTPError as exc:
                        ok, version, error = False, None, type(exc).__name__
                        await asyncio.sleep(0.05)  # a refused connection returns at once: do not spin
                    self.outcomes.append(Outcome(sent, time.perf_counter(), ok, version, error))

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))


def count_traces(tracking_uri: str) -> int:
    """Traces in the MLflow tracking store at ``tracking_uri`` (SQLite or PostgreSQL); -1 without a trace table."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(tracking_uri)
    try:
        with engine.connect() as db:
            return int(db.execute(text("SELECT count(*) FROM trace_info")).scalar_one())
    except SQLAlchemyError:
        return -1
    finally:
        engine.dispose()


def flywheel_swap(args: argparse.Namespace, stub: services.Server, rows: list[dict[str, str]]) -> dict[str, Any]:
    from flywheel.config import load_settings
    from flywheel.registry.programs import ProgramRegistry

    home = services.fresh_home()
    env = services.service_env(
        home, stub.url + "/v1", "stub", SERVE__WORKERS="64", SERVE__RELOAD_INTERVAL_S=str(args.reload_s)
    )
    services.flywheel("deploy", "--program", "rag", env=env)  # version 1, champion
    services.flywheel("deploy", "--program", "rag", "--new", env=env)  # version 2, candidate
    keys = services.create_keys(home, sorted({r["user"] for r in rows}))
    with services.flywheel_service(env) as server:
        server.wait_ready()
        first_answer(chat_request(server.url, keys, rows)(0))
        load = Load(chat_request(server.url, keys, rows), args.concurrency).start()
        time.sleep(args.before_s)
        registry = ProgramRegistry(load_settings(home=home))
        registry.promote("rag", 2, reason="bench.deploy")
        promoted = time.perf_counter()
        deadline = promoted + args.reload_s + 60
        while time.perf_counter() < deadline and not any(o.version == 2 for o in list(load.outcomes)):
            time.sleep(0.05)
        time.sleep(args.after_s)
        outcomes = load.stop()
    # leaving the block stopped the service gracefully (queued traces flushed)
    v2 = [o for o in outcomes if o.version == 2]
    first_v2 = min((o.done for o in v2), default=float("nan"))
    after = [o for o in outcomes if o.sent > first_v2 + 0.001]
    return {
        "requests": len(outcomes),
        "failed": sum(not o.ok for o in outcomes),
        "errors": sorted({o.error for o in outcomes if not o.ok}),
        "swap_s": first_v2 - promoted,
        "old_after_swap": sum(o.version == 1 for o in after),
        "answered": sum(o.ok for o in outcomes) + 1,
        "traces": count_traces(f"sqlite:///{home / 'mlflow.db'}"),
        "throughput": sum(o.ok for o in outcomes) / (max(o.done for o in outcomes) - min(o.sent for o in outcomes)),
    }


def langchain_app(env: dict[str, str], port: int) -> services.Server:
    """The LangChain app on a fixed port (a restart comes back where its clients expect it)."""
    argv = [
        str(services.BIN / "uvicorn"),
        "bench.langchain_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return services.Server(f"langchain-restart-{time.monotonic_ns()}", argv, env, port)


def langchain_restart(args: argparse.Namespace, stub: services.Server, rows: list[dict[str, str]]) -> dict[str, Any]:
    home = services.fresh_home()
    env = services.service_env(home, stub.url + "/v1", "stub", SERVE__WORKERS="64")
    keys = services.create_keys(home, sorted({r["user"] for r in rows}))
    port = services.free_port()
    first = langchain_app(env, port).start()
    first.wait_ready()
    first_answer(langchain_request(first.url, keys, rows)(0))
    load = Load(langchain_request(first.url, keys, rows), args.concurrency).start()
    time.sleep(args.before_s)
    restarted = time.perf_counter()
    first.stop()
    second = langchain_app(env, port).start()
    try:
        first_answer(langchain_request(second.url, keys, rows)(0))
        back = time.perf_counter()
        time.sleep(args.after_s)
        outcomes = load.stop()
    finally:
        load.stop()
        second.stop()
    return {
        "requests": len(outcomes),
        "failed": sum(not o.ok for o in outcomes),
        "errors": sorted({o.error for o in outcomes if not o.ok}),
        "swap_s": back - restarted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--reload-s", type=float, default=5.0, help="serve.reload_interval_s of the service")
    parser.add_argument("--before-s", type=float, default=5.0, help="load before the promotion / restart")
    parser.add_argument("--after-s", type=float, default=5.0, help="load after the first new answer")
    args = parser.parse_args()
    services.exit_on_sigterm()
    rows = services.questions()
    with services.stub_lm(args.latency_ms) as stub:
        stub.wait_ready()
        fly = flywheel_swap(args, stub, rows)
        print("flywheel", fly, flush=True)
        lang = langchain_restart(args, stub, rows)
        print("langchain", lang, flush=True)
    table = markdown_table(
        [
            "deployment of a new version",
            "new version → first answer from it, s",
            "requests during the run",
            "failed requests (goal 0)",
            "traces stored / answers",
        ],
        [
            [
                f"Flywheel: promote under load (hot swap, reload interval {args.reload_s:g} s)",
                f"{fly['swap_s']:.1f}",
                fly["requests"],
                f"{fly['failed']} {' '.join(fly['errors'])}".strip(),
                f"{fly['traces']} / {fly['answered']}",
            ],
            [
                "LangChain app: restart under load",
                f"{lang['swap_s']:.1f}",
                lang["requests"],
                f"{lang['failed']} {' '.join(lang['errors'])}".strip(),
                "–",
            ],
        ],
    )
    print(table)
    services.save_summary("deploy", {"flywheel": fly, "langchain": lang, "reload_s": args.reload_s})
    body = (
        f"Stub LM {args.latency_ms:g} ms, concurrency {args.concurrency}, chat requests as the sample users; "
        f"{args.before_s:g} s of load before the promotion (or restart) and {args.after_s:g} s after the first "
        f"new answer. Flywheel served {fly['throughput']:.1f} requests/s meanwhile; requests sent after the first "
        f"version-2 answer that were still answered by version 1: {fly['old_after_swap']}. Clients retry a refused "
        "connection after 50 ms, so during the LangChain restart every retry counts as one failed request "
        "(ReadError: requests cut off in flight by the stop). The swap time is "
        "bounded by `serve.reload_interval_s` (the service polls the registry; in-flight requests finish on the "
        "version they started with).\n\n" + table
    )
    write_section(
        "deploy", "Zero-downtime deploys: promotion under load vs a LangChain restart", body, "python -m bench.deploy"
    )


if __name__ == "__main__":
    main()
