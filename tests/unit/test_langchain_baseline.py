"""The LangChain baseline of the benchmarks sends the LM what Flywheel's served program sends: the
same answer-step messages, with the reasoning field exactly when Flywheel's default design has it
(bench.compare had compared a reasoning Flywheel prompt with a LangChain prompt without it)."""

from __future__ import annotations

import json
from pathlib import Path

import dspy
import pytest
from bench.langchain_rag import RAGAnswer, RAGReasonedAnswer, export_prompt
from langchain_core.prompts import ChatPromptTemplate

from flywheel.config import load_settings
from flywheel.programs.rag import RAGChatbot, default_config

ENDPOINT = {"provider": "openai", "api_base": "http://127.0.0.1:9/v1", "model": "stub"}


@pytest.mark.parametrize(
    ("lm", "programs", "reasons"),
    [({}, {}, False), (ENDPOINT, {}, True), (ENDPOINT, {"reasoning": "off"}, False), ({}, {"reasoning": "on"}, True)],
)
def test_the_baseline_reasons_when_flywheels_default_design_does(
    tmp_path: Path, lm: dict, programs: dict, reasons: bool
) -> None:
    settings = load_settings(lm=lm, programs=programs)
    reasoning = default_config(settings).reasoning
    assert reasoning == settings.reasons_by_default() == reasons  # the LangChain app reads reasons_by_default()

    served = RAGChatbot(config=default_config(settings)).answer_predictor(yes_no=False).signature
    values = {"passages": "[1] (manual.txt) Torque the bolts to 97 Nm.", "question": "What torque?"}
    expected = dspy.JSONAdapter().format(served, demos=[], inputs={**values, "history": dspy.History(messages=[])})
    path = export_prompt(reasoning, path=tmp_path / "prompt.json")
    template = json.loads(path.read_text())["messages"]
    sent = ChatPromptTemplate.from_messages([(role, text) for role, text in template]).format_messages(**values)
    assert [m.content for m in sent] == [m["content"] for m in expected]
    answer_type = RAGReasonedAnswer if reasoning else RAGAnswer
    assert list(answer_type.model_fields) == list(served.output_fields)
