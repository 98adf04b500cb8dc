"""``auto``: the default optimizer of the RAG chatbot, built for the model it really runs on.

A weak model has few correct traces, so bootstrapping finds nothing to keep. This search instead:

1. **calibrates the refusal** (:mod:`flywheel.optimize.rag_calibration`) on the training rows, without
   the LM: the relevance of the best passage to each question as asked (answerable) and with the row's
   gold documents removed from the search (the same question, now unanswerable). The threshold keeps
   at least ``1 - max_false_refusal`` of the answerable questions; refusal precision and recall on the
   probes are recorded.
2. **builds labelled demos** from the training rows: the question, the gold answer and the gold
   document's best passage for that question, with provenance = the gold documents (shown per request
   only to users who may read them; see :mod:`flywheel.programs.demos`). Yes/no questions teach the
   typed yes/no step, the others the short-answer step.
3. **calibrates yes/no decisions** where the LM engine scores continuations (the embedded model): the
   threshold on P(yes) that decides the fit rows' yes/no questions best (a small model's own
   preference is heavily skewed to "yes"); the uncalibrated design stays a candidate, so the
   validation split decides whether the threshold generalises. Each row is a full prompt (~10 s with the
   embedded model on 2 cores), so the calibration stops starting rows after ``YES_NO_SHARE`` of the budget.
4. **fits the answer-span ranker** for quoted answers (:mod:`flywheel.optimize.answer_spans`, no LM
   call): which clause of the quoted sentence to answer with, learned from the fit rows' gold answers;
5. **races candidate designs** — zero-shot, quoted spans, labelled k-shot (fixed), labelled k-shot chosen
   per question (KNN), with and without a reasoning step where the LM is strong enough — on a validation
   split of the training rows (never the gate's held-out split), blocks of rows at a time: a design
   clearly behind the leader stops (:mod:`flywheel.optimize.design_race`), designs that differ only
   after the LM call share its answers (:func:`shared_lm_calls`), and no block starts that would end past
   the budget (``DEFAULT_MAX_MINUTES`` when none is given; :class:`RaceClock` prices a block that reuses
   answers at nothing, any other at the mean full block so far). Ties go to the simpler design.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import dspy

from flywheel.errors import ConfigError
from flywheel.evaluate.datasets import Dataset
from flywheel.evaluate.metrics import gold_answers
from flywheel.evaluate.runner import evaluate_program
from flywheel.optimize.answer_spans import fit_span_ranker, quoted_f1, span_rows
from flywheel.optimize.compile import Budget, CompileResult, count_demos
from flywheel.optimize.design_race import race_designs
from flywheel.optimize.rag_calibration import YES_NO, calibrate_refusal, calibrate_yes_no, gold_documents
from flywheel.programs.demos import labelled_demo
from flywheel.programs.rag import Passage, RAGChatbot, RAGConfig, format_passages, is_yes_no_question

Progress = Callable[[str, int, int | None], None]
# Labelled demos kept per answer step: enough for KNN to find neighbours, small in the saved state.
DEMO_POOL = 48


def _demo_answer(golds: Sequence[str], passage_text: str, yes_no: bool) -> str | None:
    """The gold answer a demo shows: yes/no for yes/no questions, else preferably one the passage holds."""
    cleaned = [str(g).strip() for g in golds if str(g).strip()]
    if yes_no:
        forms = [g.lower().rstrip(".!") for g in cleaned]
        return next((f for f in forms if f in YES_NO), None)
    held = [g for g in cleaned if g.lower().rstrip(".") in passage_text.lower()]
    pool = held or cleaned
    return min(pool, key=len) if pool else None


def labelled_demos(
    kb: Any, examples: Sequence[dspy.Example], *, passages: int = 1, limit: int = DEMO_POOL
) -> dict[bool, list[dspy.Example]]:
    """Demos for the short-answer step (``False``) and the yes/no step (``True``) from labelled rows.

    Each shows the gold document's best passages for the question, retrieved as the row's user (so a
    row never reveals a document its own user cannot read), with provenance = those documents.
    """
    from flywheel.knowledge.index import MetadataFilter

    pools: dict[bool, list[dspy.Example]] = {False: [], True: []}
    for example in examples:
        gold_docs = gold_documents(kb, example)
        golds = gold_answers(example)
        if not gold_docs or not golds:
            continue
        yes_no = is_yes_no_question(example.question)
        if len(pools[yes_no]) >= limit:
            continue
        hits = kb.search(example.principal, example.question, k=passages, metadata=MetadataFilter(documents=gold_docs))
        if not hits:
            continue
        shown = [Passage(h.chunk_id, h.doc_id, h.citation(), h.text) for h in hits]
        text = format_passages(shown)
        answer = _demo_answer(golds, text, yes_no)
        if answer is None:
            continue
        pools[yes_no].append(labelled_demo(example.question, answer, text, [p.doc_id for p in shown], citations=[1]))
    return pools


@dataclass
class Candidate:
    name: str
    config: RAGConfig
    labelled: bool
    # Differs from the design before it only after the LM call (a decision threshold, a span of the quoted
    # sentence): within :func:`shared_lm_calls` its rows reuse that design's LM answers and cost ~nothing.
    after_call: bool = False


def candidate_designs(
    base: RAGConfig,
    *,
    max_demos: int,
    strong_lm: bool,
    uncalibrated: RAGConfig | None = None,
    spans: bool = False,
) -> list[Candidate]:
    """The designs the search scores, simplest first (ties keep the earlier one): the program as it
    is (when ``base`` carries a fitted yes/no threshold), quoted spans instead of sentences (when a span
    ranker was fitted), the other answer style (quoted sentence vs generated phrase), fewer passages (a
    small model is easily distracted), one nearest labelled demo, a few fixed labelled demos."""
    shots = max(1, min(max_demos, 3))
    fewer = max(2, base.k - 1)
    designs = (
        [Candidate("zero-shot, uncalibrated yes/no", replace(uncalibrated, max_demos=0), False)]
        if uncalibrated is not None and uncalibrated != base
        else []
    )
    other_style = "generate" if base.answer_style == "quote" else "quote"
    designs += [Candidate("zero-shot", replace(base, max_demos=0), False, after_call=bool(designs))]
    if spans and base.answer_style == "quote":
        designs += [
            Candidate("zero-shot, quoted spans", replace(base, max_demos=0, quote_spans=True), False, after_call=True)
        ]
    designs += [
        Candidate(f"zero-shot, {other_style}d answers", replace(base, max_demos=0, answer_style=other_style), False),
        Candidate(f"zero-shot, k={fewer}", replace(base, k=fewer, max_demos=0), False),
        Candidate("labelled 1-shot KNN", replace(base, max_demos=1, demo_selection="knn"), True),
        Candidate(f"labelled {shots}-shot", replace(base, max_demos=shots, demo_selection="fixed"), True),
    ]
    if strong_lm:
        designs += [
            Candidate(f"{c.name} + reasoning", replace(c.config, reasoning=True), c.labelled) for c in list(designs)
        ]
    return designs


# Validation rows cost one program run per design; beyond this many, rows fit more (demos, span ranker,
# calibrations) instead.
MAX_VALIDATION_ROWS = 48


# Validation rows per race block: after each block, designs clearly behind the leader stop.
RACE_BLOCK = 16
# The search's own budget when none is given: no new block starts that would end past it.
DEFAULT_MAX_MINUTES = 20.0
# Share of the budget the yes/no calibration may use (its rows are full prompts); the race gets the rest.
YES_NO_SHARE = 0.2


@contextmanager
def shared_lm_calls() -> Iterator[None]:
    """Within the block, identical LM requests are answered once (DSPy's response cache), even where the
    configured LM has its cache off: designs that differ only after the LM call (yes/no threshold, quoted
    sentence or span, answer style) then cost one LM pass between them, not one each."""
    lm = dspy.settings.lm
    if lm is None or getattr(lm, "cache", True) or not hasattr(lm, "copy"):
        yield
        return
    with dspy.context(lm=lm.copy(cache=True)):
        yield


class RaceClock:
    """When the race may start another block: none that would end past the budget. A design whose next
    block reuses the LM answers of the design before it (which already ran that block) is expected to
    cost nothing; any other, the mean of the blocks so far that made their own LM calls."""

    def __init__(
        self,
        designs: Sequence[Candidate],
        *,
        max_minutes: float,
        max_lm_calls: int | None,
        started: float,
        now: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.designs = designs
        self.now = now
        self.max_minutes = max_minutes
        self.max_lm_calls = max_lm_calls
        self.started = started
        self.full_blocks: list[float] = []  # seconds of the blocks that made their own LM calls
        self.blocks_scored = [0] * len(designs)

    def reuses_answers(self, index: int) -> bool:
        return self.designs[index].after_call and self.blocks_scored[index - 1] > self.blocks_scored[index]

    @contextmanager
    def block(self, index: int) -> Iterator[None]:
        """Time one block of design ``index``."""
        began, free = self.now(), self.reuses_answers(index)
        yield
        if not free:
            self.full_blocks.append(self.now() - began)
        self.blocks_scored[index] += 1

    def out_of_budget(self, calls: int, index: int) -> bool:
        free = self.reuses_answers(index)
        over_calls = not free and self.max_lm_calls is not None and calls + RACE_BLOCK > self.max_lm_calls
        expected = 0.0 if free else sum(self.full_blocks) / max(len(self.full_blocks), 1)
        return over_calls or (self.now() - self.started + expected) / 60 > self.max_minutes


def _split(examples: Sequence[dspy.Example], seed: int, val_fraction: float = 0.4) -> tuple[list, list]:
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    n_val = min(max(4, round(len(shuffled) * val_fraction)), MAX_VALIDATION_ROWS, len(shuffled) - 1)
    return shuffled[n_val:], shuffled[:n_val]


def search_rag_design(
    student: RAGChatbot,
    kb: Any,
    trainset: Sequence[dspy.Example],
    *,
    metric: Any,
    threads: int = 2,
    budget: Budget | None = None,
    seed: int = 0,
    max_demos: int = 3,
    strong_lm: bool = False,
    progress: Progress | None = None,
) -> CompileResult:
    """Calibrate, build labelled demos and keep the best-scoring design on a validation split."""
    if not isinstance(student, RAGChatbot):
        raise ConfigError(
            "The auto optimizer designs RAG chatbots.",
            hint="Use --optimizer bootstrap (or knn, mipro, gepa) for this program.",
        )
    if len(trainset) < 5:
        raise ConfigError(
            f"The auto optimizer needs at least 5 training rows (got {len(trainset)}).",
            hint="Add labelled questions (question, answer, document) to --train.",
        )
    started = time.perf_counter()
    budget = budget or Budget()
    fit, val = _split(trainset, seed)
    calibration = calibrate_refusal(kb, trainset, k=student.config.k)
    base = student.config if calibration is None else replace(student.config, min_relevance=calibration.threshold)
    max_minutes = budget.max_minutes if budget.max_minutes is not None else DEFAULT_MAX_MINUTES
    yes_no = (
        calibrate_yes_no(student, fit, max_seconds=YES_NO_SHARE * max_minutes * 60)
        if not student.config.reasoning
        else None
    )
    uncalibrated = base
    if yes_no is not None:
        base = replace(base, yes_threshold=yes_no.threshold)
    ranker, span_note = _fit_spans(student, fit, val) if student.config.answer_style == "quote" else (None, None)
    student = student.deepcopy()
    student.span_ranker = ranker
    pools = labelled_demos(kb, fit)
    for pool in pools.values():
        random.Random(seed).shuffle(pool)
    designs = candidate_designs(
        base, max_demos=max_demos, strong_lm=strong_lm, uncalibrated=uncalibrated, spans=ranker is not None
    )
    if not any(pools.values()):
        designs = [d for d in designs if not d.labelled]
    clock = RaceClock(designs, max_minutes=max_minutes, max_lm_calls=budget.max_lm_calls, started=started)

    def build(design: Candidate) -> RAGChatbot:
        program = student.deepcopy()
        program.configure(design.config)
        program.answer_predictor(yes_no=False).demos = list(pools[False]) if design.labelled else []
        program.answer_predictor(yes_no=True).demos = list(pools[True]) if design.labelled else []
        return program

    def score_block(index: int, begin: int, end: int) -> tuple[list[float], int]:
        if progress:
            progress(f"racing designs on {len(val)} validation rows ({designs[index].name})", begin, len(val))
        rows = Dataset("auto[val]", "qa", list(val[begin:end]), True)
        with clock.block(index):
            result = evaluate_program(
                build(designs[index]), rows, {"objective": metric}, name=designs[index].name, threads=threads
            )
        return [r.score("objective") for r in result.examples], result.lm_calls

    with shared_lm_calls():
        race = race_designs(
            [d.name for d in designs], len(val), score_block, block=RACE_BLOCK, out_of_budget=clock.out_of_budget
        )
    chosen = designs[race.chosen]
    program = build(chosen)
    calls = race.calls
    scores = race.scores()
    params: dict[str, Any] = {
        "optimizer": "auto",
        "design": chosen.name,
        "validation_rows": len(val),
        "fit_rows": len(fit),
        "design_scores": scores,
        "design_rows": race.rows(),
        "max_minutes": max_minutes,
        **asdict(chosen.config),
    }
    if calibration is not None:
        params.update({f"refusal.{k}": v for k, v in asdict(calibration).items()})
    notes = [
        f"designs raced on {len(val)} validation rows in blocks of {RACE_BLOCK}: {race.summary()}",
        f"chosen: {chosen.name} (compared on {race.compared_rows} rows"
        + (f"; the {max_minutes:g}-minute budget ended the race)" if race.stopped_by_budget else ")"),
    ]
    if span_note is not None:
        notes.append(span_note)
    if yes_no is not None:
        params.update({f"yes_no.{k}": v for k, v in asdict(yes_no).items()})
        notes.append(
            f"yes/no threshold {yes_no.threshold:.3f} on {yes_no.rows} fit rows: accuracy "
            f"{yes_no.accuracy_before:.2f} -> {yes_no.accuracy_after:.2f}"
        )
    if calibration is not None:
        notes.append(
            f"refusal threshold {calibration.threshold:.3f}: keeps {calibration.answerable_kept:.0%} of "
            f"answerable probes, refusal precision {calibration.refusal_precision:.2f}, "
            f"recall {calibration.refusal_recall:.2f}"
        )
    return CompileResult(
        program, "auto", params, calls, time.perf_counter() - started, count_demos(program), notes=notes
    )


def _fit_spans(program: RAGChatbot, fit: Sequence[dspy.Example], val: Sequence[dspy.Example]) -> tuple[Any, str | None]:
    """The span ranker fitted on the fit rows, and a note with its effect on the validation rows' quoted
    answers (no LM call; the design search then decides on the whole program's score)."""
    ranker = fit_span_ranker(span_rows(program, fit))
    if ranker is None:
        return None, None
    held = span_rows(program, val)
    return ranker, (
        f"span ranker on {len(held.scores)} validation short-answer rows: quoted F1 "
        f"{quoted_f1(held, None):.3f} (sentence) -> {quoted_f1(held, ranker):.3f} (span)"
    )
