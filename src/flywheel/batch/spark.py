"""Scale-out: a registered classifier (an MLflow pyfunc model) over a Spark DataFrame.

The same registered model that ``flywheel serve`` and the local batch path use is applied with
``mlflow.pyfunc.spark_udf``: Spark splits the input into partitions, each executor's Python worker
loads the model once and classifies its rows, and the result is written as a Parquet folder (one
part file per partition, rows in input order). There is no Flywheel-specific distribution code.

Pointing at a real cluster (``--spark-master spark://host:7077``, ``yarn``, ``k8s://…``):

- every executor needs Flywheel installed (same version) in the Python that
  ``spark.pyspark.python`` names;
- executors read their LM from their own Flywheel settings: pass them as executor environment
  variables, e.g. ``--spark-conf spark.executorEnv.FLYWHEEL_LM__PROVIDER=openai`` and
  ``spark.executorEnv.FLYWHEEL_LM__API_BASE=https://…/serving-endpoints`` (keys likewise by
  variable *name*; put the secret itself in the cluster's environment, never on a command line);
- the model is downloaded from the registry on the driver and shipped to the executors by Spark;
- input and output paths must be visible to every executor (HDFS, S3, a shared mount).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from flywheel.batch.io import FORMAT_HINT, FORMATS, input_format
from flywheel.batch.local import BatchSummary
from flywheel.batch.spark_resume import run_in_chunks
from flywheel.errors import ConfigError, InvalidInputError, LMError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MODEL_OUTPUTS = ("sentiment", "reason", "justification", "trace_id", "error")
RENAMED = {"sentiment": "predicted_sentiment", "reason": "predicted_reason"}
ROW = "__flywheel_row"
MISSING = ("None", "nan")
FORWARDED_ENV = ("FLYWHEEL_", "HF_HUB_OFFLINE", "LITELLM_LOCAL_MODEL_COST_MAP", "MLFLOW_TRACE_SAMPLING_RATIO")
TaskProgress = Callable[[int, int], None]
"""Called with (finished tasks, all tasks) of the running Spark job, a few times a second."""


def is_uri(path: str) -> bool:
    """``scheme://…`` (S3, HDFS, GCS, ABFS…), as opposed to a local path."""
    return "://" in path and not path.startswith("file://")


def parse_conf(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--spark-conf``) as a dict."""
    conf = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--spark-conf {pair!r} is not KEY=VALUE.", hint="e.g. --spark-conf spark.executor.memory=4g"
            )
        conf[key.strip()] = value
    return conf


def local_slots(master: str) -> int:
    """Task slots of a local master: local → 1, local[4] → 4, local[*] → the cores (0 if not local)."""
    if not master.startswith("local"):
        return 0
    inside = master[master.find("[") + 1 : master.find("]")] if "[" in master else "1"
    count = inside.split(",")[0].strip()
    return (os.cpu_count() or 1) if count == "*" else max(1, int(count)) if count.isdigit() else 1


def spark_session(
    master: str = "local[*]", conf: dict[str, str] | None = None, app_name: str = "flywheel-classify"
) -> SparkSession:
    """A SparkSession for ``master``; local masters run their Python workers with this interpreter."""
    try:
        # Lazy (start-up time): only this path needs PySpark.
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "--engine spark needs PySpark, which is not installed.",
            hint="pip install 'pyspark==4.3.0' (and Java 17), or use --engine local.",
        ) from exc
    builder = SparkSession.builder.master(master).appName(app_name)
    settings = {
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
    }
    if master.startswith("local"):
        # Python workers run this interpreter (PySpark reads PYSPARK_PYTHON when the context starts).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings |= {
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.host": "127.0.0.1",
            "spark.ui.enabled": "false",
        }
        # Local executors see the driver's Flywheel settings (a cluster gets them from --spark-conf).
        settings |= {
            f"spark.executorEnv.{name}": value for name, value in os.environ.items() if name.startswith(FORWARDED_ENV)
        }
        if "FLYWHEEL_LM__N_THREADS" not in os.environ:
            # Each Python worker loads its own embedded model: share the cores instead of oversubscribing
            # them (llama.cpp threads spin, so N workers x all cores is far slower than cores / N each).
            cores = os.cpu_count() or 1
            threads = max(1, cores // min(local_slots(master), cores))
            settings["spark.executorEnv.FLYWHEEL_LM__N_THREADS"] = str(threads)
            # The embedder's torch threads too (a distilled head embeds every row in each worker).
            settings.setdefault("spark.executorEnv.OMP_NUM_THREADS", str(threads))
    for key, value in (settings | (conf or {})).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        return spark
    except Exception as exc:  # no Java, a bad master URL, an unreachable cluster
        raise ConfigError(
            f"Cannot start Spark with master {master!r}: {str(exc).splitlines()[0][:300]}",
            hint="Check that Java 17 is installed (java -version) and the --spark-master URL; "
            "`--spark-master local[2]` runs on this machine.",
        ) from None


def read_spark(spark: SparkSession, path: Path | str, text_column: str) -> DataFrame:
    """The input as a Spark DataFrame (CSV: header row, quoted multi-line cells, every column a string)."""
    path = str(path)
    if is_uri(path):  # s3a://bucket/…, hdfs://…: Spark resolves it; a folder is Parquet
        fmt = FORMATS.get(PurePosixPath(path.rstrip("/")).suffix.lower(), "parquet")
    else:
        if not Path(path).exists():
            raise InvalidInputError(f"The input {path} does not exist.", hint="Check the path.")
        fmt = input_format(Path(path))
    reader = spark.read
    try:
        if fmt == "csv":
            frame = reader.options(header=True, multiLine=True, escape='"', inferSchema=False).csv(path)
        elif fmt == "parquet":
            frame = reader.parquet(path)
        else:
            frame = reader.json(path)
    except Exception as exc:
        raise InvalidInputError(
            f"Spark cannot read {path} as {fmt}: {str(exc).splitlines()[0][:300]}", hint=FORMAT_HINT
        ) from None
    if text_column not in frame.columns:
        raise InvalidInputError(
            f"{path} has no column {text_column!r}.",
            hint=f"Pass --text-column with one of its columns: {', '.join(frame.columns)}.",
        )
    return frame


def _root_cause(exc: BaseException) -> str:
    """The last line of a Python worker's traceback inside a Py4J error, else the first line."""
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    python_errors = [
        line
        for line in lines
        if ("Error:" in line or "Exception:" in line) and not line.startswith(("at ", "org.apache", "py4j", "java."))
    ]
    return (python_errors[-1] if python_errors else lines[0] if lines else type(exc).__name__)[:400]


def _watch(spark: SparkSession, on_progress: TaskProgress, stop: threading.Event) -> None:
    tracker = spark.sparkContext.statusTracker()
    while not stop.wait(0.5):
        done = total = 0
        for stage_id in tracker.getActiveStageIds():
            info = tracker.getStageInfo(stage_id)
            if info is not None:
                done, total = done + info.numCompletedTasks, total + info.numTasks
        if total:
            on_progress(done, total)


def classify_spark(
    spark: SparkSession,
    input_path: Path | str,
    text_column: str,
    out: Path | str,
    model_uri: str,
    *,
    partitions: int | None = None,
    overwrite: bool = False,
    on_progress: TaskProgress | None = None,
    chunk_rows: int | None = None,
    restart: bool = False,
) -> BatchSummary:
    """Classify ``input_path`` with the pyfunc model at ``model_uri`` into the Parquet folder ``out``.

    The output has the input's columns plus ``predicted_sentiment``, ``predicted_reason``,
    ``justification`` and ``error`` (the local engine's columns), in input order. With ``chunk_rows``
    and a local ``out``, the run is resumable (:mod:`flywheel.batch.spark_resume`): ``on_progress``
    then gets (rows done, all rows) after each chunk instead of Spark task counts.
    """
    out = str(out)
    out_path = Path(out.removeprefix("file://"))
    existed = not is_uri(out) and out_path.exists()
    if existed and not overwrite:
        raise InvalidInputError(
            f"The output {out} already exists.", hint="Choose another --out, or pass --overwrite to replace it."
        )
    frame = read_spark(spark, input_path, text_column)
    udf = _model_udf(spark, model_uri)
    n = partitions or spark.sparkContext.defaultParallelism
    classified = _classifier(frame, text_column, udf, n)
    numbered = frame.withColumn(ROW, _row_numbers())
    if chunk_rows is not None and not is_uri(out):
        key = {
            "input": str(Path(str(input_path)).resolve()) if not is_uri(str(input_path)) else str(input_path),
            "model": model_uri,
            "text_column": text_column,
            "partitions": n,
        }
        try:
            done = run_in_chunks(
                numbered,
                ROW,
                classified,
                out_path,
                key,
                chunk_rows=int(chunk_rows or 0),
                restart=restart,
                overwrite=overwrite,
                on_rows=on_progress,
            )
        except InvalidInputError:
            raise
        except Exception as exc:
            raise LMError(
                f"The Spark job failed: {_root_cause(exc)}",
                hint="Finished chunks are kept: rerun the same command to resume. Rows that fail inside "
                "the model get an `error` instead; this is a job-level failure.",
            ) from None
        return _summary(spark, out, out_path, done["seconds"], resumed=done["resumed"], classified=done["classified"])
    seconds = _write_all(
        spark, classified(numbered), out, out_path, overwrite=overwrite, existed=existed, on_progress=on_progress
    )
    if on_progress is not None:
        on_progress(n, n)
    return _summary(spark, out, out_path, seconds)


def _row_numbers() -> Any:
    # Lazy (start-up time): only this path needs PySpark.
    from pyspark.sql import functions as F

    return F.monotonically_increasing_id()


def _model_udf(spark: SparkSession, model_uri: str) -> Any:
    """The registered model as a Spark UDF returning MODEL_OUTPUTS; a ConfigError that says what to check."""
    # Lazy (start-up time): only this path needs MLflow.
    import mlflow
    from pyspark.sql.types import StringType, StructField, StructType

    result_type = StructType([StructField(name, StringType(), True) for name in MODEL_OUTPUTS])
    try:
        return mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type, env_manager="local")
    except Exception as exc:
        raise ConfigError(
            f"Cannot load the model {model_uri} for Spark: {str(exc).splitlines()[0][:300]}",
            hint="Check --program-version (see `flywheel programs show classifier`); a classifier "
            "must be registered first (e.g. by `flywheel optimize`).",
        ) from None


def _classifier(frame: DataFrame, text_column: str, udf: Any, partitions: int) -> Callable[[DataFrame], DataFrame]:
    """Numbered rows → the input's columns plus the predictions, in row order over ``partitions``."""
    # Lazy (start-up time): only this path needs PySpark.
    from pyspark.sql import functions as F

    kept = [F.col(f"`{c}`") for c in frame.columns if c not in (*RENAMED.values(), "justification", "error")]
    prediction = udf(F.struct(F.col(f"`{text_column}`").cast("string").alias("text")))

    # spark_udf casts a string column that mixes values and None with astype(str): None arrives as
    # "None" (NaN as "nan"). Labels cannot be those words (see LabelSet), so they mean null here.
    def field(name: str) -> Any:
        value = F.col(f"__prediction.{name}")
        return F.when(value.isin(*MISSING), F.lit(None)).otherwise(value).alias(RENAMED.get(name, name))

    def classified(rows: DataFrame) -> DataFrame:
        ordered = rows.repartitionByRange(partitions, ROW).sortWithinPartitions(ROW)
        return ordered.withColumn("__prediction", prediction).select(
            *kept, *[field(name) for name in ("sentiment", "reason", "justification", "error")]
        )

    return classified


def _write_all(
    spark: SparkSession,
    result: DataFrame,
    out: str,
    out_path: Path,
    *,
    overwrite: bool,
    existed: bool,
    on_progress: TaskProgress | None,
) -> float:
    """Write the whole result in one Spark job (progress from Spark's task counts); its seconds. A failed job
    leaves no half-written folder behind."""
    stop = threading.Event()
    watcher = None
    if on_progress is not None:
        watcher = threading.Thread(target=_watch, args=(spark, on_progress, stop), daemon=True)
        watcher.start()
    started = time.perf_counter()
    try:
        result.write.mode("overwrite" if overwrite else "errorifexists").parquet(out)
    except Exception as exc:
        if not existed and not is_uri(out) and out_path.is_dir():
            shutil.rmtree(out_path, ignore_errors=True)
        raise LMError(
            f"The Spark job failed: {_root_cause(exc)}",
            hint="Rows that fail inside the model get an `error` instead; this is a job-level failure. "
            "Check that every executor has Flywheel installed and its settings (see the README, "
            "'Spark on a cluster').",
        ) from None
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=2)
    return time.perf_counter() - started


def _summary(
    spark: SparkSession, out: str, out_path: Path, seconds: float, *, resumed: int = 0, classified: int | None = None
) -> BatchSummary:
    # Lazy (start-up time): only this path needs PySpark.
    from pyspark.sql import functions as F

    written = spark.read.parquet(out)
    stats: dict[str, Any] = {
        row["predicted_sentiment"]: row["count"] for row in written.groupBy("predicted_sentiment").count().collect()
    }
    failed = written.filter(F.col("error").isNotNull()).count()
    rows = int(sum(stats.values()))
    return BatchSummary(
        output=out if is_uri(out) else out_path,
        rows=rows,
        resumed=resumed,
        classified=rows - resumed if classified is None else classified,
        failed=int(failed),
        counts={str(k): int(v) for k, v in stats.items() if k is not None},
        seconds=seconds,
    )
