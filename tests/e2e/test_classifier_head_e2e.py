"""The distilled head with the real embedder: trained on a few hundred shared train rows, it beats the
majority class clearly on dev, and the registered MLflow model classifies exactly as the program does."""

from __future__ import annotations

from collections import Counter

import pytest

from flywheel.evaluate.datasets import dataset_from_rows, read_rows
from flywheel.evaluate.metrics import score_labels
from flywheel.optimize.classifier_search import compile_classifier
from flywheel.programs.classify import FeedbackClassifier
from tests.conftest import shared_data


@pytest.fixture(autouse=True)
def no_per_row_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACE_SAMPLING_RATIO", "0")


def test_a_head_on_300_labels_beats_the_majority_class_and_serves_as_registered() -> None:
    from flywheel.batch.local import registered_predictor
    from flywheel.config import load_settings
    from flywheel.registry.programs import ProgramRegistry

    train = dataset_from_rows(read_rows(shared_data("airline_feedback", "train.csv"))[:300], "classifier", name="train")
    dev = dataset_from_rows(read_rows(shared_data("airline_feedback", "dev.csv"))[:300], "classifier", name="dev")
    compiled = compile_classifier(FeedbackClassifier(), train.examples, optimizer="distill", objective="macro_f1")
    program = compiled.program
    assert compiled.lm_calls == 0 and program.shape == "head"
    texts = [e.text for e in dev.examples]
    predicted = program.classify_many(texts)
    gold = [e.sentiment for e in dev.examples]
    majority = Counter(gold).most_common(1)[0][1] / len(gold)
    scores = score_labels(gold, [p["sentiment"] for p in predicted])
    assert scores.accuracy >= majority + 0.07, (scores.accuracy, majority)
    assert scores.macro_f1 >= 0.5  # the majority class alone scores about 0.26

    settings = load_settings()
    version = ProgramRegistry(settings).register(
        "classifier", program, params=compiled.params, description="distilled head (e2e)"
    )
    predict, _ = registered_predictor(settings, str(version.version))
    assert hasattr(predict, "batch")  # a registered head classifies whole chunks at once
    served = predict.batch(texts[:40])
    assert [s["sentiment"] for s in served] == [p["sentiment"] for p in predicted[:40]]
    assert [s["reason"] for s in served] == [p["reason"] for p in predicted[:40]]
    assert predict(texts[0])["sentiment"] == predicted[0]["sentiment"]
