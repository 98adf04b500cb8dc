"""`flywheel serve` on loopback with the real embedded LM, and the deployed model under `mlflow models serve`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flywheel.config import Settings, load_settings
from flywheel.knowledge.base import KnowledgeBase
from flywheel.stores.keys import ApiKeyStore
from tests.e2e.test_lm_server import free_port

QUESTION = "What is the brake wear limit?"


def start(command: list[str], env: dict[str, str], url: str, *, timeout_s: float = 240) -> subprocess.Popen:
    """Start a server process and wait until ``url`` answers 200 (the process's output on failure)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{' '.join(command[:4])} exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(1)
    process.kill()
    pytest.fail(f"{url} did not answer within {timeout_s:.0f} s: {process.stdout.read() if process.stdout else ''}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def served_settings(sample_knowledge: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy of the sample knowledge base's home: keys, traces and registered models stay in this module."""
    home = tmp_path_factory.mktemp("serve-e2e") / "home"
    shutil.copytree(sample_knowledge.settings.home, home)
    return load_settings(home=home)


@pytest.fixture(scope="module")
def home_env(served_settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "MLFLOW_"))}
    env["FLYWHEEL_HOME"] = str(served_settings.home)
    return env


@pytest.fixture(scope="module")
def keys(served_settings: Settings) -> dict[str, str]:
    store = ApiKeyStore(served_settings.catalog_url)
    return {user: store.create(user)[1] for user in ("alice", "bob")}


@pytest.fixture(scope="module")
def service(home_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start([sys.executable, "-m", "flywheel", "serve", "--port", str(port)], home_env, f"{base}/ready")
    try:
        yield base
    finally:
        stop(process)


def test_openai_client_streams_a_cited_answer(service: str, keys: dict[str, str]) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{service}/v1", api_key=keys["alice"])
    assert "rag" in [m.id for m in client.models.list()]
    stream = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}], stream=True)
    chunks = [chunk for chunk in stream if chunk.choices]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert len(chunks) > 2 and text.strip()
    extra = chunks[-1].model_extra["flywheel"]
    assert extra["trace_id"] and extra["program"] == "rag"


def test_answers_are_traced_and_take_feedback(service: str, keys: dict[str, str], served_settings: Settings) -> None:
    headers = {"Authorization": f"Bearer {keys['alice']}"}
    reply = httpx.post(
        f"{service}/v1/chat/completions",
        headers=headers,
        timeout=300,
        json={"model": "rag", "messages": [{"role": "user", "content": QUESTION}]},
    )
    assert reply.status_code == 200, reply.text
    trace_id = reply.json()["flywheel"]["trace_id"]
    feedback = httpx.post(
        f"{service}/feedback",
        headers=headers,
        timeout=30,
        json={"trace_id": trace_id, "rating": "up", "comment": "e2e"},
    )
    assert feedback.status_code == 201, feedback.text
    bob = httpx.post(
        f"{service}/feedback",
        headers={"X-API-Key": keys["bob"]},
        timeout=30,
        json={"trace_id": trace_id, "rating": "down"},
    )
    assert bob.status_code == 403

    import time

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=served_settings.tracking_uri)
    names: set[str] = set()
    for _ in range(90):  # traces (and their spans) are exported asynchronously, off the request path
        try:
            names = {span.name for span in client.get_trace(trace_id).data.spans}
        except Exception:
            names = set()
        if "flywheel.rag" in names:
            break
        time.sleep(1)
    assert "flywheel.rag" in names and len(names) > 2  # DSPy module and LM spans under the root
    metrics = httpx.get(f"{service}/metrics", headers=headers, timeout=30).text
    assert 'flywheel_program_calls_total{outcome="ok",program="rag"}' in metrics


def test_invocations_answers_as_the_caller(service: str, keys: dict[str, str]) -> None:
    reply = httpx.post(
        f"{service}/invocations",
        headers={"Authorization": f"Bearer {keys['alice']}"},
        timeout=300,
        json={"dataframe_split": {"columns": ["question"], "data": [[QUESTION]]}},
    )
    assert reply.status_code == 200, reply.text
    row = reply.json()["predictions"][0]
    assert row["answer"] and not row["error"] and row["trace_id"]
    denied = httpx.post(
        f"{service}/invocations",
        headers={"Authorization": f"Bearer {keys['bob']}"},
        timeout=30,
        json={"dataframe_records": [{"question": QUESTION, "user": "alice"}]},
    )
    assert denied.status_code == 403


def test_deployed_model_answers_under_mlflow_models_serve(home_env: dict[str, str], served_settings: Settings) -> None:
    deploy = subprocess.run(
        [sys.executable, "-m", "flywheel", "deploy", "--program", "rag"],
        env=home_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    uri = deploy.stdout.strip().splitlines()[-1]
    assert uri == "models:/flywheel-rag@champion"
    port = free_port()
    bin_dir = Path(sys.executable).parent  # mlflow execs `uvicorn` from PATH, as in an activated venv
    env = {
        **home_env,
        "MLFLOW_TRACKING_URI": served_settings.tracking_uri,
        "PATH": f"{bin_dir}{os.pathsep}{home_env.get('PATH', '')}",
    }
    mlflow_bin = str(bin_dir / "mlflow")
    process = start(
        [mlflow_bin, "models", "serve", "-m", uri, "--env-manager", "local", "--port", str(port)],
        env,
        f"http://127.0.0.1:{port}/ping",
        timeout_s=300,
    )
    try:
        reply = httpx.post(
            f"http://127.0.0.1:{port}/invocations",
            timeout=300,
            json={"dataframe_records": [{"question": QUESTION, "user": "alice"}]},
        )
    finally:
        stop(process)
    assert reply.status_code == 200, reply.text
    row = reply.json()["predictions"][0]
    assert row["answer"] and not row["error"], row["error"]
