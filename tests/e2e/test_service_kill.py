"""kill -9 across the service: `flywheel serve` SIGKILLed in the middle of uploads, chats and feedback
writes, and a register + promote loop SIGKILLed mid-way. After a restart every document is at one whole
version, feedback rows are whole, the champion is a whole loadable version, and the same requests work.

The LM and the embedder are bench.fault_lm on loopback (no model is loaded), so each server starts in
seconds; every wait is bounded.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench import services
from bench.fault_lm import EMBEDDING_DIMENSIONS, FaultLM, running

from flywheel.config import Settings, load_settings
from flywheel.knowledge.catalog import Catalog
from flywheel.knowledge.index import ChunkIndex
from flywheel.stores.keys import ApiKeyStore

MANUAL = "# Manual\n\nRevision {n}: torque the wheel nuts to {n} newton metres.\n\n" + "Detail words. " * 300


@pytest.fixture(scope="module")
def lm() -> Iterator[FaultLM]:
    with running(FaultLM()) as server:
        yield server


def stack_env(home: Path, lm: FaultLM) -> dict[str, str]:
    return services.base_env(
        home,
        LM__PROVIDER="openai",
        LM__API_BASE=lm.api_base,
        LM__MODEL="stub",
        LM__CACHE="false",
        EMBEDDER__PROVIDER="openai",
        EMBEDDER__API_BASE=lm.api_base,
        EMBEDDER__MODEL="hash",
        EMBEDDER__DIMENSIONS=str(EMBEDDING_DIMENSIONS),
    )


def serve(env: dict[str, str]) -> services.Server:
    port = services.free_port()
    argv = [str(services.BIN / "flywheel"), "serve", "--no-tracing", "--port", str(port)]
    server = services.Server("kill-test-serve", argv, env, port, health="/ready").start()
    server.wait_ready(timeout_s=120)
    return server


def kill(server: services.Server) -> None:
    assert server.proc is not None
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=30)


def index_is_whole(settings: Settings) -> None:
    """Each document's chunks in the index are one version: its live one, or a newer pending one (the state
    a crash between the index commit and the catalog update leaves; re-uploading finishes it)."""
    index = ChunkIndex(settings.index_uri, EMBEDDING_DIMENSIONS)
    rows = index.table.search().select(["doc_id", "version"]).limit(100_000).to_list()
    for doc in Catalog(settings.catalog_url).list_documents():
        versions = {r["version"] for r in rows if r["doc_id"] == doc.id}
        assert len(versions) <= 1, (doc.source, versions)
        status = {v.version: v for v in doc.versions}
        for version in versions:
            if version == doc.live_version:
                assert sum(r["doc_id"] == doc.id for r in rows) == status[version].chunk_count, doc.source
            else:
                assert version > doc.live_version and status[version].status == "pending", (doc.source, version)


def test_serve_killed_mid_writes_restarts_whole(lm: FaultLM, tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = load_settings(home=home)
    settings.ensure_dirs()
    catalog = Catalog(settings.catalog_url)
    catalog.add_user("alice", ["mechanics"])
    catalog.add_user("root", [], is_admin=True)
    keys = ApiKeyStore(settings.catalog_url)
    alice = {"Authorization": f"Bearer {keys.create('alice')[1]}"}
    root = {"Authorization": f"Bearer {keys.create('root')[1]}"}
    env = stack_env(home, lm)
    server = serve(env)
    done = {"uploads": 0, "feedback": 0}
    stop = threading.Event()

    def uploads() -> None:
        with httpx.Client(base_url=server.url, headers=alice, timeout=30) as client:
            n = 0
            while not stop.is_set():
                n += 1
                files = [
                    ("files", ("manual.md", MANUAL.format(n=n).encode(), "text/markdown")),
                    ("files", (f"note-{n}.md", f"# Note {n}\n\nShift note {n}.\n".encode(), "text/markdown")),
                ]
                try:
                    if client.post("/documents", files=files, data={"groups": "mechanics"}).status_code == 201:
                        done["uploads"] += 1
                except httpx.HTTPError:
                    return

    def feedback() -> None:
        with httpx.Client(base_url=server.url, headers=alice, timeout=30) as client:
            while not stop.is_set():
                try:
                    answer = client.post(
                        "/v1/chat/completions",
                        json={"model": "rag", "messages": [{"role": "user", "content": "Wheel nut torque?"}]},
                    )
                    if answer.status_code != 200:
                        continue
                    rating = random.choice(["up", "down"])
                    reply = client.post(
                        "/feedback",
                        json={
                            "trace_id": answer.json()["flywheel"]["trace_id"],
                            "rating": rating,
                            "comment": "c" * 500,
                        },
                    )
                    done["feedback"] += reply.status_code == 201
                except httpx.HTTPError:
                    return

    workers = [threading.Thread(target=uploads), threading.Thread(target=feedback), threading.Thread(target=feedback)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 90
    while (done["uploads"] < 3 or done["feedback"] < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0, 0.3))  # somewhere inside the next requests
    kill(server)
    stop.set()
    for worker in workers:
        worker.join(30)
    assert done["uploads"] >= 3 and done["feedback"] >= 3, done

    with sqlite3.connect(home / "catalog.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert (
            db.execute("SELECT count(*) FROM feedback WHERE rating IS NULL OR length(comment) != 500").fetchone()[0]
            == 0
        )
    server = serve(env)  # restart on the same home
    try:
        index_is_whole(settings)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            upload = client.post(
                "/documents",
                headers=alice,
                data={"groups": "mechanics"},
                files=[("files", ("manual.md", MANUAL.format(n=999).encode(), "text/markdown"))],
            )
            assert upload.status_code == 201, upload.text
            answer = client.post(
                "/v1/chat/completions",
                headers=alice,
                json={"model": "rag", "messages": [{"role": "user", "content": "Wheel nut torque?"}]},
            )
            assert answer.status_code == 200, answer.text
            assert (
                client.post(
                    "/feedback", headers=alice, json={"trace_id": answer.json()["flywheel"]["trace_id"], "rating": "up"}
                ).status_code
                == 201
            )
            rows = client.get("/feedback", headers=root).json()["feedback"]
            assert len(rows) >= done["feedback"] and all(r["rating"] in ("up", "down") for r in rows)
            docs = client.get("/documents", headers=alice).json()["documents"]
            manual = next(d for d in docs if d["source"] == "manual.md")
            assert manual["status"] == "ready" and manual["chunks"] > 0
        index_is_whole(settings)
    finally:
        server.stop()


PROMOTE_LOOP = """
import sys
import dspy
from flywheel.config import load_settings
from flywheel.programs.classify import FeedbackClassifier
from flywheel.registry.programs import ProgramRegistry

registry = ProgramRegistry(load_settings())
for n in range(1, 50):
    program = FeedbackClassifier()
    program.classify.demos = [dspy.Example(text=f"demo {n}", sentiment="negative", reason="Late Flight",
                                           justification="j")]
    version = registry.register("classifier", program, metrics={"accuracy": n / 100})
    registry.promote("classifier", version.version, reason=f"round {n}")
    print("promoted", n, flush=True)
"""


def test_register_and_promote_killed_mid_way_leave_a_whole_champion(tmp_path: Path) -> None:
    env = services.base_env(tmp_path / "home")
    process = subprocess.Popen(
        [sys.executable, "-c", PROMOTE_LOOP],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    while len([line for line in seen if line.startswith("promoted")]) < 2 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
    time.sleep(random.uniform(0, 0.5))  # inside a later register or promote
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert sum(line.startswith("promoted") for line in seen) >= 2, "".join(seen)[-2000:]

    from flywheel.registry.programs import ProgramRegistry

    registry = ProgramRegistry(load_settings(home=tmp_path / "home"))
    champion, state = registry.load_state("classifier")  # the alias points at a whole, loadable version
    assert champion.status == "champion" and "demo" in str(state)
    assert registry.get("classifier").version == champion.version
    from tests.unit.test_registry import classifier_with_demo

    again = registry.register("classifier", classifier_with_demo("after the crash"))
    assert registry.promote("classifier", again.version).version == again.version  # and work goes on
