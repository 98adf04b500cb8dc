"""Quality at equal cost: Flywheel's RAG chatbot (unoptimized and optimized) vs its LangChain build.

One labelled question set (samples/datasets/rag_questions.jsonl, a seeded 50/50 train/dev split),
one LM (the embedded SmolLM2 behind ``flywheel lm serve``, instrumented), one index, k = 5. On the
same dev questions, each asked as its labelled user:

1. ``RAGChatbot`` as shipped (unoptimized);
2. the same program compiled by BootstrapFewShot on the train split against the ``rag_quality``
   composite, within a budget of LM calls (how many demos it kept is reported; 0 demos means no
   lift is possible and the text says so);
3. ``bench.langchain_rag`` (LCEL chain, same retrieval, same prompt, same endpoint).

Scored with the same functions for all three: answer token-F1 and answer-contains
(``flywheel.evaluate.metrics``), recall@5 of the retrieved passages against the gold document, and
the catalog's ``faithfulness`` judge (same LM, run after all answers so its calls are not counted as
answer cost; the not-found refusal makes no claim and scores 1 without a judge call, the judge's own
rule). Cost is read at the LM server: LM calls and LM seconds per question, so "equal cost" is shown
rather than assumed. Variants run back to back on the same server, interleaved over two halves of
the dev set (U O L, then L O U). With 0 demos the compiled program *is* the unoptimized one (same
prompt, temperature 0), so it is not run a second time. One question at a time by default: the LM
server answers one request at a time, so more in flight adds only queueing to the LM seconds.

Run: python -m bench.quality [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import contextvars
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dspy

from bench import services
from bench.report import markdown_table, write_section
from flywheel.evaluate.datasets import Dataset, dataset_from_rows, read_rows
from flywheel.evaluate.runner import EvalResult, evaluate_program

MODEL = "smollm2-135m-instruct"  # as bench.compare.REAL_MODEL
K = 5
# (train, dev) questions. One SmolLM2 call with 5 passages (~1,200 prompt tokens) takes 5-10 s on these
# 2 shared cores, so a run costs about train + 2 x dev calls: ~8 min by default, ~4 min with --quick.
SIZES, QUICK_SIZES = (10, 18), (6, 8)
THRESHOLD = 0.5  # rag_quality a bootstrapped trace must reach to become a demo (as bench.optimize)
SCORES = ["answer_f1", "answer_contains", "recall"]
VARIANTS = ["flywheel unoptimized", "flywheel optimized", "langchain"]


def log(message: str) -> None:
    print(f"quality: {message}", file=sys.stderr, flush=True)


def langchain_program(chain: Any, texts: dict[str, str]) -> Any:
    """The chain as a program ``(question, principal) -> Prediction`` the runner and metrics accept
    (passage texts filled in from the index by chunk id, for the faithfulness judge)."""

    def call(question: str, principal: Any) -> dspy.Prediction:
        out = chain.invoke({"question": question, "principal": principal})
        passages = [{**p, "text": texts.get(p.get("chunk_id", ""), "")} for p in out["passages"]]
        return dspy.Prediction(answer=out["answer"], citations=out["citations"], passages=passages, found=out["found"])

    return call


def halves(data: Dataset) -> list[Dataset]:
    middle = (len(data) + 1) // 2
    return [
        Dataset(data.name, data.kind, part, data.labelled, data.columns)
        for part in (data.examples[:middle], data.examples[middle:])
        if part
    ]


def run_interleaved(
    programs: dict[str, Any], dev: Dataset, metrics: dict[str, Any], lm: services.Server, threads: int
) -> dict[str, dict[str, Any]]:
    """Every variant on every dev half (order reversed on the second), LM counters read per run."""
    out: dict[str, dict[str, Any]] = {
        name: {"rows": [], "lm_calls": 0, "lm_s": 0.0, "wall_s": 0.0} for name in programs
    }
    for number, part in enumerate(halves(dev)):
        order = list(programs) if number % 2 == 0 else list(reversed(programs))
        for name in order:
            log(f"{name}: {len(part)} questions (half {number + 1})")
            lm.reset()
            result: EvalResult = evaluate_program(programs[name], part, metrics, name=name, threads=threads)
            http = lm.stats().get("http", {})
            entry = out[name]
            entry["rows"] += [(example, row) for example, row in zip(part.examples, result.examples, strict=True)]
            entry["lm_calls"] += int(http.get("count", 0))
            entry["lm_s"] += float(http.get("busy_s", 0.0))
            entry["wall_s"] += result.wall_s
    return out


def judge_all(out: dict[str, dict[str, Any]], faithfulness: Any, lm: services.Server, threads: int) -> int:
    """Faithfulness of every answer (judge LM calls are counted here, not as answer cost)."""
    from flywheel.programs.rag import NOT_FOUND

    jobs = [(name, i, example, row) for name, entry in out.items() for i, (example, row) in enumerate(entry["rows"])]

    def score(job: tuple[str, int, Any, Any]) -> tuple[str, int, float | None]:
        name, i, example, row = job
        if row.outputs.get("answer") == NOT_FOUND:
            return name, i, 1.0  # an honest refusal makes no claim: supported (JudgeFaithfulness's rule)
        try:
            return name, i, faithfulness(example, row.outputs)
        except Exception as exc:  # a judge failure is reported, not a free score
            log(f"judge failed on {name} #{i}: {type(exc).__name__}: {exc}")
            return name, i, None

    lm.reset()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(lambda job: contextvars.copy_context().run(score, job), jobs))
    for name, i, value in results:
        out[name].setdefault("faithfulness", {})[i] = value
    return int(lm.stats().get("http", {}).get("count", 0))


def mean(values: list[float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def summarize(entry: dict[str, Any]) -> dict[str, Any]:
    rows = entry["rows"]
    n = max(len(rows), 1)
    figures = {key: mean([row.scores.get(key) for _, row in rows]) for key in SCORES}
    figures["faithfulness"] = mean(list(entry.get("faithfulness", {}).values()))
    figures.update(
        questions=len(rows),
        errors=sum(1 for _, row in rows if row.error),
        found=mean([float(bool(row.outputs.get("found"))) for _, row in rows]),
        lm_calls_per_q=entry["lm_calls"] / n,
        lm_s_per_q=entry["lm_s"] / n,
        wall_s_per_q=entry["wall_s"] / n,
    )
    return figures


def run(quick: bool, threads: int) -> dict[str, Any]:
    from bench.langchain_rag import build_from_settings
    from flywheel.config import load_settings
    from flywheel.evaluate.catalog import optimizer_metric, resolve_metrics
    from flywheel.knowledge.base import KnowledgeBase
    from flywheel.lm import build_lm, configure_dspy
    from flywheel.optimize.compile import Budget, BudgetExhaustedError, compile_program
    from flywheel.programs.rag import RAGChatbot, knowledge_readable, knowledge_retriever

    train_n, dev_n = QUICK_SIZES if quick else SIZES
    home = services.fresh_home()
    os.environ.update(services.base_env(home))  # offline embedder, this home for anything that reads env
    with services.embedded_lm_server(home) as lm:
        endpoint = {
            "provider": "openai",
            "api_base": lm.url + "/v1",
            "model": MODEL,
            "cache": False,
            "max_retries": 0,
            "timeout_s": 600,
        }
        settings = load_settings(home=home, lm=endpoint, judge_lm=endpoint, programs={"retrieval_k": K})
        configure_dspy(settings)
        kb = KnowledgeBase(settings)
        docs = kb.catalog.list_documents()

        def resolve(source: str) -> str | None:
            return next((d.id for d in docs if d.source == source or source.endswith("/" + d.source)), None)

        rows = [r for r in read_rows(services.QUESTIONS) if r.get("answer")]
        data = dataset_from_rows(rows, "qa", name="rag_questions", principal_for=kb.principal, resolve_document=resolve)
        train, dev = data.split(0.5, seed=0)
        train, dev = train.head(train_n), dev.head(dev_n)
        metrics = resolve_metrics(
            ["rag_quality", *SCORES, "faithfulness"],
            "qa",
            composites=dict(settings.optimize.composites),
            judge_lm=build_lm(settings.judge_lm),
            k=K,
        )
        faithfulness = metrics.pop("faithfulness")
        objective = optimizer_metric(metrics.pop("rag_quality"), threshold=THRESHOLD)
        base = RAGChatbot(knowledge_retriever(kb), k=K, readable=knowledge_readable(kb))

        log(f"compiling (bootstrap, {len(train)} train questions) …")
        lm.reset()
        note, started = "", time.perf_counter()
        try:
            compiled = compile_program(
                base,
                train.examples,
                optimizer="bootstrap",
                metric=objective,
                threads=threads,
                budget=Budget(max_lm_calls=2 * len(train) + 4),
            )
            optimized, demos, notes = compiled.program, compiled.demos, compiled.notes
        except BudgetExhaustedError as exc:
            optimized, demos, notes, note = base, 0, [], f"compile stopped by its budget ({exc.message})"
        compile_stats = {
            "lm_calls": int(lm.stats().get("http", {}).get("count", 0)),
            "wall_s": time.perf_counter() - started,
            "demos": demos,
            "notes": notes,
            "stopped": note,
        }

        texts = {r["chunk_id"]: r["text"] for r in kb.index.table.to_arrow().select(["chunk_id", "text"]).to_pylist()}
        chain = langchain_program(build_from_settings(settings), texts)
        chain(train.examples[0].question, train.examples[0].principal)  # warm-up: its embedder and the route
        programs = dict(zip(VARIANTS, [base, optimized, chain], strict=True))
        if demos == 0:  # the very same program as the unoptimized one: nothing new to measure
            del programs["flywheel optimized"]
        out = run_interleaved(programs, dev, metrics, lm, threads)
        log(f"judging faithfulness of {sum(len(e['rows']) for e in out.values())} answers …")
        judge_calls = judge_all(out, faithfulness, lm, threads)
    variants = {
        name: summarize(out[name]) if name in out else {**summarize(out[VARIANTS[0]]), "same_as": VARIANTS[0]}
        for name in VARIANTS
    }
    return {
        "train": len(train),
        "dev": len(dev),
        "threads": threads,
        "compile": compile_stats,
        "judge_lm_calls": judge_calls,
        "variants": variants,
    }


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(result: dict[str, Any], wall_s: float) -> str:
    variants, compile_stats = result["variants"], result["compile"]
    demos = {"flywheel unoptimized": 0, "flywheel optimized": compile_stats["demos"], "langchain": 0}
    if "same_as" in variants["flywheel optimized"]:
        demos["flywheel optimized"] = "0 (= unoptimized, not re-run)"
    table = markdown_table(
        ["variant", "answer F1", "answer contains", "recall@5", "faithfulness", "LM calls/q", "LM s/q", "demos"],
        [
            [
                name,
                fmt(v["answer_f1"]),
                fmt(v["answer_contains"]),
                fmt(v["recall"]),
                fmt(v["faithfulness"]),
                fmt(v["lm_calls_per_q"], 2),
                fmt(v["lm_s_per_q"], 2),
                demos[name],
            ]
            for name, v in variants.items()
        ],
    )
    if compile_stats["stopped"]:
        lift = f"The optimized program is the unoptimized one: the {compile_stats['stopped']}."
    elif compile_stats["demos"] == 0:
        lift = (
            "**BootstrapFewShot kept 0 demos**: no training trace reached the rag_quality threshold "
            f"({THRESHOLD}) with this model (SmolLM2-135M mostly answers found=false), so the 'optimized' "
            "program is the unoptimized one (its row repeats the unoptimized figures; it was not re-run): "
            "there is no lift to report."
        )
    else:
        lift = (
            f"BootstrapFewShot kept {compile_stats['demos']} demo(s) (rag_quality ≥ {THRESHOLD} on the train "
            "trace); the optimized row shows what they buy and what the longer prompt costs per question."
        )
    details = "; ".join(
        f"{name}: {v['errors']} error(s), found={fmt(v['found'], 2)}, wall {fmt(v['wall_s_per_q'], 2)} s/q"
        for name, v in variants.items()
        if "same_as" not in v
    )
    vacuous = (
        ""
        if result["judge_lm_calls"]
        else ": every answer was the refusal, so faithfulness 1.0 says nothing about grounding here"
    )
    threads = result["threads"]
    queueing = (
        ""
        if threads == 1
        else f"; it answers one request at a time, so with {threads} in flight LM s/q includes queueing at the LM"
    )
    return f"""{table}

Same {result["dev"]} held-out questions (seeded 50/50 split of `samples/datasets/rag_questions.jsonl`, each asked
as its labelled user), same LM for answers and judge (embedded SmolLM2-135M-Instruct behind `flywheel lm serve`,
temperature 0, DSPy cache off), same index and hybrid retrieval with k = {K}, {threads} question(s) at a time;
variants interleaved over two halves of the dev set. Answer F1 / contains: `flywheel.evaluate.metrics`; recall@5:
the gold document among the retrieved passages; faithfulness: the catalog's judge (1 supported, 0.5 partially,
0 unsupported; the not-found refusal makes no claim and scores 1 without a call; an error scores 0 everywhere),
{result["judge_lm_calls"]} judge calls, not counted as cost{vacuous}. LM calls and seconds are read at the LM
server{queueing}. {lift} Compile: {result["train"]} train questions, {compile_stats["lm_calls"]} LM
calls, {compile_stats["wall_s"] / 60:.1f} min. Per variant: {details}. Whole run: {wall_s / 60:.1f} min."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 train / 8 dev questions (a smoke run).")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="Questions in flight (the LM server answers one at a time; more only adds queueing).",
    )
    args = parser.parse_args()
    services.exit_on_sigterm()
    started = time.perf_counter()
    result = run(args.quick, args.threads)
    body = render(result, time.perf_counter() - started)
    print(body, flush=True)
    if not args.no_write:
        command = "python -m bench.quality" + (" --quick" if args.quick else "")
        write_section("quality", "Quality at equal cost: Flywheel (unoptimized, optimized) vs LangChain", body, command)
        services.save_summary(
            "quality",
            {
                "train": result["train"],
                "dev": result["dev"],
                "demos": result["compile"]["demos"],
                "variants": result["variants"],
            },
        )


if __name__ == "__main__":
    main()
