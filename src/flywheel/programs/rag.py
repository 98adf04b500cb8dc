"""The RAG chatbot: condense the conversation into a query, retrieve as the caller, answer with citations.

The principal is an argument of every call (never global state), and retrieval goes through the
ACL-bound knowledge base, so the passages a prompt can contain are exactly those the caller may
read. Citations are passage numbers chosen by the LM, mapped back to real chunk ids; numbers that
point at no retrieved passage are dropped, and an answer the LM gave without a usable citation
cites the passage that holds it.

The design follows the model it runs on (:class:`RAGConfig`, recorded with every program version):

- **a lean answer step**: answer and citations only; a reasoning field (``ChainOfThought``) only
  where the LM is strong enough to use it (``reasoning``: on for endpoints, off for the embedded
  135M model, whose reasoning crowds out its answer);
- **the answer's form follows the question**: a yes/no question gets a typed ``yes``/``no`` answer
  (a ``Literal``, so a constrained decoder can only say one of them); other questions get a short
  phrase taken from the passages, or (``answer_style="quote"``, the embedded model's default) the
  passage sentence most similar to the question, quoted with its citation, unless the generated phrase
  is a value a passage holds (a number the question does not contain);
- **calibrated yes/no decisions**: where the engine can score continuations (the embedded model), a
  yes/no answer is P(yes) ≥ ``yes_threshold`` read from the LM's token probabilities for the same
  prompt (one prompt evaluation, no decoding); ``flywheel optimize`` fits the threshold on labelled
  rows, which moves a model that says "yes" to everything (see :mod:`flywheel.programs.choice`);
- **a measured refusal**: the program answers "not in the documents" when the best passage's
  similarity to the query is below ``min_relevance``, a threshold calibrated on labelled data by
  ``flywheel optimize`` (answerable questions vs the same questions with their documents removed),
  not a raw flag set by the LM;
- **few, short demos**: at most ``max_demos`` of the demos the caller may see, the nearest to the
  question when ``demo_selection`` is ``knn`` (see :mod:`flywheel.programs.demos`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import dspy

from flywheel.access import Principal
from flywheel.programs.choice import first_option_probability
from flywheel.programs.demos import (
    SOURCE_FIELD,
    DemoSelection,
    DemoSelector,
    Embed,
    ReadableCheck,
    annotate_demo_sources,
    remember_sources,
    visible_demos,
)
from flywheel.programs.quote import best_sentence, is_grounded_value
from flywheel.programs.spans import SpanRanker
from flywheel.programs.values import asks_for_value, value_answer

__all__ = [
    "NOT_FOUND",
    "SOURCE_FIELD",
    "Passage",
    "RAGChatbot",
    "RAGConfig",
    "annotate_demo_sources",
    "cited_passages",
    "is_yes_no_question",
    "knowledge_readable",
    "knowledge_retriever",
    "visible_demos",
]

NOT_FOUND = "I could not find the answer in the documents available to you."
# Below this cosine similarity between the query and the best passage, the documents are taken not to
# hold the answer. Conservative until `flywheel optimize` calibrates it on the user's own data.
DEFAULT_MIN_RELEVANCE = 0.3
CONFIG_STATE_KEY = "rag_config"
SPAN_RANKER_STATE_KEY = "answer_span_ranker"


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk as programs see it."""

    chunk_id: str
    doc_id: str
    citation: str
    text: str
    relevance: float | None = None  # cosine similarity of the query to this chunk, when known
    section: str | None = None  # heading path; the chunk's first line repeats it when set

    def body(self) -> str:
        """The text without the heading-path line the chunker puts first (it is a heading, not content)."""
        if not self.section:
            return self.text
        first, _, rest = self.text.partition("\n")
        return rest if rest and first.rstrip().endswith(self.section.split(" > ")[-1]) else self.text


Retriever = Callable[[str, Principal, int], Sequence[Passage]]
AnswerStyle = Literal["generate", "quote"]


@dataclass(frozen=True)
class RAGConfig:
    """The RAG program's design choices: chosen per LM, searched by the optimizer, saved with the version."""

    k: int = 4
    reasoning: bool = False
    min_relevance: float = DEFAULT_MIN_RELEVANCE
    max_demos: int = 2
    demo_selection: DemoSelection = "fixed"
    typed_yes_no: bool = True
    # "yes" when P(yes) from the LM's token probabilities is at least this (engines that can score
    # continuations; see flywheel.programs.choice). 0.5 is the LM's own preference; optimize fits it.
    yes_threshold: float = 0.5
    # Other questions: "quote" the passage sentence most similar to the question unless the LM's phrase is
    # a value a passage holds (for small models), or "generate" a short phrase (flywheel.programs.quote).
    answer_style: AnswerStyle = "generate"
    # Quoted answers: the clause of the quoted sentence that the fitted span ranker prefers (which may be the
    # whole sentence) instead of the sentence; needs a ranker fitted by optimize (flywheel.programs.spans).
    quote_spans: bool = False
    # Quoted answers to questions that ask for a quantity or date: the value phrase of the quoted sentence
    # that the question asks for ("97 Nm") instead of the sentence (flywheel.programs.values).
    value_answers: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RAGConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def knowledge_retriever(kb: Any) -> Retriever:
    """A retriever over a :class:`~flywheel.knowledge.base.KnowledgeBase` (ACL applied inside the query)."""

    def retrieve(query: str, principal: Principal, k: int) -> list[Passage]:
        return [
            Passage(h.chunk_id, h.doc_id, h.citation(), h.text, h.relevance.get("vector"), h.section)
            for h in kb.search(principal, query, k=k)
        ]

    return retrieve


def knowledge_readable(kb: Any) -> ReadableCheck:
    """The documents among ``doc_ids`` that ``principal`` may read, from the catalog's current groups
    (one query for just these ids)."""

    def readable(principal: Principal, doc_ids: Sequence[str]) -> set[str]:
        groups = kb.catalog.document_groups(doc_ids)
        return {doc_id for doc_id, doc_groups in groups.items() if principal.can_read(doc_groups)}

    return readable


def knowledge_embedder(kb: Any) -> Embed | None:
    """The knowledge base's embedder as a function (for KNN demo selection), if it has one."""
    embedder = getattr(kb, "embedder", None)
    return None if embedder is None else (lambda texts: embedder.embed(list(texts)))


def default_config(settings: Any) -> RAGConfig:
    """The design a new user gets for the configured LM (before any optimization)."""
    reasoning = settings.reasons_by_default()
    style = settings.programs.answer_style
    if style == "auto":  # a model too small to reason is also too small to phrase answers: it quotes
        style = "generate" if settings.lm.reasons_well() else "quote"
    return RAGConfig(k=settings.programs.retrieval_k, reasoning=reasoning, answer_style=style)


def rag_program(kb: Any, settings: Any) -> RAGChatbot:
    """The RAG chatbot over ``kb`` with the default design for the configured LM."""
    return RAGChatbot(
        knowledge_retriever(kb),
        readable=knowledge_readable(kb),
        embed=knowledge_embedder(kb),
        config=default_config(settings),
    )


class CondenseQuestion(dspy.Signature):
    """Rewrite the latest question as a standalone search query for the company's documents,
    resolving pronouns and references with the conversation so far."""

    history: dspy.History = dspy.InputField(desc="earlier turns of the conversation")
    question: str = dspy.InputField(desc="the user's latest message")
    query: str = dspy.OutputField(desc="a short, self-contained search query")


class AnswerFromPassages(dspy.Signature):
    """Answer the question with a short phrase taken from the numbered passages: the name, number,
    value, date or phrase that answers it. Cite the numbers of the passages that contain it."""

    passages: str = dspy.InputField(desc="numbered passages, e.g. [1] text…")
    history: dspy.History = dspy.InputField(desc="earlier turns of the conversation")
    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="a short phrase from the passages")
    citations: list[int] = dspy.OutputField(desc="numbers of the passages that contain the answer")


class AnswerYesNo(dspy.Signature):
    """Answer the yes/no question from the numbered passages. Cite the numbers of the passages that
    decide it."""

    passages: str = dspy.InputField(desc="numbered passages, e.g. [1] text…")
    history: dspy.History = dspy.InputField(desc="earlier turns of the conversation")
    question: str = dspy.InputField()
    answer: Literal["yes", "no"] = dspy.OutputField()
    citations: list[int] = dspy.OutputField(desc="numbers of the passages that decide the answer")


_YES_NO = re.compile(
    r"^\s*(is|isn't|are|aren't|was|wasn't|were|weren't|do|don't|does|doesn't|did|didn't|can|can't|could|"
    r"couldn't|has|hasn't|have|haven't|had|hadn't|will|won't|would|wouldn't|should|shouldn't|shall|may|"
    r"might|must)\b",
    re.IGNORECASE,
)
_ALTERNATIVE = re.compile(r"\bor\b", re.IGNORECASE)


def is_yes_no_question(question: str) -> bool:
    """An English question that starts with an auxiliary verb and offers no alternatives ("… or …")."""
    last = question.strip().split("\n")[-1]
    return bool(_YES_NO.match(last)) and not _ALTERNATIVE.search(last)


def format_passages(passages: Sequence[Passage]) -> str:
    return "\n\n".join(f"[{i}] ({p.citation}) {p.text}" for i, p in enumerate(passages, 1))


def as_history(history: Any) -> dspy.History:
    """Accept a dspy.History, a list of {question, answer} turns, or None."""
    if isinstance(history, dspy.History):
        return history
    return dspy.History(messages=list(history or []))


def _predictor(signature: type[dspy.Signature], reasoning: bool, max_tokens: int) -> dspy.Module:
    return dspy.ChainOfThought(signature) if reasoning else dspy.Predict(signature, max_tokens=max_tokens)


class RAGChatbot(dspy.Module):
    """Retrieval-augmented chatbot over the knowledge base, with citations and measured refusals."""

    def __init__(
        self,
        retriever: Retriever | None = None,
        *,
        k: int | None = None,
        readable: ReadableCheck | None = None,
        config: RAGConfig | None = None,
        embed: Embed | None = None,
    ) -> None:
        super().__init__()
        self.retriever = retriever
        self.readable = readable
        self.embed = embed
        self.span_ranker: SpanRanker | None = None
        config = config or RAGConfig()
        self.configure(replace(config, k=k) if k is not None else config)

    def configure(self, config: RAGConfig) -> None:
        """Apply a design (rebuilds the answer steps when reasoning changes; demos are kept)."""
        previous: RAGConfig | None = getattr(self, "config", None)
        self.config = config
        self.selector = DemoSelector(self.embed, selection=config.demo_selection, max_demos=config.max_demos)
        if previous is not None and previous.reasoning == config.reasoning:
            return
        demos = {name: list(p.demos) for name, p in self.named_predictors()} if previous else {}
        self.condense = dspy.ChainOfThought(CondenseQuestion) if config.reasoning else dspy.Predict(CondenseQuestion)
        # The grammar bounds every string so the whole JSON fits max_tokens; the citations list takes ~100
        # of them, so 256 leaves the answer ~150 characters (160 cut answers at 14: "Moldoveanu Pea").
        self.respond = _predictor(AnswerFromPassages, config.reasoning, max_tokens=256)
        self.respond_yes_no = _predictor(AnswerYesNo, config.reasoning, max_tokens=64)
        for name, predictor in self.named_predictors():
            predictor.demos = demos.get(name, demos.get(_twin(name), []))

    @property
    def k(self) -> int:
        return self.config.k

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        state = super().dump_state(json_mode=json_mode)
        state[CONFIG_STATE_KEY] = asdict(self.config)
        if self.span_ranker is not None:
            state[SPAN_RANKER_STATE_KEY] = self.span_ranker.to_state()
        return state

    def load_state(self, state: dict[str, Any], **kwargs: Any) -> None:
        if CONFIG_STATE_KEY in state:
            self.configure(RAGConfig.from_dict(state[CONFIG_STATE_KEY]))
            ranker = state.get(SPAN_RANKER_STATE_KEY)
            self.span_ranker = SpanRanker.from_state(ranker) if ranker else None
            super().load_state(state, **kwargs)
        else:  # a version saved before RAGConfig: keep its demos (its old signature is replaced)
            legacy = state.get("respond.predict") or state.get("respond") or {}
            self.answer_predictor(yes_no=False).demos = [dspy.Example(**d) for d in legacy.get("demos", [])]

    def answer_predictor(self, *, yes_no: bool) -> dspy.Predict:
        module = self.respond_yes_no if yes_no else self.respond
        return module.predict if isinstance(module, dspy.ChainOfThought) else module

    def forward(self, question: str, principal: Principal, history: Any = None) -> dspy.Prediction:
        if self.retriever is None:
            raise RuntimeError("RAGChatbot has no retriever: pass knowledge_retriever(kb) when building it.")
        if not isinstance(principal, Principal):
            raise TypeError("RAGChatbot needs the calling Principal (principal=...)")
        turns = as_history(history)
        # The first turn is already standalone; a rewrite would only cost a call and add noise.
        query = self.condense(history=turns, question=question).query if turns.messages else question
        passages = list(self.retriever(query, principal, self.config.k))
        relevance = max((p.relevance for p in passages if p.relevance is not None), default=None)
        if not passages or (relevance is not None and relevance < self.config.min_relevance):
            return self._refused(passages, query, relevance)
        context = format_passages(passages)
        remember_sources(context, [p.doc_id for p in passages])
        yes_no = self.config.typed_yes_no and is_yes_no_question(question)
        step = self.respond_yes_no if yes_no else self.respond
        demos = self.selector.select(
            visible_demos(self.answer_predictor(yes_no=yes_no).demos, principal, self.readable), question
        )
        inputs = {"passages": context, "history": turns, "question": question}
        if yes_no and not self.config.reasoning:
            p_yes = first_option_probability(self.respond_yes_no, inputs, demos, ("yes", "no"))
            if p_yes is not None:
                answer = "Yes" if p_yes >= self.config.yes_threshold else "No"
                return self._answered(
                    answer,
                    grounding_passages(answer, passages, True),
                    passages,
                    query,
                    relevance,
                    yes_probability=p_yes,
                )
        reply = step(**inputs, demos=demos)
        answer = strip_preamble(str(reply.answer or ""))
        if not answer:
            return self._refused(passages, query, relevance)
        if (
            not yes_no
            and self.config.answer_style == "quote"
            and not is_grounded_value(answer, question, [p.text for p in passages])
        ):
            quoted = best_sentence(query, passages, Passage.body, self.embed)
            if quoted is not None:
                text = quoted[0]
                value = self.quoted_value(query, text, answer)
                if value is not None:
                    text = value
                elif self.config.quote_spans and self.span_ranker is not None:
                    text = self.span_ranker.choose(query, text, self.embed)
                return self._answered(text, [quoted[1]], passages, query, relevance, generated=answer)
        cited = cited_passages(reply.citations, passages) or grounding_passages(answer, passages, yes_no)
        return self._answered(
            answer.capitalize() if yes_no else answer,
            cited,
            passages,
            query,
            relevance,
            reasoning=getattr(reply, "reasoning", ""),
        )

    def quoted_value(self, question: str, sentence: str, generated: str = "") -> str | None:
        """The value phrase of the quoted ``sentence`` that answers ``question``, where this program gives
        value answers and the question asks for a quantity or a date (flywheel.programs.values)."""
        if not (self.config.value_answers and asks_for_value(question)):
            return None
        return value_answer(question, sentence, generated)

    @staticmethod
    def _refused(passages: Sequence[Passage], query: str, relevance: float | None) -> dspy.Prediction:
        return dspy.Prediction(
            answer=NOT_FOUND,
            citations=[],
            passages=[asdict(p) for p in passages],
            found=False,
            query=query,
            relevance=relevance,
        )

    @staticmethod
    def _answered(
        answer: str,
        cited: Sequence[Passage],
        passages: Sequence[Passage],
        query: str,
        relevance: float | None,
        **extra: Any,
    ) -> dspy.Prediction:
        return dspy.Prediction(
            answer=answer,
            citations=[asdict(p) for p in cited],
            passages=[asdict(p) for p in passages],
            found=True,
            query=query,
            relevance=relevance,
            **extra,
        )


_PREAMBLE = re.compile(
    r"^\s*(the\s+)?(short\s+)?answer(\s+to\s+(the|this|your)\s+question)?(\s+is)?\s*[:\-–]\s*", re.IGNORECASE
)


def strip_preamble(answer: str) -> str:
    """The answer without leading "The answer is:" / "The answer to the question is:" / "Answer:"
    (small models write them, sometimes several times over)."""
    stripped = answer.strip()
    while (shorter := _PREAMBLE.sub("", stripped, count=1).strip()) != stripped:
        stripped = shorter
    return stripped


def _twin(name: str) -> str:
    """The same predictor's name in the other structure (``respond`` ↔ ``respond.predict``)."""
    return name.removesuffix(".predict") if name.endswith(".predict") else f"{name}.predict"


def cited_passages(numbers: Any, passages: Sequence[Passage]) -> list[Passage]:
    """The passages behind the LM's citation numbers: out-of-range and repeated numbers dropped."""
    chosen: list[Passage] = []
    for number in numbers or []:
        try:
            index = int(number)
        except (TypeError, ValueError):
            continue
        if 1 <= index <= len(passages) and passages[index - 1] not in chosen:
            chosen.append(passages[index - 1])
    return chosen


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def grounding_passages(answer: str, passages: Sequence[Passage], yes_no: bool) -> list[Passage]:
    """When the LM cited nothing usable: the passage that shares most words with the answer (a
    yes/no answer is grounded in the best-ranked passage)."""
    if not passages:
        return []
    if yes_no:
        return [passages[0]]
    words = _words(answer)
    best = max(passages, key=lambda p: len(words & _words(p.text)))
    return [best] if words & _words(best.text) else []
