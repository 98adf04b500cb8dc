"""A `flywheel classify` process killed with SIGKILL mid-run resumes on rerun: every row exactly once.

The program is a fast deterministic stand-in (tests/unit/fake_classifier.py, configured through
``programs.custom``) so that the run is long enough to kill after its first checkpoint and short
enough to finish quickly; the batch machinery (threads, checkpoints, resume) is the real one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from tests.conftest import REPO, shared_data
from tests.unit.fake_classifier import label

ROWS = 300


def classify_command(source: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flywheel",
        "classify",
        str(source),
        "--out",
        str(out),
        "-p",
        "fake",
        "--threads",
        "2",
    ]


def test_killed_run_resumes_and_yields_each_row_exactly_once(tmp_path: Path, flywheel_home: Path) -> None:
    source = shared_data("airline_feedback", "unlabeled.csv")
    texts = pd.read_csv(source, dtype=str, keep_default_na=False)["text"].tolist()
    rows = tmp_path / "rows.csv"
    pd.read_csv(source, dtype=str, keep_default_na=False).head(ROWS).to_csv(rows, index=False)
    texts = texts[:ROWS]
    out = tmp_path / "out.parquet"
    log = tmp_path / "calls.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FLYWHEEL_HOME": str(flywheel_home),
        "FLYWHEEL_PROGRAMS__CUSTOM": json.dumps({"fake": "tests.unit.fake_classifier:FakeClassifier"}),
        "FLYWHEEL_CLASSIFY__CHECKPOINT_ROWS": "20",
        "FLYWHEEL_LM__PROVIDER": "openai",
        "FLYWHEEL_LM__API_BASE": "http://127.0.0.1:9/v1",
        "FAKE_CLASSIFIER_DELAY": "0.05",
        "FAKE_CLASSIFIER_LOG": str(log),
    }
    manifest = out.with_name(out.name + ".partial") / "manifest.json"

    process = subprocess.Popen(
        classify_command(rows, out), env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 300  # a generous bound on waiting, not a timing assertion
        while not manifest.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert manifest.exists(), f"no checkpoint was written: {process.stderr.read().decode()[-2000:]}"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    checkpointed = sum(part["rows"] for part in json.loads(manifest.read_text())["parts"])
    assert 0 < checkpointed < ROWS
    calls_before = log.read_text().splitlines()

    rerun = subprocess.run(
        classify_command(rows, out), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Resuming: {checkpointed} of {ROWS}" in rerun.stdout

    result = pd.read_parquet(out)
    assert len(result) == ROWS
    assert result["text"].tolist() == texts  # each row exactly once, in input order
    assert result["predicted_sentiment"].tolist() == [label(t)[0] for t in texts]
    assert result["error"].isna().all()
    # The rerun classified only what the checkpoint lacked (rows in flight at the kill are redone).
    calls_after = log.read_text().splitlines()[len(calls_before) :]
    assert len(calls_after) == ROWS - checkpointed
    assert not manifest.parent.exists()
