"""Quoted answers: the passage sentence most similar to the question, cited, without an LM call."""

from __future__ import annotations

import dspy
from dspy.utils import DummyLM

from flywheel.access import Principal
from flywheel.config import load_settings
from flywheel.programs.quote import best_sentence, is_grounded_value, sentences
from flywheel.programs.rag import Passage, RAGChatbot, RAGConfig, default_config

ALICE = Principal("alice", frozenset({"mechanics"}))
TORQUE = Passage(
    "d1:1:0",
    "d1",
    "prop.md §3 Torque",
    "Propeller hub bolts > 3. Torque values for the hub bolts\nHub retention bolts are installed dry.\n"
    "| Standard bolt | 92 Nm |\n| New-standard bolt | 97 Nm |",
    section="Propeller hub bolts > 3. Torque values for the hub bolts",
)
BIRTH = Passage(
    "d2:1:0",
    "d2",
    "wilson.txt",
    "Wilson was a scholar. Wilson was born in Staunton, Virginia, in 1856. He studied law.",
)


def test_sentences_split_on_ends_and_lines_and_drop_fragments() -> None:
    assert sentences("Wilson was a scholar. He was born in 1856.\n| Standard bolt | 92 Nm |\nOK.") == [
        "Wilson was a scholar.",
        "He was born in 1856.",
        "| Standard bolt | 92 Nm |",
    ]


def test_japanese_sentences_split_on_their_own_full_stops() -> None:
    text = "受託手荷物は1個目が35ドルです。2個目は45ドルです！はい。"
    assert sentences(text) == ["受託手荷物は1個目が35ドルです。", "2個目は45ドルです！"]


def test_best_sentence_by_content_words_without_an_embedder() -> None:
    sentence, passage = best_sentence("Where was Wilson born?", [TORQUE, BIRTH], lambda p: p.text)
    assert sentence == "Wilson was born in Staunton, Virginia, in 1856." and passage is BIRTH
    assert best_sentence("anything", [Passage("x", "x", "x", "Too short.")], lambda p: p.text) is None


def test_the_heading_path_line_is_not_quoted() -> None:
    assert TORQUE.body().startswith("Hub retention bolts")
    sentence, _ = best_sentence("What are the torque values for the hub bolts?", [TORQUE], Passage.body)
    assert "Nm" in sentence or "installed" in sentence
    assert BIRTH.body() == BIRTH.text  # no section: nothing to drop


def test_best_sentence_uses_the_embedders_cosine() -> None:
    # A toy embedder: the question and the "92 Nm" row point the same way.
    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] if ("torque" in t or "92" in t) else [0.0, 1.0] for t in texts]

    sentence, _ = best_sentence("What torque for a standard bolt?", [TORQUE], lambda p: p.text, embed)
    assert sentence == "| Standard bolt | 92 Nm |"


def test_a_restated_question_is_replaced_by_the_quoted_sentence_with_its_citation() -> None:
    lm = DummyLM([{"answer": "Wilson was born", "citations": [1]}], adapter=dspy.JSONAdapter())
    program = RAGChatbot(lambda q, p, k: [TORQUE, BIRTH], config=RAGConfig(answer_style="quote"))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = program(question="Where was Wilson born?", principal=ALICE)
    assert result.answer == "Wilson was born in Staunton, Virginia, in 1856."
    assert [c["chunk_id"] for c in result.citations] == ["d2:1:0"] and result.found
    assert result.generated == "Wilson was born"


def test_a_generated_value_that_a_passage_holds_is_kept() -> None:
    lm = DummyLM([{"answer": "97 Nm", "citations": [1]}], adapter=dspy.JSONAdapter())
    program = RAGChatbot(lambda q, p, k: [TORQUE, BIRTH], config=RAGConfig(answer_style="quote"))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = program(question="What torque does a new-standard bolt need?", principal=ALICE)
    assert result.answer == "97 Nm" and [c["chunk_id"] for c in result.citations] == ["d1:1:0"]


def test_grounded_values() -> None:
    passages = [BIRTH.text, TORQUE.text]
    assert is_grounded_value("in 1856", "When was Wilson born?", passages)
    assert not is_grounded_value("1856", "What happened in 1856?", passages)  # the question's own number
    assert not is_grounded_value("1.1111", "What is the first number?", passages)  # not in any passage
    assert not is_grounded_value("Staunton, Virginia", "Where was Wilson born?", passages)  # no number


def test_a_section_number_is_not_a_value() -> None:
    """The embedded model answered "1.1" (the label of the passage's first item) for a tank's capacity."""
    card = "1. GENERAL\n1.1 This task card covers the oil tank.\n2.3 The tank holds 4.5 US qt of usable oil."
    question = "How much usable oil does the tank hold?"
    assert not is_grounded_value("1.1", question, [card])
    assert not is_grounded_value("2.3.", question, [card])
    assert is_grounded_value("4.5", question, [card])  # stated in the sentence, not a label
    assert is_grounded_value("4.5 US qt", question, [card])
    assert is_grounded_value("1856", "When was Wilson born?", [BIRTH.text])
    assert is_grounded_value("12", "How many bolts?", ["Install 12\nbolts."])  # ends a line, labels nothing


def test_the_embedded_model_quotes_and_endpoints_generate_by_default(tmp_path) -> None:
    embedded = load_settings(home=tmp_path)
    endpoint = load_settings(home=tmp_path, lm={"provider": "openai", "api_base": "http://127.0.0.1:1/v1"})
    assert default_config(embedded).answer_style == "quote"
    assert default_config(endpoint).answer_style == "generate"
    forced = load_settings(home=tmp_path, programs={"answer_style": "generate"})
    assert default_config(forced).answer_style == "generate"
