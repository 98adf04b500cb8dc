"""The flywheel on documents nobody here wrote: wiki_qa answers, refusals and the optimization lift.

wiki_qa (../shared/data/wiki_qa: 35 Wikipedia articles, 917 student questions with gold answers) is
split **by article** with a fixed seed: 5 articles are never ingested (their questions are
unanswerable), the rest are ingested and split into *train* articles (rows for ``flywheel optimize``)
and *test* articles (held-out questions, about articles no training row mentions). On the same test
questions, in one run, with the embedded LM (SmolLM2-135M-Instruct, one llama.cpp thread):

1. **naive reference**: Flywheel's hybrid search, top 3 passages, one grammar-constrained llama.cpp
   call "answer with a short phrase taken from the passages" (no DSPy, no reasoning, no refusal);
2. **unoptimized program**: ``RAGChatbot`` as a new user gets it (before any optimize run);
3. **optimized champion**: the product's own ``optimize_program`` with the default ``auto`` optimizer
   on the train rows (refusal calibration, labelled demos, design search on a validation split of
   train), registered in a real MLflow registry and gated on the test questions.

Reported: answer F1 / EM (SQuAD normalisation, best gold answer), split by yes/no and other questions,
refusal precision/recall (unanswerable = questions about the 5 articles not ingested), and F1 over all
questions with the unanswerable ones scored as SQuAD 2.0 does (1 when refused, 0 when answered).

Run: python -m bench.wikiqa [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dspy

from bench.report import markdown_table, write_section
from flywheel.evaluate.metrics import exact_match, mean, token_f1

WIKI = Path(__file__).resolve().parents[2] / "shared" / "data" / "wiki_qa"
SEED = 13
ABSENT_ARTICLES = 5
SIZES = {"train": 200, "test": 60, "absent": 24}
QUICK_SIZES = {"train": 20, "test": 20, "absent": 10}
NAIVE_K = 3
NAIVE_PROMPT = "Passages:\n{passages}\n\nQuestion: {question}\nAnswer with a short phrase taken from the passages."


def log(message: str) -> None:
    print(f"wikiqa: {message}", file=sys.stderr, flush=True)


def split_articles(names: list[str], seed: int = SEED) -> dict[str, list[str]]:
    """absent (never ingested) / train / test, by article."""
    shuffled = sorted(names)
    random.Random(seed).shuffle(shuffled)
    rest = shuffled[ABSENT_ARTICLES:]
    middle = len(rest) // 2
    return {"absent": shuffled[:ABSENT_ARTICLES], "train": rest[:middle], "test": rest[middle:]}


def sample(rows: list[dict[str, Any]], articles: list[str], n: int, seed: int = SEED) -> list[dict[str, Any]]:
    chosen = [r for r in rows if r["document"] in articles]
    random.Random(seed).shuffle(chosen)
    return chosen[:n]


def naive_reference(kb: Any, engine: Any) -> Any:
    """The plain script of the issue, as a program ``(question, principal) -> Prediction``."""
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}

    def answer(question: str, principal: Any, **_: Any) -> dspy.Prediction:
        hits = kb.search(principal, question, k=NAIVE_K)
        passages = "\n\n".join(f"[{i}] {h.text}" for i, h in enumerate(hits, 1))
        out = engine.chat(
            messages=[{"role": "user", "content": NAIVE_PROMPT.format(passages=passages, question=question)}],
            max_tokens=48,
            temperature=0.0,
            response_format={"type": "json_object", "schema": schema},
        )
        try:
            text = json.loads(out["choices"][0]["message"]["content"])["answer"]
        except (ValueError, KeyError, TypeError):
            text = ""
        return dspy.Prediction(answer=text, found=True, passages=[{"doc_id": h.doc_id} for h in hits])

    return answer


def answers_of(program: Any, rows: list[Any]) -> list[dict[str, Any]]:
    out = []
    for example in rows:
        prediction = program(question=example.question, principal=example.principal)
        out.append({"answer": str(prediction.answer), "found": bool(getattr(prediction, "found", True))})
    return out


def scores(rows: list[Any], answers: list[dict[str, Any]]) -> dict[str, float | None]:
    from flywheel.programs.rag import is_yes_no_question

    f1 = [token_f1(r, a) for r, a in zip(rows, answers, strict=True)]
    em = [exact_match(r, a) for r, a in zip(rows, answers, strict=True)]
    yes_no = [is_yes_no_question(r.question) for r in rows]
    return {
        "f1": mean(f1),
        "em": mean(em),
        "f1_yes_no": mean(v for v, y in zip(f1, yes_no, strict=True) if y),
        "f1_other": mean(v for v, y in zip(f1, yes_no, strict=True) if not y),
        "refused": mean(float(not a["found"]) for a in answers),
    }


def refusal(answerable: list[dict[str, Any]], unanswerable: list[dict[str, Any]]) -> dict[str, float | None]:
    wrong = sum(not a["found"] for a in answerable)
    right = sum(not a["found"] for a in unanswerable)
    return {
        "precision": right / (right + wrong) if right + wrong else None,
        "recall": right / len(unanswerable) if unanswerable else None,
    }


def run(quick: bool) -> dict[str, Any]:
    from flywheel.assistant import Assistant
    from flywheel.config import load_settings
    from flywheel.evaluate.datasets import Dataset, dataset_from_rows
    from flywheel.knowledge.base import KnowledgeBase
    from flywheel.lm import configure_dspy
    from flywheel.lm.factory import embedded_engine
    from flywheel.optimize.compile import Budget
    from flywheel.optimize.workflow import OptimizeRequest, optimize_program
    from flywheel.registry.programs import ProgramRegistry

    sizes = QUICK_SIZES if quick else SIZES
    rows = [json.loads(line) for line in (WIKI / "questions.jsonl").read_text().splitlines() if line.strip()]
    articles = split_articles(sorted(p.name for p in (WIKI / "articles").glob("*.txt")))
    home = Path(tempfile.mkdtemp(prefix="flywheel-wikiqa-"))
    settings = load_settings(home=home, lm={"n_threads": 1, "cache": False})
    configure_dspy(settings)
    kb = KnowledgeBase(settings)
    kb.catalog.add_group("wiki")
    kb.catalog.add_user("reader", groups=["wiki"])
    ingested = [n for n in articles["train"] + articles["test"]]
    log(f"ingesting {len(ingested)} articles ({ABSENT_ARTICLES} left out) …")
    kb.ingest_files(
        kb.principal("reader"), [(n, (WIKI / "articles" / n).read_bytes()) for n in ingested], groups=["wiki"]
    )
    ids = {d.source: d.id for d in kb.catalog.list_documents()}

    def dataset(name: str, chosen: list[dict[str, Any]]) -> Any:
        return dataset_from_rows(
            [
                {"question": r["question"], "answer": r["answers"], "user": "reader", "document": r["document"]}
                if r["document"] in ids
                else {"question": r["question"], "user": "reader", "unanswerable": True}
                for r in chosen
            ],
            "qa",
            name=name,
            principal_for=kb.principal,
            resolve_document=ids.get,
        )

    train = dataset("wiki_qa[train articles]", sample(rows, articles["train"], sizes["train"]))
    test = dataset("wiki_qa[test articles]", sample(rows, articles["test"], sizes["test"]))
    absent = dataset("wiki_qa[absent articles]", sample(rows, articles["absent"], sizes["absent"]))
    # The gate sees both: answerable questions about the test articles and unanswerable ones (SQuAD 2.0
    # scoring), so a better refusal counts as much as a better answer.
    held_out = Dataset("wiki_qa[test + absent articles]", "qa", test.examples + absent.examples, True)

    registry = ProgramRegistry(settings)
    assistant = Assistant(settings, knowledge=kb, registry=registry)
    unoptimized = assistant.program("rag")
    started = time.perf_counter()
    log(f"optimize rag (auto) on {len(train)} train rows, gate on {len(test)} + {len(absent)} held-out questions …")
    outcome = optimize_program(
        assistant,
        registry,
        OptimizeRequest(
            program="rag",
            optimizer="auto",
            objective="rag_quality",
            train=train,
            dev=held_out,
            budget=Budget(),
            threads=1,
            margin=settings.optimize.margin,
            guards={},
            composites=dict(settings.optimize.composites),
            retrieval_k=settings.programs.retrieval_k,
        ),
    )
    optimize_s = time.perf_counter() - started
    optimized = outcome.compiled.program
    engine = embedded_engine(settings.lm)
    variants = {
        "naive reference": naive_reference(kb, engine),
        "unoptimized program": unoptimized,
        "optimized champion": optimized,
    }
    result: dict[str, Any] = {
        "sizes": {"train": len(train), "test": len(test), "absent": len(absent)},
        "articles": articles,
        "variants": {},
        "optimize_s": optimize_s,
        "design": outcome.compiled.params.get("design"),
        "notes": outcome.compiled.notes,
        "promoted": outcome.decision.promote,
        "reasons": outcome.decision.reasons,
        "demos": outcome.compiled.demos,
    }
    # The gate already answered the held-out questions with both programs: reuse those answers.
    gated = {"unoptimized program": outcome.baseline, "optimized champion": outcome.candidate}
    for name, program in variants.items():
        log(f"{name}: {len(test)} answerable + {len(absent)} unanswerable questions …")
        t0 = time.perf_counter()
        if name in gated:
            answers = [
                {"answer": str(row.outputs.get("answer", "")), "found": bool(row.outputs.get("found", True))}
                for row in gated[name].examples
            ]
            on_test, on_absent = answers[: len(test)], answers[len(test) :]
            seconds_gated = sum(row.latency_s for row in gated[name].examples)
        else:
            on_test, on_absent = answers_of(program, test.examples), answers_of(program, absent.examples)
            seconds_gated = 0.0
        seconds = (time.perf_counter() - t0 + seconds_gated) / (len(test) + len(absent))
        answered = scores(test.examples, on_test)
        refused_absent = sum(not a["found"] for a in on_absent)
        result["variants"][name] = {
            **answered,
            # SQuAD 2.0 convention: an unanswerable question scores 1 when refused, 0 when answered.
            "f1_all": ((answered["f1"] or 0.0) * len(on_test) + refused_absent) / (len(on_test) + len(on_absent)),
            "refusal": refusal(on_test, on_absent),
            "s_per_q": seconds,
        }
    return result


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(result: dict[str, Any], wall_s: float) -> str:
    naive = result["variants"]["naive reference"]["f1"] or 0.0
    rows = []
    for name, v in result["variants"].items():
        rows.append(
            [
                name,
                fmt(v["f1"]),
                fmt(v["em"]),
                fmt(v["f1_yes_no"]),
                fmt(v["f1_other"]),
                f"{(v['f1'] or 0) / naive:.2f}×" if naive else "–",
                fmt(v["f1_all"]),
                fmt(v["refused"], 2),
                fmt(v["refusal"]["precision"], 2),
                fmt(v["refusal"]["recall"], 2),
                fmt(v["s_per_q"], 1),
            ]
        )
    table = markdown_table(
        [
            "variant",
            "answer F1",
            "EM",
            "F1 yes/no q.",
            "F1 other q.",
            "F1 vs naive",
            "F1 incl. unanswerable",
            "refused (answerable)",
            "refusal precision",
            "refusal recall",
            "s/question",
        ],
        rows,
    )
    sizes, articles = result["sizes"], result["articles"]
    gate = "promoted to champion" if result["promoted"] else "kept as candidate"
    return f"""{table}

wiki_qa split by article (seed {SEED}): {len(articles["train"])} train articles, {len(articles["test"])} test
articles, {len(articles["absent"])} never ingested ({", ".join(articles["absent"])}). {sizes["test"]} held-out
questions about the test articles (answerable), {sizes["absent"]} about the absent ones (unanswerable: refusal
recall = share refused; precision = refused unanswerable / all refusals; "F1 incl. unanswerable" scores them as
SQuAD 2.0 does: 1 when refused, 0 when answered), {sizes["train"]} training rows about the
train articles. Embedded SmolLM2-135M-Instruct, temperature 0, one llama.cpp thread, cache off, hybrid retrieval.
`optimize rag` (auto, {result["optimize_s"] / 60:.1f} min including the gate's two evaluations): chosen design
**{result["design"]}**, {result["demos"]} labelled demos stored; gate: {gate} ({"; ".join(result["reasons"])}).
{" ".join(n + "." for n in result["notes"])} Whole run {wall_s / 60:.1f} min."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 train / 20 test / 10 absent questions.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    args = parser.parse_args()
    if not WIKI.is_dir():
        sys.exit(f"{WIKI} is absent: ../shared/data exists only in the Flywheel workspace and CI")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    started = time.perf_counter()
    result = run(args.quick)
    body = render(result, time.perf_counter() - started)
    print(body, flush=True)
    if not args.no_write:
        command = "python -m bench.wikiqa" + (" --quick" if args.quick else "")
        write_section(
            "wikiqa",
            "The flywheel on wiki_qa: naive prompt vs unoptimized vs optimized (held-out articles)",
            body,
            command,
        )


if __name__ == "__main__":
    main()
