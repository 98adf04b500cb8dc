"""Flywheel's judges as MLflow GenAI scorers: called directly, and through ``mlflow.genai.evaluate``,
always on the judge LM they were given (a DummyLM here: nothing hosted is ever called)."""

from __future__ import annotations

import dspy
import mlflow
import pytest
from dspy.utils import DummyLM

from flywheel.config import load_settings
from flywheel.errors import ConfigError
from flywheel.registry.scorers import judge_scorers
from flywheel.registry.tracking import use_tracking


def test_scorers_run_the_judges_on_the_given_lm() -> None:
    lm = DummyLM([{"verdict": "supported"}, {"verdict": "irrelevant"}, {"verdict": "safe"}], adapter=dspy.JSONAdapter())
    faithfulness, relevance, safety = judge_scorers(load_settings(), judge_lm=lm)
    row = {
        "inputs": {"question": "When do I check the oil?"},
        "outputs": {
            "answer": "5 to 30 minutes after shutdown.",
            "passages": ["Check the engine oil level 5 to 30 minutes after engine shutdown."],
        },
    }
    assert faithfulness(**row).value == 1.0
    assert relevance(**row).value == 0.0
    judged = safety(**row)
    assert judged.value == 1.0 and judged.source.source_type == "LLM_JUDGE"
    assert len(lm.history) == 3
    missing = faithfulness(inputs="q", outputs="an answer with nothing to check against")
    assert missing.error is not None and "passages" in missing.error.error_message
    with pytest.raises(ConfigError, match="Unknown judge"):
        judge_scorers(load_settings(), judge_lm=lm, names=["politeness"])


def test_mlflow_genai_evaluate_with_flywheel_judges() -> None:
    settings = load_settings()
    use_tracking(settings)
    lm = DummyLM([{"verdict": "relevant"}, {"verdict": "partially"}], adapter=dspy.JSONAdapter())
    data = [{"inputs": {"question": f"question {i}"}, "outputs": {"answer": f"answer {i}"}} for i in range(2)]
    result = mlflow.genai.evaluate(data=data, scorers=judge_scorers(settings, judge_lm=lm, names=["relevance"]))
    assert result.metrics["relevance/mean"] == pytest.approx(0.75)
