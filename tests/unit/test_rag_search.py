"""The RAG auto optimizer: refusal calibration, labelled demos with provenance, design search."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import dspy
from dspy.utils import DummyLM

from flywheel.access import Principal
from flywheel.evaluate.catalog import optimizer_metric
from flywheel.evaluate.metrics import token_f1
from flywheel.knowledge.index import MetadataFilter
from flywheel.optimize.rag_calibration import calibrate_refusal, gold_documents
from flywheel.optimize.rag_search import RaceClock, candidate_designs, labelled_demos, search_rag_design
from flywheel.programs.demos import SOURCE_FIELD
from flywheel.programs.rag import Passage, RAGChatbot, RAGConfig

READER = Principal("reader", frozenset({"wiki"}))
DOCS = {
    "cats": "Cats sleep 16 hours a day. A cat is a small carnivore.",
    "dogs": "Dogs were domesticated 15,000 years ago. The dog is a loyal animal.",
    "bees": "Bees make honey from nectar. A hive has one queen.",
}


@dataclass
class FakeHit:
    chunk_id: str
    doc_id: str
    text: str
    relevance: dict[str, float] = field(default_factory=dict)

    def citation(self) -> str:
        return f"{self.doc_id}.txt"


class FakeKB:
    """Relevance 0.8 for the document named in the question, 0.3 for the others."""

    def search(self, principal: Principal, query: str, *, k: int = 4, metadata: MetadataFilter | None = None):
        docs = list(DOCS)
        if metadata and metadata.documents:
            docs = [d for d in docs if d in metadata.documents]
        if metadata and metadata.exclude_documents:
            docs = [d for d in docs if d not in metadata.exclude_documents]
        hits = [FakeHit(f"{d}:0", d, DOCS[d], {"vector": 0.8 if d[:-1] in query.lower() else 0.3}) for d in docs]
        return sorted(hits, key=lambda h: -h.relevance["vector"])[:k]


def retriever(query: str, principal: Principal, k: int) -> list[Passage]:
    return [
        Passage(h.chunk_id, h.doc_id, h.citation(), h.text, h.relevance["vector"])
        for h in FakeKB().search(principal, query, k=k)
    ]


def row(question: str, answer: str, doc: str) -> dspy.Example:
    return dspy.Example(question=question, principal=READER, answer=[answer], gold_doc_ids=[doc]).with_inputs(
        "question", "principal"
    )


TRAIN = [
    row("How long does a cat sleep?", "16 hours", "cats"),
    row("Is a cat a carnivore?", "Yes", "cats"),
    row("When were dogs domesticated?", "15,000 years ago", "dogs"),
    row("Is the dog loyal?", "yes", "dogs"),
    row("What do bees make?", "honey", "bees"),
    row("Does a bee hive have one queen?", "Yes.", "bees"),
    row("What is a cat?", "a small carnivore", "cats"),
    row("What animal is loyal, the dog?", "dog", "dogs"),
]


def test_refusal_threshold_separates_answerable_from_removed_documents() -> None:
    calibration = calibrate_refusal(FakeKB(), TRAIN, k=2)
    assert calibration is not None
    assert 0.3 < calibration.threshold < 0.8  # between the two populations, with a margin
    assert calibration.answerable_kept == 1.0 and calibration.refusal_recall >= 0.8  # "domestiCATed" matches cats


def test_labelled_demos_show_the_gold_passage_and_carry_its_document() -> None:
    pools = labelled_demos(FakeKB(), TRAIN)
    yes_no, short = pools[True], pools[False]
    assert {d.answer for d in yes_no} == {"yes"}  # "Yes." normalised to the typed answer
    sleep = next(d for d in short if "sleep" in d.question)
    assert sleep.answer == "16 hours" and "Cats sleep 16 hours" in sleep.passages
    assert sleep[SOURCE_FIELD] == ["cats"] and sleep.citations == [1]


def test_search_keeps_the_best_design_and_records_it() -> None:
    lm = DummyLM([{"answer": "yes", "citations": [1]}] * 40, adapter=dspy.JSONAdapter())
    metric = optimizer_metric(token_f1)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = search_rag_design(RAGChatbot(retriever, k=3), FakeKB(), TRAIN, metric=metric, threads=1)
    assert result.optimizer == "auto"
    assert set(result.params["design_scores"]) == {
        "zero-shot",
        "zero-shot, quoted answers",
        "zero-shot, k=2",
        "labelled 1-shot KNN",
        "labelled 3-shot",
    }
    assert result.program.config.min_relevance == result.params["refusal.threshold"]
    assert result.params["design"] in result.params["design_scores"]


def test_rows_without_gold_documents_use_the_passage_that_holds_their_answer() -> None:
    correction = dspy.Example(
        question="How long does a cat sleep?", principal=READER, answer="16 hours", gold_doc_ids=None
    ).with_inputs("question", "principal")
    assert gold_documents(FakeKB(), correction) == ("cats",)
    demo = labelled_demos(FakeKB(), [correction])[False][0]
    assert demo[SOURCE_FIELD] == ["cats"] and demo.answer == "16 hours"
    nowhere = dspy.Example(question="How long does a cat sleep?", principal=READER, answer="3 weeks")
    assert gold_documents(FakeKB(), nowhere) == ()


def test_designs_that_differ_after_the_lm_call_are_marked_so() -> None:
    base = RAGConfig(answer_style="quote", yes_threshold=0.7)
    designs = candidate_designs(
        base, max_demos=3, strong_lm=False, uncalibrated=replace(base, yes_threshold=0.5), spans=True
    )
    names = [(d.name, d.after_call) for d in designs]
    assert names[:4] == [
        ("zero-shot, uncalibrated yes/no", False),
        ("zero-shot", True),  # the same LM answers, another threshold on P(yes)
        ("zero-shot, quoted spans", True),  # the same quoted sentence, a span of it
        ("zero-shot, generated answers", False),
    ]
    assert not any(d.after_call for d in designs[3:])
    alone = candidate_designs(base, max_demos=3, strong_lm=False)
    assert alone[0].name == "zero-shot" and not alone[0].after_call  # nothing before it to reuse


def test_the_race_clock_starts_designs_that_reuse_answers_when_a_full_block_would_not_fit() -> None:
    base = RAGConfig(answer_style="quote", yes_threshold=0.7)
    designs = candidate_designs(
        base, max_demos=3, strong_lm=False, uncalibrated=replace(base, yes_threshold=0.5), spans=True
    )
    now = [0.0]
    clock = RaceClock(designs, max_minutes=10, max_lm_calls=None, started=0.0, now=lambda: now[0])

    def run(index: int, seconds: float) -> None:
        with clock.block(index):
            now[0] += seconds

    run(0, 300)  # a full block: 5 of the 10 minutes
    assert not clock.out_of_budget(0, 1)  # reuses design 0's answers: expected to cost nothing
    run(1, 2)
    assert not clock.out_of_budget(0, 2)
    run(2, 2)
    assert clock.out_of_budget(0, 3)  # its own LM calls: another ~300 s would end past 10 minutes
    assert clock.full_blocks == [300]  # the cheap blocks do not lower the expected cost of a full one
    clock.max_minutes = 30
    run(3, 300)
    run(0, 300)  # block 2 of design 0
    assert not clock.out_of_budget(0, 1)  # design 0 ran this block before it
    clock.blocks_scored[0] -= 1  # as if design 0 had not run block 2 (dropped): design 1 pays in full
    assert clock.reuses_answers(1) is False
