"""`flywheel optimize classifier` (default: the candidate search) on shared data, then `flywheel classify` with
the registered version: the real CLI, embedder, MLflow registry and gate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from flywheel.config import load_settings
from tests.conftest import shared_data


def flywheel(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flywheel", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900
    )


def test_default_optimize_registers_a_head_and_classify_serves_it(tmp_path: Path) -> None:
    data = shared_data("airline_feedback")
    dev = tmp_path / "dev.csv"
    pd.read_csv(data / "dev.csv", dtype=str, keep_default_na=False).head(40).to_csv(dev, index=False)
    env = {
        **os.environ,
        "FLYWHEEL_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACE_SAMPLING_RATIO": "0",
        "FLYWHEEL_CLASSIFY__SEARCH_LM_ROWS": "0",
    }  # head candidates only: no LM call in the search
    run = flywheel(
        [
            "optimize",
            "classifier",
            "--train",
            str(data / "train.csv"),
            "--train-limit",
            "400",
            "--dev",
            str(dev),
            "--dev-limit",
            "6",
        ],
        env,
        tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "held-out dev.csv (6 examples)" in run.stdout

    from flywheel.registry.programs import ProgramRegistry

    registry = ProgramRegistry(load_settings(home=tmp_path / "home"))
    candidate = registry.versions("classifier")[0]
    assert candidate.version == 2 and candidate.params["optimizer"] == "auto"
    assert candidate.params["winner"] == "distilled head" and int(candidate.params["compile_lm_calls"]) == 0
    assert {"accuracy", "macro_f1", "reason_macro_f1"} <= set(candidate.metrics)
    assert candidate.params["objective"] == "macro_f1"
    state = registry.load_state("classifier", 2)
    assert state is not None and state[1]["head"]["format"] == "flywheel.linear-head/1"

    out = tmp_path / "classified.parquet"
    run = flywheel(["classify", str(dev), "--out", str(out), "--program-version", "2", "--report"], env, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    classified = pd.read_parquet(out)
    assert len(classified) == 40 and classified["error"].isna().all()
    assert classified["justification"].str.startswith("distilled head").all()  # no LM call per row
    assert (tmp_path / "classified.report.md").exists()
    assert "| Late Flight |" in (tmp_path / "classified.reason.report.md").read_text()  # the reason taxonomy too
