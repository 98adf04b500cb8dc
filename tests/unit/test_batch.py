"""Batch classification: input formats, parallel calls, checkpoints and resume, per-row errors, reports."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dspy
import pandas as pd
import pytest
from dspy.utils import DummyLM
from typer.testing import CliRunner

from flywheel.batch.io import read_table, write_parquet
from flywheel.batch.local import MANIFEST, checkpoint_dir, classify_frame, program_predictor
from flywheel.batch.report import FAILED, score, write_report
from flywheel.errors import InvalidInputError, LMError
from flywheel.programs.classify import FeedbackClassifier
from tests.unit.fake_classifier import FakeClassifier, label

TEXTS = [
    f"flight {i} was late" if i % 3 == 0 else f"I love flight {i}" if i % 3 == 1 else f"is flight {i} on time?"
    for i in range(23)
]


def frame(texts: list[str] = TEXTS) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"t{i}" for i in range(len(texts))], "text": texts})


class Counting:
    """The fake classifier as a predictor that counts its calls and may stop the run after ``stop_after``."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.calls: list[str] = []
        self.stop_after = stop_after
        self.lock = threading.Lock()
        self.predict = program_predictor(FakeClassifier())

    def __call__(self, text: str) -> Mapping[str, Any]:
        with self.lock:
            if self.stop_after is not None and len(self.calls) >= self.stop_after:
                raise KeyboardInterrupt  # as if the user pressed Ctrl-C
            self.calls.append(text)
        return self.predict(text)


def run(out: Path, predict: Any, data: pd.DataFrame | None = None, **kwargs: Any) -> Any:
    options = {"program_id": "fake", "threads": 2, "checkpoint_rows": 5} | kwargs
    return classify_frame(frame() if data is None else data, "text", out, predict, **options)


def expected(texts: list[str]) -> list[str]:
    return [label(t)[0] for t in texts]


def test_every_row_once_in_input_order_with_the_input_columns(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    summary = run(out, Counting())
    result = pd.read_parquet(out)
    assert list(result.columns) == ["id", "text", "predicted_sentiment", "predicted_reason", "justification", "error"]
    assert result["id"].tolist() == [f"t{i}" for i in range(len(TEXTS))]
    assert result["predicted_sentiment"].tolist() == expected(TEXTS)
    assert result.loc[0, "predicted_reason"] == "Late Flight" and pd.isna(result.loc[1, "predicted_reason"])
    assert (summary.rows, summary.classified, summary.resumed, summary.failed) == (23, 23, 0, 0)
    assert summary.counts == {"negative": 8, "positive": 8, "neutral": 7}
    assert not checkpoint_dir(out).exists()


def test_per_row_failures_are_recorded_and_not_fatal(tmp_path: Path) -> None:
    texts = ["late again", "this will <<fail>>", "", "thank you", "   "]
    out = tmp_path / "out.parquet"
    summary = run(out, Counting(), frame(texts))
    result = pd.read_parquet(out)
    assert result["predicted_sentiment"].fillna("-").tolist() == ["negative", "-", "-", "positive", "-"]
    assert "cannot classify" in result.loc[1, "error"]
    assert result.loc[2, "error"] == result.loc[4, "error"] == "empty text"
    assert result["error"].isna().tolist() == [True, False, False, True, False]
    assert summary.failed == 3


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    first = Counting(stop_after=12)
    with pytest.raises(KeyboardInterrupt):
        run(out, first)
    manifest = json.loads((checkpoint_dir(out) / MANIFEST).read_text())
    saved = sum(part["rows"] for part in manifest["parts"])
    assert 0 < saved <= 12 and not out.exists()
    second = Counting()
    summary = run(out, second)
    assert summary.resumed == saved and summary.classified == len(TEXTS) - saved
    assert len(second.calls) == len(TEXTS) - saved  # finished rows are not classified again
    result = pd.read_parquet(out)
    assert result["id"].tolist() == [f"t{i}" for i in range(len(TEXTS))]
    assert result["predicted_sentiment"].tolist() == expected(TEXTS)
    assert not checkpoint_dir(out).exists()


def test_a_part_file_the_manifest_does_not_name_is_ignored(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        run(out, Counting(stop_after=7))
    # A process killed between writing a part and naming it in the manifest leaves a stray part.
    stray = pd.DataFrame(
        {
            "row": [0],
            "predicted_sentiment": ["positive"],
            "predicted_reason": [None],
            "justification": ["stray"],
            "error": [None],
        }
    )
    write_parquet(stray, checkpoint_dir(out) / "part-00099.parquet")
    run(out, Counting())
    result = pd.read_parquet(out)
    assert result.loc[0, "predicted_sentiment"] == "negative" and "stray" not in result["justification"].tolist()


def test_a_checkpoint_of_another_input_or_program_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        run(out, Counting(stop_after=8))
    with pytest.raises(InvalidInputError, match="belongs to another run") as info:
        run(out, Counting(), frame(TEXTS[::-1]))
    assert "--restart" in (info.value.hint or "")
    with pytest.raises(InvalidInputError, match="belongs to another run"):
        run(out, Counting(), program_id="another program")
    again = Counting()
    summary = run(out, again, restart=True)
    assert summary.resumed == 0 and len(again.calls) == len(TEXTS)


def test_an_existing_output_is_not_replaced_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    out.write_bytes(b"precious")
    with pytest.raises(InvalidInputError, match="already exists"):
        run(out, Counting())
    assert out.read_bytes() == b"precious"
    run(out, Counting(), overwrite=True)
    assert len(pd.read_parquet(out)) == len(TEXTS)


def test_a_systemic_failure_stops_the_run_and_failed_rows_are_retried_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    healthy = program_predictor(FakeClassifier())
    outage = threading.Event()

    def flaky(text: str) -> Mapping[str, Any]:
        if text.startswith("flight 9") or outage.is_set():
            outage.set()
            raise ConnectionError("LM unreachable")
        return healthy(text)

    with pytest.raises(LMError, match="in a row failed") as info:
        run(out, flaky, threads=1, abort_after=4)
    assert "rerun the same command" in (info.value.hint or "")
    summary = run(out, Counting())
    assert summary.failed == 0 and 0 < summary.resumed < len(TEXTS)
    assert pd.read_parquet(out)["predicted_sentiment"].tolist() == expected(TEXTS)


def test_the_real_classifier_module_runs_in_threads_under_dspy_context(tmp_path: Path) -> None:
    answer = {"sentiment": "negative", "reason": "Late Flight", "justification": "delayed"}
    lm = DummyLM([answer] * 10, adapter=dspy.JSONAdapter())
    out = tmp_path / "out.parquet"
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        summary = run(out, program_predictor(FeedbackClassifier()), frame(TEXTS[:6]))
    assert summary.failed == 0
    assert pd.read_parquet(out)["predicted_reason"].tolist() == ["Late Flight"] * 6


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_input_formats(tmp_path: Path, suffix: str) -> None:
    data = pd.DataFrame(
        {"tweet_id": ["5.7e+17", "2"], "text": ['a "quoted", multi\nline text', "plain"], "reason": ["", "Late Flight"]}
    )
    path = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        data.to_csv(path, index=False)
    elif suffix == ".parquet":
        data.to_parquet(path)
    else:
        data.to_json(path, orient="records", lines=True)
    read = read_table(path, "text")
    assert read["text"].tolist() == data["text"].tolist()
    assert read["tweet_id"].tolist() == ["5.7e+17", "2"]  # CSV cells stay text


def test_input_errors_say_how_to_fix_them(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id,body\n1,hello\n")
    with pytest.raises(InvalidInputError, match="no column 'text'") as info:
        read_table(tmp_path / "in.csv", "text")
    assert "--text-column" in (info.value.hint or "") and "body" in (info.value.hint or "")
    (tmp_path / "in.xlsx").write_text("x")
    with pytest.raises(InvalidInputError, match="unsupported file type"):
        read_table(tmp_path / "in.xlsx")
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InvalidInputError, match="empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("text\n")
    with pytest.raises(InvalidInputError, match="no rows"):
        read_table(tmp_path / "header.csv")


def test_scores_per_class_precision_recall_f1() -> None:
    gold = ["neg", "neg", "neg", "pos", "pos", "neu", None, ""]
    pred = ["neg", "neg", "pos", "pos", None, "neg", "pos", "neg"]
    scores = score(gold, pred)
    assert scores.rows == 6 and scores.failed == 1  # unlabelled rows left out; the None is a failure
    assert scores.accuracy == pytest.approx(3 / 6)
    by = {c.label: c for c in scores.classes}
    assert (by["neg"].precision, by["neg"].recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (by["pos"].precision, by["pos"].recall, by["pos"].f1) == (0.5, 0.5, 0.5)
    assert by["neu"].f1 == 0.0 and by["neu"].support == 1
    assert scores.macro_f1 == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    assert scores.columns == ["neg", "neu", "pos", FAILED]
    assert scores.matrix == [[2, 0, 1, 0], [1, 0, 0, 0], [0, 0, 1, 1]]


def test_report_files_and_baseline_comparison(tmp_path: Path) -> None:
    data = pd.DataFrame(
        {
            "text": ["a", "b", "c", "d"],
            "sentiment": ["negative", "positive", "neutral", "negative"],
            "predicted_sentiment": ["negative", "positive", "negative", "negative"],
        }
    )
    base = data.assign(predicted_sentiment=["negative"] * 4)
    data.to_parquet(tmp_path / "out.parquet")
    base.to_parquet(tmp_path / "base.parquet")
    files = write_report(tmp_path / "out.parquet", "sentiment", baseline=tmp_path / "base.parquet", text_column="text")
    assert files.scores.accuracy == 0.75 and files.baseline is not None and files.baseline.accuracy == 0.5
    assert files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| accuracy | 0.750 | 0.500 | +0.250 |" in files.markdown.read_text()
    body = json.loads(files.json.read_text())
    assert body["scores"]["macro_f1"] == pytest.approx(files.scores.macro_f1)
    base.iloc[::-1].to_parquet(tmp_path / "shuffled.parquet")
    with pytest.raises(InvalidInputError, match="other texts"):
        write_report(tmp_path / "out.parquet", baseline=tmp_path / "shuffled.parquet", text_column="text")
    with pytest.raises(InvalidInputError, match="--label-column"):
        write_report(tmp_path / "out.parquet", "gold")


def test_report_is_logged_to_mlflow(tmp_path: Path) -> None:
    import mlflow

    from flywheel.batch.report import log_report
    from flywheel.config import load_settings

    data = pd.DataFrame(
        {"text": ["a", "b"], "sentiment": ["negative", "positive"], "predicted_sentiment": ["negative", "negative"]}
    )
    data.to_parquet(tmp_path / "out.parquet")
    files = write_report(tmp_path / "out.parquet")
    run_id = log_report(load_settings(), files, params={"program_version": "zero-shot"})
    run = mlflow.get_run(run_id)
    assert run.data.metrics["accuracy"] == 0.5 and run.data.params["program_version"] == "zero-shot"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "report")}
    assert "report/out.confusion.png" in artifacts


def test_cli_classifies_with_a_custom_program_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.cli.app import app
    from flywheel.cli.common import settings

    monkeypatch.setenv("FLYWHEEL_PROGRAMS__CUSTOM", '{"fake": "tests.unit.fake_classifier:FakeClassifier"}')
    monkeypatch.setenv("FLYWHEEL_LM__PROVIDER", "openai")  # never used by the fake; avoids loading a model
    monkeypatch.setenv("FLYWHEEL_LM__API_BASE", "http://127.0.0.1:9/v1")
    settings.cache_clear()
    data = frame(TEXTS[:9]).assign(sentiment=expected(TEXTS[:9]))
    data.loc[4, "text"] = "this will <<fail>>"
    data.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.parquet"
    try:
        result = CliRunner().invoke(
            app, ["classify", str(tmp_path / "in.csv"), "--out", str(out), "-p", "fake", "--report"]
        )
        again = CliRunner().invoke(app, ["classify", str(tmp_path / "in.csv"), "--out", str(out), "-p", "fake"])
    finally:
        settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "Classification summary" in result.output and "1 row(s) failed" in result.output
    assert "accuracy 0.889" in result.output
    assert (tmp_path / "out.confusion.png").is_file()
    assert again.exit_code != 0 and isinstance(again.exception, InvalidInputError)


def test_spark_settings_helpers() -> None:
    from flywheel.batch.spark import local_slots, parse_conf
    from flywheel.errors import ConfigError

    assert parse_conf(["spark.executor.memory=4g", "spark.executorEnv.A=b=c"]) == {
        "spark.executor.memory": "4g",
        "spark.executorEnv.A": "b=c",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_conf(["spark.executor.memory"])
    assert [local_slots(m) for m in ("local", "local[3]", "spark://host:7077")] == [1, 3, 0]
