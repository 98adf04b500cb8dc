"""Value answers without an LM: on questions that ask for a quantity or a date, the quoted sentence vs the
value phrase that :func:`flywheel.programs.values.value_answer` takes from it.

Retrieval (hybrid, k = 4, as the row's user) and the embedder only: the quoted sentence is the one the
RAG chatbot quotes when the model's own phrase is not a value a passage holds, so this measures that
fallback alone, for every value question. Corpora: the sample knowledge base with its labelled
questions (samples/datasets/rag_questions.jsonl), and wiki_qa's *training* articles of bench.wikiqa's split
(the questions the value rules were written against; the held-out articles are bench.wikiqa's).

Run: python -m bench.values [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.report import markdown_table, write_section


def value_rows(kb: Any, rows: list[tuple[str, list[str], Any]]) -> dict[str, float]:
    """Per corpus: value questions, how many get a value phrase, F1 of the sentence and of the value."""
    from flywheel.evaluate.metrics import token_f1
    from flywheel.programs.quote import best_sentence
    from flywheel.programs.rag import is_yes_no_question
    from flywheel.programs.values import asks_for_value, value_answer

    asked = with_value = 0
    sentence_f1 = value_f1 = 0.0
    for question, golds, principal in rows:
        if is_yes_no_question(question) or not asks_for_value(question):
            continue
        quoted = best_sentence(question, kb.search(principal, question, k=4), lambda h: h.text, kb.embedder.embed)
        if quoted is None:
            continue
        value = value_answer(question, quoted[0])
        asked += 1
        with_value += value is not None
        sentence_f1 += token_f1({"answer": golds}, {"answer": quoted[0]}) or 0.0
        value_f1 += token_f1({"answer": golds}, {"answer": value or quoted[0]}) or 0.0
    return {
        "questions": asked,
        "with_value": with_value,
        "sentence": sentence_f1 / max(asked, 1),
        "value": value_f1 / max(asked, 1),
    }


def sample_corpus() -> tuple[Any, list[tuple[str, list[str], Any]]]:
    from bench import services
    from flywheel.config import load_settings
    from flywheel.knowledge.base import KnowledgeBase

    kb = KnowledgeBase(load_settings(home=services.fresh_home()))
    rows = [r for r in services.questions() if r.get("answer")]
    return kb, [(r["question"], [r["answer"]], kb.principal(r["user"])) for r in rows]


def wiki_training_corpus() -> tuple[Any, list[tuple[str, list[str], Any]]] | None:
    from bench.wikiqa import WIKI, split_articles
    from flywheel.config import load_settings
    from flywheel.knowledge.base import KnowledgeBase

    if not WIKI.is_dir():
        return None
    articles = split_articles(sorted(p.name for p in (WIKI / "articles").glob("*.txt")))["train"]
    kb = KnowledgeBase(load_settings(home=Path(tempfile.mkdtemp(prefix="flywheel-values-"))))
    kb.catalog.add_group("wiki")
    kb.catalog.add_user("reader", groups=["wiki"])
    reader = kb.principal("reader")
    kb.ingest_files(reader, [(n, (WIKI / "articles" / n).read_bytes()) for n in articles], groups=["wiki"])
    rows = [json.loads(line) for line in (WIKI / "questions.jsonl").read_text().splitlines() if line.strip()]
    return kb, [(r["question"], r["answers"], reader) for r in rows if r["document"] in articles]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    table = []
    corpora = {"sample knowledge base": sample_corpus(), "wiki_qa training articles": wiki_training_corpus()}
    for name, corpus in corpora.items():
        if corpus is None:
            continue
        scores = value_rows(*corpus)
        table.append(
            [
                name,
                scores["questions"],
                scores["with_value"],
                f"{scores['sentence']:.3f}",
                f"{scores['value']:.3f}",
                f"{scores['value'] / max(scores['sentence'], 1e-9):.2f}×",
            ]
        )
    body = markdown_table(
        ["corpus", "value questions", "with a value phrase", "F1 quoted sentence", "F1 value answer", "ratio"],
        table,
    )
    body += (
        "\n\nValue questions: not yes/no, and asking for a quantity, a time or a date (`asks_for_value`). "
        "Both answers come from the same quoted sentence (hybrid retrieval, k = 4, as the row's user; no LM "
        "call); where the sentence holds no value phrase, the value answer is the sentence. In the program "
        "this applies only where the model's own phrase is not a value a passage holds."
    )
    print(body, flush=True)
    if not args.no_write:
        write_section(
            "values",
            "Value answers: the quoted sentence vs its value phrase (no LM)",
            body,
            "python -m bench.values",
        )


if __name__ == "__main__":
    main()
