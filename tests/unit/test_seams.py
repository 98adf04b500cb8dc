"""The typed seams: LM failures apart from bugs, one Answer, one messages → history, autolog always off."""

from __future__ import annotations

from typing import Any

import dspy
import pytest
from dspy.utils.exceptions import LMAuthError, LMTimeoutError
from fastapi.testclient import TestClient

from flywheel.access import Principal
from flywheel.answers import Answer, question_and_history
from flywheel.config import load_settings
from flywheel.errors import InvalidInputError, LMError, NotFoundError
from flywheel.evaluate.datasets import dataset_from_rows
from flywheel.evaluate.workflow import EvaluationRequest, evaluate_versions
from flywheel.lm import is_lm_exception
from tests.unit.serve_helpers import make_env


class RejectedKeyProgram(dspy.Module):
    def forward(self, question: str, principal: Principal, history: Any = None) -> dspy.Prediction:
        raise LMAuthError("invalid api key")


class BuggyProgram(dspy.Module):
    def forward(self, question: str, principal: Principal, history: Any = None) -> dspy.Prediction:
        raise KeyError("a bug in the program, not an LM failure")


def test_only_dspy_and_litellm_exceptions_count_as_lm_failures() -> None:
    assert is_lm_exception(LMTimeoutError("slow"))
    assert is_lm_exception(LMError("the LM failed"))
    assert not is_lm_exception(KeyError("x"))
    assert not is_lm_exception(ValueError("x"))


def test_a_bug_in_a_program_is_a_500_not_an_lm_error() -> None:
    settings = load_settings(
        programs={
            "custom": {
                "buggy": "tests.unit.test_seams:BuggyProgram",
                "rejected": "tests.unit.test_seams:RejectedKeyProgram",
            }
        },
        serve={"reload_interval_s": 0, "request_timeout_s": 5.0},
    )
    app, _settings, _kb, keys = make_env(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        auth = {"Authorization": f"Bearer {keys['alice']}"}
        buggy = client.post(
            "/v1/chat/completions",
            headers=auth,
            json={"model": "buggy", "messages": [{"role": "user", "content": "Oil?"}]},
        )
        assert buggy.status_code == 500
        assert buggy.json()["error"]["error"] == "InternalError"
        rejected = client.post(
            "/v1/chat/completions",
            headers=auth,  # a DSPy LM exception: an LM error
            json={"model": "rejected", "messages": [{"role": "user", "content": "Oil?"}]},
        )
        assert rejected.status_code == 502 and "rejected the API key" in rejected.json()["error"]["message"]


def test_one_answer_from_a_prediction() -> None:
    prediction = dspy.Prediction(
        answer="5 to 30 minutes",
        citations=[{"chunk_id": "d:1:0"}, "junk"],
        passages=[{"chunk_id": "d:1:0", "text": "…"}],
        steps=[{"tool": "search_documents"}],
    )
    answer = Answer.from_prediction(prediction, trace_id="tr-1", program="rag", program_version=3)
    assert answer.citations == [{"chunk_id": "d:1:0"}]
    assert answer.trace_outputs() == {
        "answer": "5 to 30 minutes",
        "retrieved_chunk_ids": ["d:1:0"],
        "cited": ["d:1:0"],
        "steps": ["search_documents"],
    }
    assert answer.as_dict("answer", "program_version") == {"answer": "5 to 30 minutes", "program_version": 3}


def test_messages_become_the_last_question_and_the_turns_before_it() -> None:
    question, turns = question_and_history(
        [("system", "be brief"), ("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("user", "Q3")]
    )
    assert question == "Q3"
    assert turns == [{"question": "Q1", "answer": "A1"}, {"question": "Q2", "answer": ""}]
    for bad in ([("assistant", "A")], [("user", "Q"), ("assistant", "A")], [("user", "  ")], []):
        with pytest.raises(InvalidInputError, match="last message"):
            question_and_history(bad)


def test_tracing_is_left_when_an_evaluation_fails() -> None:
    """The CLI switched DSPy autologging off only after a successful run: a failed one left it on."""
    events: list[str] = []

    class Tracing:
        def __enter__(self) -> None:
            events.append("on")

        def __exit__(self, *exc_info: Any) -> None:
            events.append("off")

    class NoVersion:
        def __init__(self) -> None:
            self.loaded_versions: dict[str, int | None] = {}

        def program(self, name: str) -> Any:
            return None

    data = dataset_from_rows([{"text": "late flight", "sentiment": "negative"}], "classifier", name="d")
    request = EvaluationRequest("classifier", data, {}, threads=1, label="classifier", baseline="v9")
    with pytest.raises(NotFoundError):
        evaluate_versions(NoVersion(), request, baseline_assistant=NoVersion(), tracing=Tracing)
    assert events == ["on", "off"]
