"""The knowledge base: ingestion speed, ACL-filtered search latency and ANN recall, hybrid recall.

1. Ingestion chunks/s (parse + chunk + embed + index commit) versus the raw embedder's chunks/s
   on the very same chunk texts, interleaved A B A B after a warm-up.
2. Search p50/p95 with the ACL prefilter, and recall@10 of the ANN index against exact search
   with the same filter, at 10k / 100k / 1M chunks. Vectors are real MiniLM embeddings of wiki_qa
   chunks, replicated with small perturbations (never uniform random vectors).
3. Document-level recall@5 on wiki_qa (917 questions, 35 articles): hybrid vs vector vs BM25.

Run: python -m bench.knowledge [--sizes 10000,100000,1000000] [--skip-scale]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.report import SHARED_DATA, markdown_table, median, percentile, write_section
from flywheel.access import Principal
from flywheel.config import load_settings
from flywheel.knowledge.base import KnowledgeBase
from flywheel.knowledge.chunk import chunk_document
from flywheel.knowledge.embed import LocalEmbedder
from flywheel.knowledge.index import ChunkIndex
from flywheel.knowledge.parse import parse_document

GROUPS = ["mechanics", "pilots", "cabin-crew", "customer-support", "management"]


def need(path: Path) -> Path:
    if not path.exists():
        raise SystemExit(f"{path} is missing: this benchmark needs ../shared/data")
    return path


def faa_pages(n: int) -> list[tuple[str, bytes]]:
    lines = need(SHARED_DATA / "faa_powerplant" / "corpus.jsonl").read_text().splitlines()[:n]
    pages = [json.loads(line) for line in lines]
    return [(f"faa-{p['id']}.txt", p["text"].encode()) for p in pages if p["text"].strip()]


def new_kb(home: Path, embedder: LocalEmbedder) -> KnowledgeBase:
    kb = KnowledgeBase(load_settings(home=home), embedder=embedder)
    kb.catalog.add_user("bench", ["mechanics"])
    return kb


def ingestion(embedder: LocalEmbedder, pages: int, rounds: int) -> list[list[object]]:
    files = faa_pages(pages)
    settings = load_settings()
    texts = [
        c.text
        for name, data in files
        for c in chunk_document(parse_document(name, data), max_tokens=settings.knowledge.chunk_max_tokens,
                                overlap_tokens=settings.knowledge.chunk_overlap_tokens,
                                count_tokens=embedder.count_tokens)
    ]
    embedder.embed(texts[:64])  # warm-up
    raw, full = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        embedder.embed(texts)
        raw.append(len(texts) / (time.perf_counter() - started))
        with tempfile.TemporaryDirectory() as home:
            kb = new_kb(Path(home), embedder)
            started = time.perf_counter()
            results = kb.ingest_files(kb.principal("bench"), files, groups=["mechanics"])
            seconds = time.perf_counter() - started
            chunks = sum(r.chunks for r in results)
            full.append(chunks / seconds)
    ratio = median(full) / median(raw)
    return [[f"{len(files)} FAA handbook pages, {len(texts)} chunks", f"{median(raw):.1f}", f"{median(full):.1f}",
             f"{ratio:.2f}"]]


def wiki_chunks(embedder: LocalEmbedder) -> tuple[list[str], np.ndarray, list[str]]:
    articles = sorted(need(SHARED_DATA / "wiki_qa" / "articles").glob("*.txt"))
    texts, sources = [], []
    for path in articles:
        doc = parse_document(path.name, path.read_bytes())
        for c in chunk_document(doc, max_tokens=200, overlap_tokens=30, count_tokens=embedder.count_tokens):
            texts.append(c.text)
            sources.append(path.name)
    return texts, embedder.embed(texts), sources


def scale(embedder: LocalEmbedder, sizes: list[int], queries: int,
          on_row: Callable[[list[list[object]]], None] = lambda rows: None) -> list[list[object]]:
    _, base, _ = wiki_chunks(embedder)
    questions = [json.loads(line)["question"] for line in
                 need(SHARED_DATA / "wiki_qa" / "questions.jsonl").read_text().splitlines()[:queries]]
    qvecs = embedder.embed(questions)
    rng = np.random.default_rng(7)
    principal = Principal("bench", frozenset({"mechanics", "pilots"}))
    rows_out = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as home:
            index = ChunkIndex(str(Path(home) / "lancedb"), base.shape[1], ann_min_rows=1)
            written = 0
            while written < size:
                n = min(100_000, size - written)
                picks = rng.integers(0, len(base), n)
                noise = rng.normal(0, 0.02, (n, base.shape[1])).astype(np.float32)
                vecs = base[picks] + noise
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                groups = rng.choice(GROUPS, size=(n, 2))
                rows = [
                    {"chunk_id": f"c{written + i}", "doc_id": f"d{(written + i) // 20}", "version": 1,
                     "ordinal": (written + i) % 20, "text": f"chunk {written + i}", "title": "", "source": "",
                     "page": None, "page_end": None, "section": None, "groups": list(groups[i]), "tags": [],
                     "vector": vecs[i]}
                    for i in range(n)
                ]
                index.table.add(rows)
                written += n
            started = time.perf_counter()
            index.ensure_indexes()
            build = time.perf_counter() - started
            exact_ids, exact_lat, ann_lat, recalls = [], [], [], []
            for q in qvecs:  # exact search (same ACL prefilter) for ground truth
                t = time.perf_counter()
                hits = index.search(principal, vector=q, k=10, mode="vector", exact=True, candidates=10)
                exact_lat.append(time.perf_counter() - t)
                exact_ids.append({h.chunk_id for h in hits})
            for _ in range(2):  # warm the ANN index
                index.search(principal, vector=qvecs[0], k=10, mode="vector", candidates=10)
            for q, truth in zip(qvecs, exact_ids, strict=True):
                t = time.perf_counter()
                hits = index.search(principal, vector=q, k=10, mode="vector", candidates=10)
                ann_lat.append(time.perf_counter() - t)
                recalls.append(len(truth & {h.chunk_id for h in hits}) / max(len(truth), 1))
            rows_out.append([
                f"{size:,}", f"{build:.0f}", f"{percentile(exact_lat, 50) * 1000:.1f}",
                f"{percentile(ann_lat, 50) * 1000:.1f}", f"{percentile(ann_lat, 95) * 1000:.1f}",
                f"{np.mean(recalls):.3f}", f"{percentile(exact_lat, 50) / percentile(ann_lat, 50):.1f}×",
            ])
            print(rows_out[-1], flush=True)
            on_row(rows_out)
    return rows_out


def hybrid_recall(embedder: LocalEmbedder) -> list[list[object]]:
    lines = need(SHARED_DATA / "wiki_qa" / "questions.jsonl").read_text().splitlines()
    questions = [json.loads(line) for line in lines]
    with tempfile.TemporaryDirectory() as home:
        kb = new_kb(Path(home), embedder)
        articles = sorted(need(SHARED_DATA / "wiki_qa" / "articles").glob("*.txt"))
        kb.ingest_files(kb.principal("bench"), [(p.name, p.read_bytes()) for p in articles], groups=["mechanics"])
        principal = kb.principal("bench")
        out = []
        variants = [("BM25 (full-text)", "text", "score"), ("vector (MiniLM)", "vector", "score"),
                    ("hybrid, reciprocal-rank fusion", "hybrid", "rank"),
                    ("hybrid, score fusion (Flywheel default)", "hybrid", "score")]
        for label, mode, fusion in variants:
            hits_at_5 = 0
            started = time.perf_counter()
            for q in questions:
                hits = kb.search(principal, q["question"], k=5, mode=mode, fusion=fusion)  # type: ignore[arg-type]
                hits_at_5 += any(h.source == q["document"] for h in hits)
            seconds = (time.perf_counter() - started) / len(questions)
            out.append([label, f"{hits_at_5 / len(questions):.3f}", f"{seconds * 1000:.1f}"])
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=120, help="FAA pages ingested for the speed comparison")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--only-scale", action="store_true", help="print the scale table only (no docs update)")
    args = parser.parse_args()
    embedder = LocalEmbedder()
    if args.only_scale:
        scale(embedder, [int(s) for s in args.sizes.split(",")], args.queries)
        return

    speed = markdown_table(["corpus", "raw embedder chunks/s", "ingestion chunks/s", "ratio (goal ≥ 0.9)"],
                           ingestion(embedder, args.pages, args.rounds))
    print(speed, flush=True)
    recall = markdown_table(["retrieval", "doc recall@5", "ms/query"], hybrid_recall(embedder))
    print(recall, flush=True)
    body = (
        "### Ingestion versus the raw embedder (same chunk texts, interleaved)\n\n" + speed
        + "\n\n### Hybrid versus single-mode retrieval: wiki_qa, 917 questions, 35 articles\n\n" + recall
    )
    write_section("knowledge", "Knowledge base: ingestion, search latency, recall", body, "python -m bench.knowledge")
    if not args.skip_scale:
        sizes = [int(s) for s in args.sizes.split(",")]

        def record(rows: list[list[object]]) -> None:  # rewritten after every size, so a long run keeps its rows
            table = markdown_table(
                ["chunks", "index build s", "exact p50 ms", "ANN p50 ms", "ANN p95 ms", "ANN recall@10", "speed-up"],
                rows,
            )
            print(table, flush=True)
            write_section("knowledge", "Knowledge base: ingestion, search latency, recall", body + (
                "\n\n### ACL-filtered vector search at scale (IVF-HNSW-SQ, cosine; ACL prefilter: 2 of 5 groups)\n\n"
                "Real MiniLM vectors of wiki_qa chunks replicated with Gaussian noise (σ = 0.02 per dimension) and "
                f"renormalised; {args.queries} wiki_qa questions as queries; recall against exact search with the "
                "same filter.\n\n" + table), "python -m bench.knowledge")

        scale(embedder, sizes, args.queries, on_row=record)


if __name__ == "__main__":
    main()
