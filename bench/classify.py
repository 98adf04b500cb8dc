"""Batch classification throughput: the local engine vs Spark local[2], same registered model, same rows.

Registers the zero-shot classifier (embedded SmolLM2, temperature 0, DSPy cache off) in a
throw-away FLYWHEEL_HOME, then classifies the first N rows of airline_feedback dev.csv with
``flywheel.batch.local`` (threads = classify.threads, the MLflow pyfunc model loaded in-process) and
with ``flywheel.batch.spark`` on ``local[2]`` (``mlflow.pyfunc.spark_udf``, one model per Python
worker), alternating engines per round. Spark's time includes its job (partitioning, Python
workers, model loads) but not the SparkSession start, which is reported apart. Also reports the
sentiment accuracy / macro-F1 of each run (both engines must agree).

Run: python -m bench.classify [--rows 100] [--rounds 1] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.report import SHARED_DATA, markdown_table, median, write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    source = SHARED_DATA / "airline_feedback" / "dev.csv"
    if not source.exists():
        raise SystemExit(f"{source} is missing: this benchmark needs ../shared/data")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.update({"FLYWHEEL_HOME": str(work / "home"), "FLYWHEEL_LM__CACHE": "false",
                           "MLFLOW_TRACE_SAMPLING_RATIO": "0"})
        rows = work / "rows.csv"
        pd.read_csv(source, dtype=str, keep_default_na=False).head(args.rows).to_csv(rows, index=False)
        body = run(work, rows, args)
    print(body)
    if not args.no_write:
        write_section("classify", "Batch classification: local vs Spark", body,
                      f"python -m bench.classify --rows {args.rows} --rounds {args.rounds}")


def run(work: Path, rows: Path, args: argparse.Namespace) -> str:
    from flywheel.batch.io import read_table
    from flywheel.batch.local import classify_frame, registered_predictor
    from flywheel.batch.report import score
    from flywheel.batch.spark import classify_spark, spark_session
    from flywheel.config import load_settings
    from flywheel.programs.classify import FeedbackClassifier
    from flywheel.registry.programs import ProgramRegistry

    settings = load_settings()
    registry = ProgramRegistry(settings)
    version = registry.register("classifier", FeedbackClassifier(), description="zero-shot (bench)")
    uri = registry.model_uri("classifier", version.version)
    frame = read_table(rows, "text")
    predict, program_id = registered_predictor(settings, str(version.version))
    predict("warm-up: the model is loaded and has answered once")
    started = time.perf_counter()
    spark = spark_session(args.master)
    spark_start = time.perf_counter() - started
    local_rates: list[float] = []
    spark_rates: list[float] = []
    outputs: dict[str, pd.DataFrame] = {}
    try:
        for i in range(args.rounds):
            local = classify_frame(frame, "text", work / f"local{i}.parquet", predict, program_id=program_id,
                                   threads=settings.classify.threads)
            local_rates.append(local.rows / local.seconds)
            outputs["local"] = pd.read_parquet(work / f"local{i}.parquet")
            remote = classify_spark(spark, rows, "text", work / f"spark{i}.parquet", uri)
            spark_rates.append(remote.rows / remote.seconds)
            outputs["spark"] = pd.read_parquet(work / f"spark{i}.parquet")
            print(f"round {i + 1}: local {local_rates[-1]:.3f} rows/s, spark {spark_rates[-1]:.3f} rows/s")
    finally:
        spark.stop()
    gold = frame["sentiment"].tolist()
    scores = {name: score(gold, out["predicted_sentiment"].tolist()) for name, out in outputs.items()}
    agree = (outputs["local"]["predicted_sentiment"].fillna("").tolist()
             == outputs["spark"]["predicted_sentiment"].fillna("").tolist())
    table = markdown_table(
        ["engine", "rows", "rows/s (median)", "vs local", "accuracy", "macro-F1"],
        [[f"local (threads={settings.classify.threads})", len(frame), f"{median(local_rates):.3f}", "1.00",
          f"{scores['local'].accuracy:.3f}", f"{scores['local'].macro_f1:.3f}"],
         [f"Spark {args.master}", len(frame), f"{median(spark_rates):.3f}",
          f"{median(spark_rates) / median(local_rates):.2f}", f"{scores['spark'].accuracy:.3f}",
          f"{scores['spark'].macro_f1:.3f}"]])
    return (
        f"Zero-shot classifier (registered MLflow pyfunc model), embedded SmolLM2-135M, temperature 0, DSPy cache "
        f"off, per-row MLflow traces off; the first {len(frame)} rows of airline_feedback dev.csv; "
        f"{args.rounds} round(s), engines alternating.\n\n{table}\n\n"
        f"SparkSession start (not counted above): {spark_start:.1f} s. Both engines gave the same sentiments: "
        f"{'yes' if agree else 'NO'}. Spark local[2] runs two Python workers, each with its own copy of the "
        "model and half the cores (FLYWHEEL_LM__N_THREADS is split per worker), so two rows decode at once; the "
        "local engine's threads share one embedded context (lm.pool_size = 1) and decode one row at a time "
        "(lm.pool_size = 2 with lm.n_threads = 1 should do the same locally; not measured here). "
        "The machine was shared with other jobs: compare the two rows of one run, not runs. "
        "On a cluster each executor brings its own cores "
        "(or calls a remote LM endpoint)."
    )


if __name__ == "__main__":
    main()
