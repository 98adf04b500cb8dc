"""A real `flywheel docs add` process killed with SIGKILL mid-ingestion leaves a consistent index."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from flywheel.config import load_settings
from flywheel.knowledge.base import KnowledgeBase

TOPICS = ["oil servicing", "brake wear", "tire pressure", "propeller inspection", "APU start", "de-icing boots"]


def write_corpus(folder: Path, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        sections = "\n\n".join(
            f"## {j} Step {j}\n\nFor {topic} on tail N4{i:02d}SK, perform step {j}: inspect item {i}-{j}, "
            f"record the reading in the tech log, and compare it with limit {i * 7 + j} units. "
            "If the reading is outside the limit, raise a defect and inform maintenance control."
            for j in range(1, 6)
        )
        (folder / f"card-{i:03d}.md").write_text(f"# Task card {i}: {topic}\n\n{sections}\n")


def ready_documents(home: Path) -> int:
    try:
        with sqlite3.connect(home / "catalog.db", timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM documents WHERE live_version > 0").fetchone()[0]
    except sqlite3.Error:
        return 0


def check_consistent(kb: KnowledgeBase) -> dict[str, int]:
    """Every document in the index is exactly one version with contiguous chunks; returns doc -> chunks."""
    rows = kb.index.table.search().select(["doc_id", "version", "ordinal"]).limit(None).to_list()
    by_doc: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for row in rows:
        by_doc[row["doc_id"]].append((row["version"], row["ordinal"]))
    catalog_ids = {d.id for d in kb.catalog.list_documents()}
    for doc_id, items in by_doc.items():
        assert doc_id in catalog_ids, f"orphan chunks for {doc_id}"
        assert len({v for v, _ in items}) == 1, f"{doc_id} mixes versions"
        assert sorted(o for _, o in items) == list(range(len(items))), f"{doc_id} is half-written"
    return {doc_id: len(items) for doc_id, items in by_doc.items()}


@pytest.mark.parametrize("kill_after_ready", [3, 40])
def test_sigkill_mid_ingestion_then_rerun_completes(tmp_path: Path, flywheel_home: Path, kill_after_ready: int) -> None:
    corpus = tmp_path / "cards"
    write_corpus(corpus, 90)
    kb = KnowledgeBase(load_settings())
    kb.catalog.add_user("alice", ["mechanics"])
    env = {
        **os.environ,
        "FLYWHEEL_HOME": str(flywheel_home),
        "COLUMNS": "200",
        "FLYWHEEL_KNOWLEDGE__BATCH_CHUNKS": "16",
    }  # many small commits: many places to be killed
    command = [sys.executable, "-m", "flywheel", "docs", "add", str(corpus), "--group", "mechanics", "--as", "alice"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while ready_documents(flywheel_home) < kill_after_ready and process.poll() is None:
        assert time.monotonic() < deadline, "ingestion made no progress"
        time.sleep(0.05)
    assert process.poll() is None, "the ingestion finished before it could be killed: make the corpus larger"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    partial = check_consistent(KnowledgeBase(load_settings()))
    assert 0 < len(partial) < 90

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    kb = KnowledgeBase(load_settings())
    final = check_consistent(kb)
    docs = kb.catalog.list_documents()
    assert len(docs) == 90 and len(final) == 90
    assert all(d.status == "ready" and d.live_version >= 1 for d in docs)
    assert sum(final.values()) == sum(d.versions[-1].chunk_count for d in docs)
    # A third run changes nothing.
    third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and "90 unchanged" in third.stdout.replace("\n", " ")
