"""Local batch classification: parallel calls, checkpoints, resume, per-row errors, a summary.

A run writes its progress to ``OUT.parquet.partial/``: Parquet part files (each holding the row
indices it classified) and ``manifest.json``, which lists the committed parts and identifies the
input and the program. Parts are written to a temporary name and renamed before the manifest
(itself replaced atomically) names them, so a process killed at any instant leaves a consistent
checkpoint; a part the manifest does not name is ignored. Rerunning the same command resumes:
rows already classified are skipped, rows that failed are tried again. The final output holds
each input row exactly once, in input order, and replaces the checkpoint.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.batch import PREDICTION_COLUMNS
from flywheel.batch.io import write_parquet
from flywheel.errors import ConfigError, FlywheelError, InvalidInputError, LMError
from flywheel.lm import configure_dspy
from flywheel.registry.programs import ProgramRegistry

if TYPE_CHECKING:
    import pandas as pd

    from flywheel.config import Settings

Predictor = Callable[[str], Mapping[str, Any]]
"""One text → ``{"sentiment", "reason", "justification"}``; raising marks that row as failed."""
ProgressCallback = Callable[[int, bool], None]
"""Called once per finished row with (rows finished so far this run, whether this row failed)."""

MANIFEST = "manifest.json"
MAX_ERROR_CHARS = 500
DEFAULT_ABORT_AFTER = 50
BATCH_ROWS = 512  # rows per call when the predictor classifies many at once (a distilled head)


@dataclass
class BatchSummary:
    """What a batch run did."""

    output: Path | str
    rows: int
    resumed: int = 0
    classified: int = 0
    failed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.classified / self.seconds if self.seconds > 0 else 0.0


def program_predictor(program: Any) -> Predictor:
    """Wrap a classifier program (``program(text=...)`` → prediction with sentiment, reason, justification)."""

    def predict(text: str) -> dict[str, Any]:
        out = program(text=text)
        return {
            "sentiment": out.sentiment,
            "reason": getattr(out, "reason", None),
            "justification": getattr(out, "justification", ""),
        }

    return predict


def checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def input_digest(texts: pd.Series) -> str:
    """A fingerprint of the texts to classify (order included), so a checkpoint matches its input."""
    # Lazy (start-up time): only this path needs pandas.
    import pandas as pd

    hashed = pd.util.hash_pandas_object(texts.astype(str), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:32]


class Checkpoint:
    """Committed results of an unfinished run, in ``OUT.parquet.partial/``."""

    def __init__(self, out: Path, key: dict[str, Any]) -> None:
        self.dir = checkpoint_dir(out)
        self.key = key
        self.parts: list[dict[str, Any]] = []

    def load(self) -> pd.DataFrame | None:
        """Results committed by an earlier run with the same key (None without a checkpoint)."""
        # Lazy (start-up time): only this path needs pandas.
        import pandas as pd

        manifest_path = self.dir / MANIFEST
        if not manifest_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(
                f"The checkpoint {self.dir} is unreadable ({exc}).",
                hint="Rerun with --restart to discard it and start over.",
            ) from None
        if manifest.get("key") != self.key:
            raise InvalidInputError(
                f"The checkpoint {self.dir} belongs to another run (a different input, text column, program "
                "or label set).",
                hint="Rerun with the same arguments to resume it, or with --restart to discard it.",
            )
        self.parts = list(manifest.get("parts", []))
        frames = [pd.read_parquet(self.dir / part["file"]) for part in self.parts]
        return pd.concat(frames, ignore_index=True) if frames else None

    def reset(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def commit(self, results: list[dict[str, Any]]) -> None:
        """Write one part file, then name it in the manifest (both steps atomic)."""
        # Lazy (start-up time): only this path needs pandas.
        import pandas as pd

        if not results:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        number = max((int(p["file"][5:10]) for p in self.parts), default=-1) + 1
        name = f"part-{number:05d}.parquet"
        write_parquet(pd.DataFrame(results, columns=["row", *PREDICTION_COLUMNS]), self.dir / name)
        self.parts.append({"file": name, "rows": len(results)})
        manifest = {"version": 1, "key": self.key, "parts": self.parts}
        tmp = self.dir / f".{MANIFEST}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.dir / MANIFEST)


def _result(row: int, prediction: Mapping[str, Any] | None, error: str | None) -> dict[str, Any]:
    prediction = prediction or {}
    reason = prediction.get("reason")
    return {
        "row": row,
        "predicted_sentiment": None if error else str(prediction.get("sentiment")),
        "predicted_reason": None if error or not reason else str(reason),
        "justification": None if error else str(prediction.get("justification") or ""),
        "error": error,
    }


def _describe(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, FlywheelError) else f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


def _classify_one(predict: Predictor, row: int, text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text.strip():
        return _result(row, None, "empty text")
    try:
        return _result(row, predict(text), None)
    except Exception as exc:  # recorded per row, never fatal
        return _result(row, None, _describe(exc))


def classify_frame(
    frame: pd.DataFrame,
    text_column: str,
    out: Path,
    predict: Predictor,
    *,
    program_id: str,
    threads: int = 2,
    checkpoint_rows: int = 50,
    restart: bool = False,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
    on_resume: Callable[[int], None] | None = None,
    abort_after: int | None = DEFAULT_ABORT_AFTER,
) -> BatchSummary:
    """Classify ``frame[text_column]`` into ``out`` (Parquet): the input columns plus PREDICTION_COLUMNS.

    ``program_id`` identifies the program and its labels in the checkpoint: a checkpoint left by
    another program is refused. After ``abort_after`` consecutive failures (an unreachable LM,
    say) the run stops with an error, keeping its checkpoint; failed rows are retried on resume.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise InvalidInputError(
            f"The output {out} already exists.", hint="Choose another --out, or pass --overwrite to replace it."
        )
    if text_column not in frame.columns:
        raise InvalidInputError(f"The input has no column {text_column!r}.", hint="Pass --text-column.")
    frame = frame.reset_index(drop=True)
    texts = frame[text_column]
    key = {"rows": len(frame), "text_column": text_column, "input": input_digest(texts), "program": program_id}
    checkpoint = Checkpoint(out, key)
    results = _finished_rows(checkpoint, restart=restart)
    summary = BatchSummary(output=out, rows=len(frame), resumed=len(results))
    if on_resume is not None:
        on_resume(len(results))
    pending = [row for row in range(len(frame)) if row not in results]
    started = time.perf_counter()
    batch = getattr(predict, "batch", None)
    if batch is not None:  # a distilled head: whole chunks in one call (one embedding pass each)
        _classify_chunks(
            batch,
            texts,
            pending,
            results,
            summary,
            checkpoint,
            max(checkpoint_rows, BATCH_ROWS),
            on_progress,
            abort_after,
        )
        pending = []
    _classify_rows(
        predict,
        texts,
        pending,
        results,
        summary,
        checkpoint,
        threads=max(1, threads),
        checkpoint_rows=checkpoint_rows,
        on_progress=on_progress,
        abort_after=abort_after,
    )
    summary.seconds = time.perf_counter() - started
    _write_output(frame, results, out, summary)
    checkpoint.reset()
    return summary


def _finished_rows(checkpoint: Checkpoint, *, restart: bool) -> dict[int, dict[str, Any]]:
    """The rows a checkpoint holds without an error (failed rows are classified again), by row number."""
    # Lazy (start-up time): only this path needs pandas.
    import pandas as pd

    if restart:
        checkpoint.reset()
    done = checkpoint.load()
    results: dict[int, dict[str, Any]] = {}
    if done is not None:
        for record in done.to_dict("records"):
            if record["error"] is None or pd.isna(record["error"]):
                results[int(record["row"])] = record
    return results


def _classify_rows(
    predict: Predictor,
    texts: pd.Series,
    pending: list[int],
    results: dict[int, dict[str, Any]],
    summary: BatchSummary,
    checkpoint: Checkpoint,
    *,
    threads: int,
    checkpoint_rows: int,
    on_progress: ProgressCallback | None,
    abort_after: int | None,
) -> None:
    """Classify the ``pending`` rows one by one in ``threads`` threads (at most two rows in flight per
    thread), committing to the checkpoint every ``checkpoint_rows`` rows and on any interruption."""
    buffer: list[dict[str, Any]] = []
    consecutive = 0
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="classify") as pool:
        in_flight: set[Future[dict[str, Any]]] = set()
        queue = iter(pending)
        try:
            while True:
                for row in queue:
                    context = contextvars.copy_context()  # DSPy settings (dspy.context) reach the threads
                    in_flight.add(pool.submit(context.run, _classify_one, predict, row, texts.iat[row]))
                    if len(in_flight) >= threads * 2:
                        break
                if not in_flight:
                    break
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    record = future.result()
                    failed = record["error"] is not None
                    results[record["row"]] = record
                    buffer.append(record)
                    summary.classified += 1
                    consecutive = consecutive + 1 if failed else 0
                    if on_progress is not None:
                        on_progress(summary.classified, failed)
                if len(buffer) >= checkpoint_rows:
                    checkpoint.commit(buffer)
                    buffer = []
                if abort_after and consecutive >= abort_after:
                    raise LMError(
                        f"{consecutive} rows in a row failed; the last error: {record['error']}",
                        hint="Fix the cause (is the LM reachable? see `flywheel doctor`) and rerun the same "
                        "command: finished rows are kept and failed rows are retried.",
                    )
        except BaseException:
            for future in in_flight:
                future.cancel()
            checkpoint.commit(buffer)  # keep what finished, even on Ctrl-C
            raise


def _write_output(frame: pd.DataFrame, results: dict[int, dict[str, Any]], out: Path, summary: BatchSummary) -> None:
    """The input columns plus the predictions, in input order, to ``out``; the failures and label counts
    into ``summary``."""
    # Lazy (start-up time): only this path needs pandas.
    import pandas as pd

    ordered = pd.DataFrame([results[row] for row in range(len(frame))], columns=["row", *PREDICTION_COLUMNS])
    ordered = ordered.astype({column: "str" for column in PREDICTION_COLUMNS})  # a string column, even if all null
    inputs = frame.drop(columns=[c for c in PREDICTION_COLUMNS if c in frame.columns])
    output = pd.concat([inputs, ordered.drop(columns=["row"])], axis=1)
    write_parquet(output, out)
    summary.failed = int(output["error"].notna().sum())
    summary.counts = {str(k): int(v) for k, v in output["predicted_sentiment"].value_counts().items()}


def _classify_chunks(
    batch: Callable[[list[str]], list[Mapping[str, Any]]],
    texts: pd.Series,
    pending: list[int],
    results: dict[int, dict[str, Any]],
    summary: BatchSummary,
    checkpoint: Checkpoint,
    size: int,
    on_progress: ProgressCallback | None,
    abort_after: int | None,
) -> None:
    """Classify ``pending`` rows ``size`` at a time with ``batch``, committing a checkpoint after each chunk."""
    consecutive = 0
    for start in range(0, len(pending), size):
        rows = pending[start : start + size]
        chunk = [texts.iat[row] for row in rows]
        try:
            answers = list(batch([t if isinstance(t, str) else "" for t in chunk]))
        except Exception as exc:  # the whole chunk failed: every row records why
            answers = [{"error": _describe(exc)}] * len(rows)
        records = []
        for row, text, answer in zip(rows, chunk, answers, strict=True):
            error = answer.get("error")
            if not isinstance(text, str) or not text.strip():
                error = "empty text"
            record = _result(row, None if error else answer, str(error)[:MAX_ERROR_CHARS] if error else None)
            results[row] = record
            records.append(record)
            summary.classified += 1
            consecutive = consecutive + 1 if error else 0
            if on_progress is not None:
                on_progress(summary.classified, error is not None)
        checkpoint.commit(records)
        if abort_after and consecutive >= abort_after:
            raise LMError(
                f"{consecutive} rows in a row failed; the last error: {records[-1]['error']}",
                hint="Fix the cause and rerun the same command: finished rows are kept and failed rows are retried.",
            )


class RowFailed(Exception):
    """A registered model returned an error for a row."""


def registered_predictor(settings: Settings, ref: str) -> tuple[Predictor, str]:
    """The registered classifier ``ref`` (a version number or an alias) as a predictor, and its id.

    It is the same MLflow pyfunc model the Spark engine and the REST service run.
    """
    # Lazy (start-up time): only this path needs MLflow.
    import mlflow
    import pandas as pd

    registry = ProgramRegistry(settings)
    version = registry.require(
        "classifier",
        ref,
        hint="Omit --program-version to run the zero-shot classifier, or "
        "register one (e.g. `flywheel optimize classifier …`); `flywheel programs show "
        "classifier` lists them.",
    )
    uri = registry.model_uri("classifier", version.version)
    model = mlflow.pyfunc.load_model(uri)

    def predict(text: str) -> dict[str, Any]:
        row = model.predict(pd.DataFrame({"text": [text]})).iloc[0]
        error = row.get("error")
        if isinstance(error, str) and error:
            raise RowFailed(error)
        return {"sentiment": row["sentiment"], "reason": row.get("reason"), "justification": row.get("justification")}

    def predict_many(texts: list[str]) -> list[dict[str, Any]]:
        out = model.predict(pd.DataFrame({"text": texts}))
        return [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in out.to_dict(orient="records")
        ]

    if has_head(model):
        predict.batch = predict_many  # type: ignore[attr-defined]
    return predict, f"{uri} (run {version.run_id})"


def has_head(model: Any) -> bool:
    """Whether a loaded classifier pyfunc model holds a distilled head (it then classifies frames in batches)."""
    try:
        python_model = model.unwrap_python_model()
        return getattr(python_model.assistant.program("classifier"), "head", None) is not None
    except Exception:
        return False


def program_predictor_for(
    settings: Settings, program: str = "classifier", labels: Path | None = None, ref: str | None = None
) -> tuple[Predictor, str]:
    """The predictor a batch run uses, and an id for its checkpoint.

    ``classifier`` is the built-in program (zero-shot, with ``labels`` or the configured label set)
    or, with ``ref``, a registered version; another name is a custom program from ``programs.custom``
    whose ``forward(text)`` returns sentiment, reason and justification.
    """
    # Lazy (start-up time): only this path needs the assistant (DSPy and every program).
    from flywheel.assistant import load_program_class
    from flywheel.programs.classify import FeedbackClassifier, load_labels

    if ref is not None:
        if program != "classifier" or labels is not None:
            raise ConfigError(
                "--program-version selects a registered classifier, whose label set is part of it.",
                hint="Drop --labels / --program, or drop --program-version.",
            )
        return registered_predictor(settings, ref)
    label_set = load_labels(labels or settings.classify.labels)
    digest = hashlib.sha256(label_set.model_dump_json().encode()).hexdigest()[:12]
    configure_dspy(settings)
    if program == "classifier":
        return program_predictor(FeedbackClassifier(label_set)), f"classifier zero-shot, labels {digest}"
    spec = settings.programs.custom.get(program)
    if spec is None:
        raise ConfigError(
            f"Unknown classifier program {program!r}.",
            hint="Use `classifier`, or declare yours in flywheel.toml: programs.custom = {mine = 'pkg.module:Class'}.",
        )
    cls = load_program_class(spec)
    takes_labels = "labels" in inspect.signature(cls.__init__).parameters
    instance = cls(labels=label_set) if takes_labels else cls()
    return program_predictor(instance), f"{program}={spec}, labels {digest}"
