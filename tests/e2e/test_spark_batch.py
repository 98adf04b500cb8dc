"""`--engine spark` on local[2]: the registered classifier model over a Spark DataFrame gives the same
results, row for row, as the local batch path running the same registered model.

Two LMs: a deterministic keyword 'LM' server for a few hundred rows (the Spark plumbing at some
scale, quickly), and the real embedded SmolLM2 at temperature 0 for a smaller sample.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from flywheel.batch.io import read_table
from flywheel.batch.local import classify_frame, registered_predictor
from flywheel.config import load_settings
from flywheel.programs.classify import FeedbackClassifier
from flywheel.registry.programs import ProgramRegistry
from tests.conftest import shared_data
from tests.e2e.fake_lm_server import FakeLM, classify

pytest.importorskip("pyspark", reason="the Spark engine needs pyspark (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17 (java not on PATH)")

COMPARED = ["text", "predicted_sentiment", "predicted_reason", "justification", "error"]


@pytest.fixture(autouse=True)
def no_per_row_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    """As `flywheel classify` does by default: an MLflow trace per row costs more than a fast LM call."""
    monkeypatch.setenv("MLFLOW_TRACE_SAMPLING_RATIO", "0")


def dev_rows(tmp_path: Path, n: int) -> Path:
    source = shared_data("airline_feedback", "dev.csv")
    path = tmp_path / f"dev{n}.csv"
    pd.read_csv(source, dtype=str, keep_default_na=False).head(n).to_csv(path, index=False)
    return path


def stop_spark(spark: object) -> None:
    """Stop Spark and its JVM: a JVM keeps the environment it started with (this test's LM settings),
    and its Python workers inherit it, so the next test must start a fresh one."""
    from pyspark import SparkContext

    spark.stop()  # type: ignore[attr-defined]
    if SparkContext._gateway is not None:
        SparkContext._gateway.shutdown()
        SparkContext._gateway = None
        SparkContext._jvm = None


def local_and_spark(tmp_path: Path, rows: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    from flywheel.batch.spark import classify_spark, spark_session

    settings = load_settings()
    registry = ProgramRegistry(settings)
    version = registry.register("classifier", FeedbackClassifier(), description="zero-shot, for the Spark test")
    predict, program_id = registered_predictor(settings, str(version.version))
    local = classify_frame(
        read_table(rows, "text"), "text", tmp_path / "local.parquet", predict, program_id=program_id, threads=2
    )
    spark = spark_session("local[2]")
    try:
        summary = classify_spark(
            spark,
            rows,
            "text",
            tmp_path / "spark.parquet",
            registry.model_uri("classifier", version.version),
            partitions=2,
        )
    finally:
        stop_spark(spark)
    assert summary.rows == local.rows and summary.failed == local.failed
    assert summary.counts == local.counts
    spark_out = pd.read_parquet(tmp_path / "spark.parquet")
    assert len(list((tmp_path / "spark.parquet").glob("part-*.parquet"))) == 2
    return pd.read_parquet(tmp_path / "local.parquet")[COMPARED], spark_out[COMPARED]


def test_spark_matches_local_on_a_few_hundred_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = dev_rows(tmp_path, 300)
    with FakeLM() as lm:
        for name, value in {
            "FLYWHEEL_LM__PROVIDER": "openai",
            "FLYWHEEL_LM__API_BASE": lm.api_base,
            "FLYWHEEL_LM__MODEL": "keywords",
            "FLYWHEEL_LM__CACHE": "false",
        }.items():
            monkeypatch.setenv(name, value)
        local, spark = local_and_spark(tmp_path, rows)
        assert lm.requests >= 600  # both paths really called the LM for every row
    texts = pd.read_csv(rows, dtype=str, keep_default_na=False)["text"].tolist()
    assert spark["text"].tolist() == texts  # every row once, in input order
    pd.testing.assert_frame_equal(local, spark, check_dtype=False)
    assert local["error"].isna().all()
    expected = [classify(t)["sentiment"] for t in texts]
    assert spark["predicted_sentiment"].tolist() == expected


def test_spark_matches_local_with_the_embedded_lm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_LM__CACHE", "false")  # both paths decode every row
    rows = dev_rows(tmp_path, 6)
    local, spark = local_and_spark(tmp_path, rows)
    assert local["error"].isna().all()
    pd.testing.assert_frame_equal(local, spark, check_dtype=False)
