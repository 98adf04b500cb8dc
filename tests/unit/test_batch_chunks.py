"""Batch runs with a predictor that classifies many texts at once (a distilled head): chunks, checkpoints, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flywheel.batch.local import classify_frame

TEXTS = [f"flight {i} late" if i % 2 else f"love flight {i}" for i in range(30)] + [""]


class ChunkPredictor:
    def __init__(self, stop_on_call: int | None = None) -> None:
        self.chunks: list[list[str]] = []
        self.stop_on_call = stop_on_call

    def __call__(self, text: str) -> dict[str, Any]:
        raise AssertionError("a batch predictor is called per chunk, not per row")

    def batch(self, texts: list[str]) -> list[dict[str, Any]]:
        if self.stop_on_call is not None and len(self.chunks) + 1 >= self.stop_on_call:
            raise KeyboardInterrupt
        self.chunks.append(texts)
        return [
            {
                "sentiment": "negative" if "late" in t else "positive",
                "reason": None,
                "justification": "head",
                "error": None if t else "The feedback text is empty.",
            }
            for t in texts
        ]


def run(out: Path, predict: Any) -> Any:
    frame = pd.DataFrame({"text": TEXTS})
    return classify_frame(frame, "text", out, predict, program_id="head", checkpoint_rows=10)


def test_chunks_keep_input_order_and_empty_texts_fail_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flywheel.batch.local.BATCH_ROWS", 10)
    predict = ChunkPredictor()
    summary = run(tmp_path / "out.parquet", predict)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert [len(c) for c in predict.chunks] == [10, 10, 10, 1]
    assert out["text"].tolist() == TEXTS
    assert out["predicted_sentiment"].tolist()[:4] == ["positive", "negative", "positive", "negative"]
    assert summary.failed == 1 and out["error"].tolist()[-1] == "empty text"


def test_an_interrupted_chunked_run_resumes_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flywheel.batch.local.BATCH_ROWS", 10)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "out.parquet", ChunkPredictor(stop_on_call=3))  # two chunks committed
    again = ChunkPredictor()
    summary = run(tmp_path / "out.parquet", again)
    assert summary.resumed == 20 and [len(c) for c in again.chunks] == [10, 1]
    assert pd.read_parquet(tmp_path / "out.parquet")["text"].tolist() == TEXTS


def test_a_report_on_the_reason_field_gets_its_own_files(tmp_path: Path) -> None:
    from flywheel.batch.report import write_report

    pd.DataFrame(
        {
            "text": ["a", "b", "c"],
            "reason": ["Late Flight", "", "Lost Luggage"],
            "predicted_reason": ["Late Flight", None, None],
        }
    ).to_parquet(tmp_path / "out.parquet")
    files = write_report(tmp_path / "out.parquet", "reason", predicted_column="predicted_reason", field="reason")
    assert files.markdown.name == "out.reason.report.md" and files.png.exists()
    assert files.scores.rows == 2 and files.scores.accuracy == 0.5  # the row without a gold reason is left out
