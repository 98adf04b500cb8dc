"""Spark with a distilled head: the same answers as in-process, and a run that resumes after a failure."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from flywheel.evaluate.datasets import dataset_from_rows, read_rows
from flywheel.optimize.classifier_search import compile_classifier
from flywheel.programs.classify import FeedbackClassifier
from tests.conftest import shared_data
from tests.e2e.test_spark_batch import stop_spark

pytest.importorskip("pyspark", reason="the Spark engine needs pyspark (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17 (java not on PATH)")


@pytest.fixture(autouse=True)
def no_per_row_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACE_SAMPLING_RATIO", "0")


def test_spark_head_matches_in_process_and_resumes(tmp_path: Path) -> None:
    from pyspark.sql import functions as F

    from flywheel.batch.spark import ROW, classify_spark, spark_session
    from flywheel.batch.spark_resume import MANIFEST, partial_dir, run_in_chunks
    from flywheel.config import load_settings
    from flywheel.registry.programs import ProgramRegistry

    train = dataset_from_rows(read_rows(shared_data("airline_feedback", "train.csv"))[:200], "classifier", name="train")
    program = compile_classifier(
        FeedbackClassifier(), train.examples, optimizer="distill", objective="macro_f1"
    ).program
    rows = tmp_path / "dev.csv"
    frame = pd.read_csv(shared_data("airline_feedback", "dev.csv"), dtype=str, keep_default_na=False).head(250)
    frame.to_csv(rows, index=False)
    registry = ProgramRegistry(load_settings())
    version = registry.register("classifier", program, description="head (spark e2e)")
    spark = spark_session("local[2]")
    try:
        summary = classify_spark(
            spark,
            rows,
            "text",
            tmp_path / "out.parquet",
            registry.model_uri("classifier", version.version),
            partitions=2,
            chunk_rows=100,
        )
        assert summary.rows == 250 and summary.failed == 0
        out = pd.read_parquet(tmp_path / "out.parquet")
        assert out["text"].tolist() == frame["text"].tolist()  # every row once, in input order
        expected = program.classify_many(frame["text"].tolist())
        assert out["predicted_sentiment"].tolist() == [e["sentiment"] for e in expected]
        assert not partial_dir(tmp_path / "out.parquet").exists()

        # Resume: a run that fails in its second chunk keeps the first; the rerun does only the rest.
        numbered = (
            spark.read.options(header=True, multiLine=True, escape='"')
            .csv(str(rows))
            .withColumn(ROW, F.monotonically_increasing_id())
        )
        calls = []

        def classify(chunk, fail_at: int | None = None):  # type: ignore[no-untyped-def]
            calls.append(chunk.count())
            if fail_at is not None and len(calls) == fail_at:
                raise RuntimeError("executor lost")
            return chunk.withColumn("predicted_sentiment", F.lit("x"))

        target = tmp_path / "resumed.parquet"
        with pytest.raises(RuntimeError):
            run_in_chunks(numbered, ROW, lambda c: classify(c, fail_at=2), target, {"input": "dev"}, chunk_rows=100)
        assert (partial_dir(target) / MANIFEST).is_file() and not target.exists()
        calls.clear()
        done = run_in_chunks(numbered, ROW, classify, target, {"input": "dev"}, chunk_rows=100)
        assert calls == [100, 50] and done["resumed"] == 100 and done["classified"] == 150
        assert pd.read_parquet(target)["text"].tolist() == frame["text"].tolist()
    finally:
        stop_spark(spark)
