"""Quoted spans: the clause of the quoted sentence a fitted ranker prefers, stored as JSON with the program."""

from __future__ import annotations

import json

import dspy
import numpy as np
import pytest
from dspy.utils import DummyLM

from flywheel.access import Principal
from flywheel.errors import InvalidInputError
from flywheel.optimize.answer_spans import MIN_ROWS, SpanRows, fit_span_ranker, quoted_f1, span_rows
from flywheel.programs.rag import Passage, RAGChatbot, RAGConfig
from flywheel.programs.spans import FEATURES, SpanRanker, candidate_spans, clause_runs, question_type

READER = Principal("reader", frozenset({"wiki"}))
SENTENCE = "In 1819, the British East India Company, led by Sir Stamford Raffles, established a trading post."
PASSAGE = Passage("d1:0", "d1", "singapore.txt", f"Singapore is an island. {SENTENCE}", 0.8)


def retriever(query: str, principal: Principal, k: int) -> list[Passage]:
    return [PASSAGE]


def test_clause_runs_are_verbatim_pieces_of_the_sentence_without_the_sentence() -> None:
    runs = clause_runs(SENTENCE)
    assert "the British East India Company" in runs
    assert "In 1819" in runs and "established a trading post" in runs
    assert SENTENCE not in runs and SENTENCE.rstrip(".") not in runs
    assert all(run in SENTENCE for run in runs)
    assert clause_runs("No breaks in this one.") == []


def test_question_types() -> None:
    assert question_type("Who won the 1903 Nobel Prize?") == "who"
    assert question_type("How many people use the bus?") == "how_many"
    assert question_type("In what year did it open?") == "when"
    assert question_type("Where is the garden?") == "where"
    assert question_type("What established a trading post?") == "what"


def test_candidates_start_with_the_sentence_and_have_one_feature_row_each() -> None:
    spans, features = candidate_spans("What established a trading post on the island?", SENTENCE)
    assert spans[0] == SENTENCE and len(spans) == len(features)
    assert features.shape[1] == len(FEATURES)


def _rows(n: int) -> SpanRows:
    """Questions whose gold answer is the capitalised clause that does not repeat the question."""
    features, scores = [], []
    for _ in range(n):
        spans, x = candidate_spans("What established a trading post?", SENTENCE)
        features.append(x)
        scores.append(np.array([1.0 if s == "the British East India Company" else 0.1 for s in spans]))
    return SpanRows(features, scores)


def test_a_fitted_ranker_learns_which_clause_answers_and_round_trips_as_json() -> None:
    assert fit_span_ranker(_rows(MIN_ROWS - 1)) is None  # too few rows to fit
    ranker = fit_span_ranker(_rows(MIN_ROWS))
    assert ranker is not None
    assert ranker.choose("What established a trading post?", SENTENCE) == "the British East India Company"
    assert quoted_f1(_rows(3), ranker) == 1.0 and quoted_f1(_rows(3), None) == pytest.approx(0.1)
    restored = SpanRanker.from_state(json.loads(json.dumps(ranker.to_state())))
    assert restored == ranker
    with pytest.raises(InvalidInputError, match="optimize rag"):
        SpanRanker.from_state({**ranker.to_state(), "features": ["similarity"]})


def test_span_rows_score_the_quoted_sentences_spans_against_the_gold_answers() -> None:
    program = RAGChatbot(retriever, config=RAGConfig(answer_style="quote"))
    rows = span_rows(
        program,
        [
            dspy.Example(
                question="What established a trading post?", principal=READER, answer=["British East India Company"]
            ),
            dspy.Example(question="Is Singapore an island?", principal=READER, answer=["yes"]),  # yes/no: skipped
        ],
    )
    assert len(rows.scores) == 1 and max(rows.scores[0]) > rows.scores[0][0]  # a clause beats the sentence


def test_span_rows_leave_out_questions_that_value_answers_cover() -> None:
    """The ranker only ever chooses for questions without a value answer: it is fitted on those alone."""
    when = [dspy.Example(question="When was the trading post established?", principal=READER, answer=["1819"])]
    assert span_rows(RAGChatbot(retriever, config=RAGConfig(answer_style="quote")), when).scores == []
    without = RAGChatbot(retriever, config=RAGConfig(answer_style="quote", value_answers=False))
    assert len(span_rows(without, when).scores) == 1


def test_the_program_answers_with_the_rankers_span_and_saves_the_ranker() -> None:
    ranker = fit_span_ranker(_rows(MIN_ROWS))
    program = RAGChatbot(retriever, config=RAGConfig(answer_style="quote", quote_spans=True))
    program.span_ranker = ranker
    lm = DummyLM([{"answer": "a company", "citations": [1]}] * 4, adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        reply = program(question="What established a trading post?", principal=READER)
        assert reply.answer == "the British East India Company"
        assert [c["doc_id"] for c in reply.citations] == ["d1"]
        state = json.loads(json.dumps(program.dump_state()))
        restored = RAGChatbot(retriever)
        restored.load_state(state)
        assert restored.span_ranker == ranker and restored.config.quote_spans
        without = RAGChatbot(retriever, config=RAGConfig(answer_style="quote"))  # no ranker: the sentence
        assert without(question="What established a trading post?", principal=READER).answer == SENTENCE
