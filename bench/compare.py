"""Flywheel versus a LangChain build of the same RAG chatbot (issue 8 §2–4).

Both services run side by side on loopback over the same FLYWHEEL_HOME (index, catalog, API keys)
and the same LM endpoint, and get the same requests (the sample questions, each asked as its
labelled user) from the same bounded load generator, interleaved F L F L at each concurrency:

1. **serving, stub LM** (fixed latency): throughput, p50/p95/p99, and framework overhead =
   mean latency − LM time (read at the stub) − retrieval time (read inside each service);
2. **serving, real LM** (``flywheel lm serve``, SmolLM2 on the CPU): short runs;
3. **time to deploy**: program on disk → first correct answer from a live endpoint;
4. **quality at equal cost**: answer token-F1 of the real-LM answers and recall@5 of the (shared)
   retrieval.

Run: python -m bench.compare [--quick] [--full] [--skip-real]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx

from bench import services
from bench.loadgen import RequestSpec
from bench.report import markdown_table, write_section
from bench.serve import (
    RUN_CAP_S,
    SERVICE_WORKERS,
    Measured,
    chat_request,
    interleaved,
    measure,
    ms,
    paired_ratio,
)

STUB_LATENCY_MS = 50.0
STUB_ROUNDS = {False: 5, True: 3}  # interleaved rounds per concurrency level (full, --quick)
NO_TRACING = "flywheel --no-tracing"
REAL_MODEL = "smollm2-135m-instruct"


MODELS = {"langchain": "rag-langchain"}


def langchain_request(url: str, keys: dict[str, str], rows: list[dict[str, str]]) -> Any:
    return chat_request(url, keys, rows, model="rag-langchain")


async def serving(
    targets: dict[str, services.Server],
    lm: services.Server,
    keys: dict[str, str],
    rows: list[dict[str, str]],
    plan: dict[int, int],
    *,
    keep: bool = False,
    warmup: int | None = None,
    rounds: int = 1,
) -> dict[int, dict[str, Measured]]:
    """Interleaved runs of every service at each concurrency level: ``rounds`` rounds of ``plan[level]``
    requests (F L F L …); with ``keep``, one round and a fresh slice of questions per level, so every
    answer is a new question."""
    out: dict[int, dict[str, Measured]] = {}
    offset = 0
    rounds = 1 if keep else rounds
    for level, n in plan.items():
        print(f"compare: concurrency {level}, {rounds} × {n} requests per service ({lm.name})", flush=True)
        level_rows = rows[offset : offset + n] if keep else rows
        offset += n if keep else 0
        runs = {
            name: (
                lambda lv=level, n=n, r=level_rows, server=server, model=MODELS.get(name, "rag"): measure(
                    chat_request(server.url, keys, r, model=model),
                    lv,
                    n,
                    lm=lm,
                    service=server,
                    keep=keep,
                    warmup=warmup,
                    cap_s=None if keep else RUN_CAP_S,
                )
            )
            for name, server in targets.items()
        }
        out[level] = await interleaved(runs, rounds)
        if keep:
            for m in out[level].values():
                m.result.responses = [
                    (number, body, level_rows[number % len(level_rows)]) for number, body in m.result.responses
                ]  # type: ignore[misc]
    return out


def same_prompt(
    fw: services.Server, lc: services.Server, stub: services.Server, keys: dict[str, str], row: dict[str, str]
) -> bool:
    """Whether both services send the stub the same messages for the same question."""
    sent = []
    for server, model in ((fw, "rag"), (lc, "rag-langchain")):
        spec = chat_request(server.url, keys, [row], model=model)(0)
        httpx.post(spec.url, json=spec.json, headers=spec.headers, timeout=60).raise_for_status()
        sent.append(httpx.get(stub.url + "/last", timeout=10).json().get("messages"))
    return sent[0] == sent[1] and bool(sent[0])


def first_answer(spec: RequestSpec, deadline_s: float = 300) -> None:
    started = time.perf_counter()
    while time.perf_counter() - started < deadline_s:
        try:
            response = httpx.post(spec.url, json=spec.json, headers=spec.headers, timeout=60)
            if spec.check is None or spec.check(response):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no correct answer from {spec.url} within {deadline_s:.0f} s")


DEPLOY_VARIANTS = ("flywheel serve --deploy", "flywheel deploy; flywheel serve", "langchain")


def time_to_deploy(
    home: Any, keys: dict[str, str], stub: services.Server, row: dict[str, str], reps: int
) -> dict[str, list[float]]:
    """Program on disk → first correct answer, the variants interleaved; seconds per rep. Each Flywheel
    rep starts from a tracking store without the model, so every rep logs and registers it."""
    import shutil

    env = services.service_env(home, stub.url + "/v1", "stub", SERVE__WORKERS=str(SERVICE_WORKERS))
    times: dict[str, list[float]] = {name: [] for name in DEPLOY_VARIANTS}
    for _ in range(reps):
        for name in DEPLOY_VARIANTS:
            # no registered model: the deployment happens in the rep
            (home / "mlflow.db").unlink(missing_ok=True)
            shutil.rmtree(home / "mlartifacts", ignore_errors=True)
            started = time.perf_counter()
            if name == "langchain":
                server, request = services.langchain_service(env), langchain_request
            elif name == "flywheel serve --deploy":
                server, request = services.flywheel_service(env, "--deploy"), chat_request
            else:
                services.flywheel("deploy", "--program", "rag", env=env)  # log + register the model
                server, request = services.flywheel_service(env), chat_request
            server.start()
            try:
                first_answer(request(server.url, keys, [row])(0))
                times[name].append(time.perf_counter() - started)
            finally:
                server.stop()
    return times


def quality(results: dict[int, dict[str, Measured]], home: Any) -> dict[str, dict[str, float]]:
    """Answer token-F1 (flywheel.evaluate.metrics when present) and recall@5 of the shared retrieval."""
    try:
        from flywheel.evaluate.metrics import token_f1
    except ImportError:  # pragma: no cover - older trees
        token_f1 = _token_f1
    scores: dict[str, dict[str, float]] = {}
    for name in ("flywheel", "langchain"):
        f1s, found = [], []
        for level in results.values():
            for _number, body, row in level[name].result.responses:  # type: ignore[misc]
                answer = _content(body)
                f1s.append(float(token_f1({"answer": row["answer"]}, {"answer": answer}) or 0.0))
                found.append(float("could not find" not in answer.lower()))
        scores[name] = {"answers": len(f1s), "f1": _mean(f1s), "answered": _mean(found)}
    scores["recall@5"] = {
        "value": retrieval_recall(home, [r for lv in results.values() for _n, _b, r in lv["flywheel"].result.responses])
    }
    return scores


def retrieval_recall(home: Any, rows: list[dict[str, str]], k: int = 5) -> float:
    """Share of questions whose labelled document is among the top k chunks the user may read."""
    import os

    os.environ.update(services.base_env(home))
    from flywheel.config import load_settings
    from flywheel.knowledge.base import KnowledgeBase

    kb = KnowledgeBase(load_settings())
    hits = []
    for row in rows:
        sources = {h.source for h in kb.search(kb.principal(row["user"]), row["question"], k=k)}
        hits.append(float(row["document"].rsplit("/", 1)[-1] in sources))
    return _mean(hits)


def _content(body: Any) -> str:
    try:
        return str(body["choices"][0]["message"]["content"])
    except (KeyError, IndexError, TypeError):
        return ""


def _token_f1(example: dict[str, str], prediction: dict[str, str]) -> float:
    from collections import Counter

    gold, pred = example["answer"].lower().split(), prediction["answer"].lower().split()
    common = sum((Counter(gold) & Counter(pred)).values())
    return 0.0 if not common else 2 * common / (len(gold) + len(pred))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def serving_table(results: dict[int, dict[str, Measured]]) -> str:
    headers = [
        "concurrency",
        "service",
        "req/s",
        "req/s F/L",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "LM ms/req",
        "retrieval ms/req",
        "overhead ms/req",
        "overhead F/L",
        "CPU ms/req: service",
        "CPU ms/req: trace export",
        "errors",
    ]
    rows = []
    for level, group in results.items():
        base = group["langchain"].overhead_s
        for name, m in group.items():
            r = m.result
            ratio = f"{m.overhead_s / base:.2f}" if name != "langchain" and base > 0 else ""
            speed = f"{paired_ratio(m, group['langchain']):.2f}" if name != "langchain" else ""
            rows.append(
                [
                    level,
                    name,
                    f"{m.throughput:.2f}",
                    speed,
                    ms(r.p50),
                    ms(r.p95),
                    ms(r.p99),
                    ms(m.lm_s),
                    ms(m.retrieval_s),
                    ms(m.overhead_s),
                    ratio,
                    ms(m.cpu_s),
                    ms(m.export_cpu_s) if name == "flywheel" else "",
                    r.errors,
                ]
            )
    return markdown_table(headers, rows)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.langchain_rag import export_prompts

    export_prompts()
    rows = services.questions()
    home = services.fresh_home()
    keys = services.create_keys(home, sorted({r["user"] for r in rows}))
    # requests per round; throughput figures are medians over the rounds, ratios medians of paired rounds
    stub_plan = {1: 10, 8: 32, 32: 64} if args.quick else {1: 16, 8: 64, 32: 128}
    real_plan = {1: 4, 8: 8} if not args.full else {1: 20, 8: 20, 32: 20}
    out: dict[str, Any] = {}
    with services.stub_lm(STUB_LATENCY_MS) as stub:
        env = services.service_env(home, stub.url + "/v1", "stub", SERVE__WORKERS=str(SERVICE_WORKERS))
        with (
            services.flywheel_service(env) as fw,
            services.langchain_service(env) as lc,
            services.flywheel_service(env, "--no-tracing") as fw_plain,
        ):
            out["same_prompt"] = same_prompt(fw, lc, stub, keys, rows[0])
            targets = {"flywheel": fw, NO_TRACING: fw_plain, "langchain": lc}
            out["stub"] = await serving(targets, stub, keys, rows, stub_plan, rounds=STUB_ROUNDS[args.quick])
        out["deploy"] = time_to_deploy(home, keys, stub, rows[0], reps=1 if args.quick else 2)
    publish(out, args)  # the stub-LM results are kept even if the real-LM runs are cut short
    if not args.skip_real:
        with services.embedded_lm_server(home) as lm:
            env = services.service_env(
                home, lm.url + "/v1", REAL_MODEL, SERVE__WORKERS=str(SERVICE_WORKERS), LM__TIMEOUT_S="600"
            )
            with services.flywheel_service(env) as fw, services.langchain_service(env) as lc:
                out["real"] = await serving(
                    {"flywheel": fw, "langchain": lc}, lm, keys, rows, real_plan, keep=True, warmup=1
                )
        out["quality"] = quality(out["real"], home)
        publish(out, args)
    return out


def render(out: dict[str, Any], args: argparse.Namespace) -> str:
    parts = [
        "Both services: same FLYWHEEL_HOME (36 sample documents, LanceDB index, MiniLM embedder, catalog and API "
        "keys), same LM endpoint, same requests (`POST /v1/chat/completions`, each sample question asked as its "
        "labelled user). Flywheel = `flywheel serve` as shipped (MLflow tracing on, `serve.workers = "
        f"{SERVICE_WORKERS}`); LangChain = `bench/langchain_app.py`: FastAPI route → LCEL chain `ainvoke` "
        "(ChatOpenAI with `with_structured_output(json_schema)`, a BaseRetriever over the same LanceDB table and "
        "hybrid query with the same ACL filter, the query embedded by `HuggingFaceEmbeddings` on the same MiniLM "
        "weights as LangChain users embed (sentence-transformers on torch; Flywheel runs them on ONNX Runtime and "
        "encodes concurrent queries together), the prompt DSPy's JSONAdapter writes for Flywheel's unoptimized "
        f"program). Both send the LM the same messages: **{'yes' if out.get('same_prompt') else 'NO'}** "
        "(checked at the stub). Overhead = mean latency − LM time (at the LM) − retrieval time (inside the service);"
        " the ratio F/L is Flywheel's overhead over LangChain's (goal ≤ 0.5). req/s: median over "
        f"{STUB_ROUNDS[bool(args.quick)]} interleaved rounds (each service in turn, each run after a warm-up of"
        " 2 × concurrency requests); req/s F/L: the median of the per-round throughput ratios to LangChain's run"
        " of the same round (goal ≥ 1.5 at concurrency 8 and 32); latencies and overhead: all rounds' requests"
        " together. CPU ms/req: CPU time of the service's"
        " process per answered request (all its threads: HTTP, framework, retrieval, trace serialization) and of"
        " the trace sink child that writes Flywheel's traces into the MLflow store (read after it has written the run's"
        " backlog): on 2 cores shared with the load generator and the stub, throughput follows their sum.",
        f"### Serving with a stub LM ({STUB_LATENCY_MS:g} ms per completion)",
        serving_table(out["stub"]),
    ]
    if "real" in out:
        parts += [
            "### Serving with the real embedded LM (`flywheel lm serve`, one request at a time)",
            "Short runs (every request a different question; the LM serializes requests, so latency at "
            "concurrency c is about c × one LM call).",
            serving_table(out["real"]),
        ]
    deploy = out["deploy"]
    base = statistics.median(deploy["langchain"])
    parts += [
        "### Time to deploy (program on disk → first correct answer from a live endpoint)",
        "Flywheel, one command: `flywheel serve --deploy` (logs the program as an MLflow pyfunc model, "
        "registers it as the champion, serves it) + first answered request. Flywheel, two commands: "
        "`flywheel deploy --program rag`, then `flywheel serve` + first answered request. Every Flywheel rep "
        "starts from an empty tracking store, so it really logs and registers the model. LangChain: "
        "`uvicorn bench.langchain_app:app` start + first answered request (nothing logged: the chain is code "
        "plus `bench/langchain_prompt*.json`). Stub LM; median of "
        f"{len(deploy['langchain'])} interleaved reps.",
        markdown_table(
            ["deployment", "seconds", "ratio to LangChain (goal ≤ 1)"],
            [
                [
                    name,
                    f"{statistics.median(deploy[name]):.1f}",
                    f"{statistics.median(deploy[name]) / base:.2f}" if name != "langchain" else "",
                ]
                for name in DEPLOY_VARIANTS
            ],
        ),
    ]
    if "quality" in out:
        q = out["quality"]
        parts += [
            "### Quality at equal cost (same LM, same retrieval, same prompts)",
            f"The real-LM answers above, scored: answer token-F1 (`flywheel.evaluate.metrics.token_f1`) "
            f"against the labelled answers of `samples/datasets/rag_questions.jsonl`; recall@5 of the shared "
            f"retrieval (identical for both by construction): {q['recall@5']['value']:.2f}. The optimized "
            "Flywheel program and the faithfulness judge are measured by `bench.quality` (section "
            "'Quality at equal cost' below).",
            markdown_table(
                ["program", "questions", "answer F1", "answered (not 'could not find')"],
                [
                    [name, int(q[name]["answers"]), f"{q[name]['f1']:.3f}", f"{q[name]['answered']:.2f}"]
                    for name in ("flywheel", "langchain")
                ],
            ),
        ]
    return "\n\n".join(parts)


def summary(out: dict[str, Any]) -> dict[str, Any]:
    """Headline figures for the suite's closing note."""

    def ratios(results: dict[int, dict[str, Measured]], name: str) -> dict[str, float]:
        return {
            str(level): g[name].overhead_s / g["langchain"].overhead_s
            for level, g in results.items()
            if g["langchain"].overhead_s > 0
        }

    data: dict[str, Any] = {
        "overhead_ratio": ratios(out["stub"], "flywheel"),
        "overhead_ratio_no_tracing": ratios(out["stub"], NO_TRACING),
        "throughput_ratio": {
            str(level): paired_ratio(g["flywheel"], g["langchain"]) for level, g in out["stub"].items()
        },
        "throughput_ratio_no_tracing": {
            str(level): paired_ratio(g[NO_TRACING], g["langchain"]) for level, g in out["stub"].items()
        },
        "deploy_ratio": statistics.median(out["deploy"][DEPLOY_VARIANTS[0]])
        / statistics.median(out["deploy"]["langchain"]),
    }
    if "real" in out:
        one = out["real"].get(1, {})
        data["lm_share_c1"] = {name: m.lm_s / m.result.mean for name, m in one.items() if m.result.latencies}
        data["quality"] = out["quality"]
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests, one deploy rep")
    parser.add_argument("--full", action="store_true", help="real-LM runs at 1/8/32 with 20 requests each")
    parser.add_argument("--skip-real", action="store_true", help="stub LM only (no embedded-LM runs, no quality)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    services.exit_on_sigterm()
    asyncio.run(run(args))


def publish(out: dict[str, Any], args: argparse.Namespace) -> None:
    body = render(out, args)
    print(body, flush=True)
    services.save_summary("compare", summary(out))
    if not args.no_write:
        flags = [k for k in ("quick", "full", "skip_real") if getattr(args, k)]
        command = "python -m bench.compare" + "".join(f" --{k.replace('_', '-')}" for k in flags)
        write_section("compare", "Flywheel versus a LangChain build of the same chatbot", body, command)


if __name__ == "__main__":
    main()
