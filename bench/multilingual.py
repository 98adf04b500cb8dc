"""Japanese and English retrieval with each local embedder, with and without CJK word segmentation.

1. Japanese: the whole sample knowledge base (samples/knowledge, English and Japanese documents,
   each question asked as its `user`, so the ACL applies) and samples/datasets/ja_questions.jsonl.
   Document recall@5 of keyword (BM25), vector and hybrid search; keyword and hybrid are measured
   with the CJK segmentation and without it (the whitespace tokenization used before: queries go
   to the plain text column unsegmented, exactly the earlier code path).
2. English: wiki_qa (../shared/data/wiki_qa), a seeded sample of articles and all their questions
   (all 35 articles with --full), vector and hybrid recall@5 per embedder.

Run: python -m bench.multilingual [--articles N | --full] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from bench.report import REPO, SHARED_DATA, markdown_table, write_section
from flywheel.config import EmbedderSettings, load_settings
from flywheel.knowledge.base import KnowledgeBase
from flywheel.knowledge.embed import LOCAL_MODELS, Embedder, build_embedder

SAMPLES = REPO / "samples"
WIKI = SHARED_DATA / "wiki_qa"
SEED = 13
K = 5


def log(message: str) -> None:
    print(f"multilingual: {message}", file=sys.stderr, flush=True)


@contextmanager
def whitespace_tokenization() -> Iterator[None]:
    """Search as before CJK support: no query is treated as CJK, so nothing is segmented."""
    with mock.patch("flywheel.knowledge.index.has_cjk", lambda _text: False):
        yield


def sample_kb(home: Path, embedder: Embedder) -> KnowledgeBase:
    kb = KnowledgeBase(load_settings(home=home), embedder=embedder)
    users = yaml.safe_load((SAMPLES / "users.yaml").read_text(encoding="utf-8"))
    for group in users["groups"]:
        kb.catalog.add_group(group["name"], group.get("description", ""))
    for user in users["users"]:
        kb.catalog.add_user(user["name"], user.get("groups", []), is_admin=bool(user.get("admin")))
    for entry in yaml.safe_load((SAMPLES / "knowledge" / "manifest.yaml").read_text(encoding="utf-8")):
        path = SAMPLES / "knowledge" / entry["path"]
        kb.ingest_files(
            kb.principal(entry["owner"]),
            [(path.name, path.read_bytes())],
            groups=entry["groups"],
            tags=entry.get("tags", []),
            titles={path.name: entry["title"]},
        )
    return kb


def recall(kb: KnowledgeBase, questions: list[dict[str, Any]], mode: str, user: str | None = None) -> float:
    """Document recall@K; with an ``evidence`` span in the rows, passage recall@K (a top-K chunk of the
    gold document that holds the span, whitespace ignored)."""
    found = 0
    for q in questions:
        principal = kb.principal(user or q["user"])
        hits = kb.search(principal, q["question"], k=K, mode=mode)  # type: ignore[arg-type]
        gold = [h for h in hits if h.source == Path(q["document"]).name]
        if "evidence" in q:
            span = "".join(q["evidence"].split())
            gold = [h for h in gold if span in "".join(h.text.split())]
        found += bool(gold)
    return found / len(questions)


def japanese(embedder: Embedder, questions: list[dict[str, Any]]) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        kb = sample_kb(Path(home), embedder)
        seconds = time.perf_counter() - started
        log(f"{embedder.name}: sample knowledge base, {kb.index.count()} chunks in {seconds:.0f} s")
        documents = [{key: value for key, value in q.items() if key != "evidence"} for q in questions]
        out: dict[str, str] = {}
        for label, patch in (("", None), (" (whitespace)", whitespace_tokenization())):
            with patch or nullcontext():
                for mode in ("text", "vector", "hybrid"):
                    out[mode + label] = f"{recall(kb, documents, mode):.3f} / {recall(kb, questions, mode):.3f}"
        return out


def wiki_questions(articles: int | None) -> tuple[list[Path], list[dict[str, Any]]]:
    paths = sorted((WIKI / "articles").glob("*.txt"))
    if articles:
        paths = sorted(random.Random(SEED).sample(paths, articles))
    names = {p.name for p in paths}
    rows = [json.loads(line) for line in (WIKI / "questions.jsonl").read_text().splitlines()]
    return paths, [r for r in rows if r["document"] in names]


def english(embedder: Embedder, paths: list[Path], questions: list[dict[str, Any]]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        kb = KnowledgeBase(load_settings(home=Path(home)), embedder=embedder)
        kb.catalog.add_user("bench", [])
        started = time.perf_counter()
        kb.ingest_files(kb.principal("bench"), [(p.name, p.read_bytes()) for p in paths], groups=["everyone"])
        log(f"{embedder.name}: wiki_qa, {kb.index.count()} chunks in {time.perf_counter() - started:.0f} s")
        return {mode: recall(kb, questions, mode, user="bench") for mode in ("text", "vector", "hybrid")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=8, help="wiki_qa articles sampled (seeded)")
    parser.add_argument("--full", action="store_true", help="all 35 wiki_qa articles and 917 questions")
    parser.add_argument("--embedders", nargs="+", default=list(LOCAL_MODELS), choices=LOCAL_MODELS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    ja = [json.loads(line) for line in (SAMPLES / "datasets" / "ja_questions.jsonl").read_text().splitlines()]
    paths, en = wiki_questions(None if args.full else args.articles)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name in args.embedders:
        embedder = build_embedder(EmbedderSettings(model=name))
        results[name] = {"ja": japanese(embedder, ja), "en": english(embedder, paths, en)}
        log(f"{name}: {results[name]}")

    def cell(value: float) -> str:
        return f"{value:.3f}"

    ja_rows = [
        [
            name,
            r["ja"]["text (whitespace)"],
            r["ja"]["text"],
            r["ja"]["vector"],
            r["ja"]["hybrid (whitespace)"],
            r["ja"]["hybrid"],
        ]
        for name, r in results.items()
    ]
    en_rows = [
        [name, cell(r["en"]["text"]), cell(r["en"]["vector"]), cell(r["en"]["hybrid"])] for name, r in results.items()
    ]
    ja_table = markdown_table(
        [
            "embedder",
            "keyword, whitespace (before)",
            "keyword, segmented",
            "vector",
            "hybrid, whitespace (before)",
            "hybrid, segmented",
        ],
        ja_rows,
    )
    en_table = markdown_table(["embedder", "keyword (BM25)", "vector", "hybrid"], en_rows)
    scope = "all 35 articles" if args.full else f"{len(paths)} of 35 articles (seed {SEED})"
    body = (
        f"### Japanese: {len(ja)} questions (samples/datasets/ja_questions.jsonl), recall@{K}\n\n"
        "Each cell: document recall / passage recall (a top-5 chunk of the gold document holds the row's "
        "`evidence` span). Corpus: the whole sample knowledge base (English and Japanese documents); each "
        "question is asked as its user, so the ACL applies. *whitespace* = the tokenization before CJK "
        "support (vector search does not depend on it).\n\n"
        f"{ja_table}\n\n"
        f"### English: wiki_qa, {scope}, {len(en)} questions, document recall@{K}\n\n{en_table}\n"
    )
    print(body)
    if not args.no_write:
        command = "python -m bench.multilingual" + (" --full" if args.full else f" --articles {args.articles}")
        write_section("multilingual", "Japanese documents and multilingual embedders: recall@5", body, command)


if __name__ == "__main__":
    main()
