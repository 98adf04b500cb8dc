"""Lift from optimization: held-out metrics before and after, next to a hand-written prompt.

Two programs, each evaluated on the same held-out rows in one run with the embedded LM:

- the feedback classifier on ../shared/data/airline_feedback (train rows to optimize, dev rows to
  measure): accuracy and macro-F1 of the sentiment;
- the RAG chatbot over the sample knowledge base on samples/datasets/rag_questions.jsonl (a seeded
  train/dev split): answer F1, answer-contains, recall@k and the rag_quality composite.

For each: the unoptimized program (Flywheel's signatures), the same program with a hand-written
prompt (instructions and examples a person would write: the usual alternative), and the program
compiled by BootstrapFewShot, with the LM calls and minutes the compile spent.

Run: python -m bench.optimize [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dspy

from bench.report import markdown_table, write_section
from flywheel.config import load_settings
from flywheel.evaluate.catalog import optimizer_metric, resolve_metrics
from flywheel.evaluate.datasets import Dataset, dataset_from_rows, read_rows
from flywheel.evaluate.runner import evaluate_program
from flywheel.lm import configure_dspy
from flywheel.optimize.compile import compile_program

REPO = Path(__file__).resolve().parents[1]
FEEDBACK = REPO.parent / "shared" / "data" / "airline_feedback"
QUESTIONS = REPO / "samples" / "datasets" / "rag_questions.jsonl"

HAND_CLASSIFIER_PROMPT = """You label airline customer tweets.
sentiment: "negative" if the customer complains or is unhappy (delays, cancellations, lost bags, rude staff,
bad service); "positive" if they thank or praise the airline; "neutral" for questions, information or
anything without a clear feeling. Most tweets that mention a problem are negative.
reason (negative only): the main complaint, e.g. Late Flight for delays, Cancelled Flight, Lost Luggage,
Customer Service Issue for bad or unreachable support, Flight Booking Problems, Bad Flight for the
onboard experience."""
HAND_CLASSIFIER_EXAMPLES = [
    {
        "text": "@united flight delayed 3 hours and no one tells us anything",
        "sentiment": "negative",
        "reason": "Late Flight",
        "justification": "A delay complaint.",
    },
    {
        "text": "@SouthwestAir thanks for the great crew on my flight today!",
        "sentiment": "positive",
        "reason": None,
        "justification": "Praise for the crew.",
    },
    {
        "text": "@JetBlue do you fly from Boston to Austin in March?",
        "sentiment": "neutral",
        "reason": None,
        "justification": "A question without a feeling.",
    },
]
HAND_RAG_PROMPT = """You are Skylark Regional Airways' assistant. Read the numbered passages carefully and answer
the question in one short sentence using the exact words, numbers and names from the passages. Cite the
numbers of the passages you used. Set found to true whenever a passage contains the answer; set it to false
only if none of the passages is about the question."""


def with_hand_prompt(
    program: dspy.Module, predictor_name: str, prompt: str, examples: list[dict[str, Any]] | None = None
) -> dspy.Module:
    hand = program.deepcopy()
    for name, predictor in hand.named_predictors():
        if name == predictor_name:
            predictor.signature = predictor.signature.with_instructions(prompt)
            predictor.demos = [dspy.Example(**e) for e in examples or []]
    return hand


def compare(
    label: str,
    base: dspy.Module,
    hand: dspy.Module,
    train: Dataset,
    dev: Dataset,
    metrics: dict[str, Any],
    objective: Any,
    threshold: float,
    threads: int,
    keys: list[str],
) -> list[list[object]]:
    """Unoptimized, hand-written and bootstrap-compiled variants on the same held-out rows."""
    rows = []
    results = {}
    for name, program in (("unoptimized", base), ("hand-written prompt", hand)):
        results[name] = evaluate_program(program, dev, metrics, name=name, threads=threads)
        rows.append([label, name, *fmt_metrics(results[name].metrics, keys), "–", "–"])
    compiled = compile_program(
        base,
        train.examples,
        optimizer="bootstrap",
        metric=optimizer_metric(objective, threshold=threshold),
        threads=threads,
    )
    results["optimized"] = evaluate_program(compiled.program, dev, metrics, name="optimized", threads=threads)
    rows.append(
        [
            label,
            f"bootstrap ({compiled.demos} demos)",
            *fmt_metrics(results["optimized"].metrics, keys),
            compiled.lm_calls,
            f"{compiled.wall_s / 60:.1f}",
        ]
    )
    return rows


def fmt_metrics(values: dict[str, float | None], keys: list[str]) -> list[str]:
    return ["–" if values.get(k) is None else f"{values[k]:.3f}" for k in keys]


def classifier_bench(train_n: int, dev_n: int, threads: int) -> tuple[list[str], list[list[object]]]:
    from flywheel.programs.classify import FeedbackClassifier

    train = dataset_from_rows(read_rows(FEEDBACK / "train.csv")[:train_n], "classifier", name="train")
    dev = dataset_from_rows(read_rows(FEEDBACK / "dev.csv")[:dev_n], "classifier", name="dev")
    metrics = resolve_metrics(["accuracy", "reason_accuracy"], "classifier", composites={})
    base = FeedbackClassifier()
    hand = with_hand_prompt(base, "classify", HAND_CLASSIFIER_PROMPT, HAND_CLASSIFIER_EXAMPLES)
    keys = ["accuracy", "macro_f1", "reason_accuracy"]
    rows = compare(
        f"classifier ({train_n} train / {dev_n} dev)",
        base,
        hand,
        train,
        dev,
        metrics,
        metrics["accuracy"],
        1.0,
        threads,
        keys,
    )
    return keys, rows


def rag_bench(train_n: int, dev_n: int, threads: int, home: Path) -> tuple[list[str], list[list[object]]]:
    from flywheel.knowledge.base import KnowledgeBase
    from flywheel.programs.rag import RAGChatbot, knowledge_readable, knowledge_retriever

    env = {**os.environ, "FLYWHEEL_HOME": str(home)}
    for command in (
        ["users", "import", "samples/users.yaml"],
        ["docs", "import", "samples/knowledge/manifest.yaml", "--as", "admin"],
    ):
        subprocess.run(
            [sys.executable, "-m", "flywheel", *command], env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL
        )
    settings = load_settings(home=home)
    kb = KnowledgeBase(settings)
    docs = kb.catalog.list_documents()

    def resolve(source: str) -> str | None:
        return next((d.id for d in docs if d.source == source or source.endswith("/" + d.source)), None)

    rows = [r for r in read_rows(QUESTIONS) if r.get("answer")]
    data = dataset_from_rows(rows, "qa", name="rag_questions", principal_for=kb.principal, resolve_document=resolve)
    train, dev = data.split(0.5, seed=0)
    train, dev = train.head(train_n), dev.head(dev_n)
    composites = dict(settings.optimize.composites)
    metrics = resolve_metrics(
        ["rag_quality", "answer_f1", "answer_contains", "recall"],
        "qa",
        composites=composites,
        k=settings.programs.retrieval_k,
    )
    base = RAGChatbot(knowledge_retriever(kb), k=settings.programs.retrieval_k, readable=knowledge_readable(kb))
    hand = with_hand_prompt(base, "respond", HAND_RAG_PROMPT)
    keys = ["rag_quality", "answer_f1", "answer_contains", "recall"]
    table = compare(
        f"RAG chatbot ({len(train)} train / {len(dev)} dev)",
        base,
        hand,
        train,
        dev,
        metrics,
        metrics["rag_quality"],
        0.5,
        threads,
        keys,
    )
    return keys, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller sets (a smoke run, noisier numbers).")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sizes = {"clf": (12, 40), "rag": (8, 12)} if args.quick else {"clf": (24, 120), "rag": (20, 25)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp) / "home", lm={"cache": False, "pool_size": 2})
        configure_dspy(settings)
        sections = []
        if FEEDBACK.exists():
            keys, rows = classifier_bench(*sizes["clf"], args.threads)
            sections.append(markdown_table(["program", "variant", *keys, "compile LM calls", "compile min"], rows))
        else:
            sections.append(f"(classifier skipped: {FEEDBACK} is absent)")
        keys, rows = rag_bench(*sizes["rag"], args.threads, Path(tmp) / "rag-home")
        sections.append(markdown_table(["program", "variant", *keys, "compile LM calls", "compile min"], rows))
    body = "\n\n".join(sections) + (
        f"\n\nHeld-out rows only; the same rows for every variant; embedded SmolLM2-135M, temperature 0, "
        f"DSPy cache off. Whole run: {(time.perf_counter() - started) / 60:.1f} min."
    )
    print(body)
    if not args.no_write:
        write_section(
            "optimize",
            "Optimization lift (held-out, before/after, vs a hand-written prompt)",
            body,
            "python -m bench.optimize" + (" --quick" if args.quick else ""),
        )


if __name__ == "__main__":
    main()
