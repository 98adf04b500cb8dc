"""The customer-feedback classifier: text → sentiment, (for negative feedback) a reason, a justification.

Labels are configuration, not code: a :class:`LabelSet` (YAML, see ``labels/airline_feedback.yaml``)
names the sentiments, the reasons of negative feedback and optional one-line descriptions. The
DSPy signature is built at run time from the label set with ``Literal`` output types, so the
JSON schema lists every label as an ``enum`` and a constrained decoder (the embedded engine, or
any structured-output endpoint) can only answer with a valid label.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flywheel.errors import ConfigError, InvalidInputError
from flywheel.programs.classify_head import ClassifierHead, shared_embedder

NEGATIVE = "negative"
MAX_LABEL_CHARS = 80
RESERVED = frozenset({"none", "nan", "null", "na", "n/a"})
DEFAULT_LABELS = "airline_feedback.yaml"
# Tokens for one answer: the JSON object with both labels and a one-sentence justification.
DEFAULT_MAX_TOKENS = 160
LABEL_HINT = (
    "A label set is YAML with `sentiments: [negative, neutral, positive]`, optional `reasons: [...]` "
    "(why NEGATIVE feedback is negative) and optional `descriptions: {label: text}`; "
    "see src/flywheel/programs/labels/airline_feedback.yaml."
)


def _check_labels(kind: str, labels: list[str]) -> list[str]:
    cleaned = [label.strip() for label in labels]
    if any(not label for label in cleaned):
        raise ValueError(f"{kind} contains an empty label")
    too_long = [label for label in cleaned if len(label) > MAX_LABEL_CHARS]
    if too_long:
        raise ValueError(
            f"{kind} label {too_long[0][:40]!r}… is longer than {MAX_LABEL_CHARS} characters: "
            "put the explanation under `descriptions` instead"
        )
    reserved = [label for label in cleaned if label.casefold() in RESERVED]
    if reserved:
        raise ValueError(
            f"{kind} label {reserved[0]!r} is reserved (it means 'no value' in data files): choose another name"
        )
    seen: dict[str, str] = {}
    for label in cleaned:
        key = label.casefold()
        if key in seen:
            same = "twice" if seen[key] == label else f"twice ({seen[key]!r} and {label!r} differ only in case)"
            raise ValueError(f"{kind} lists {label!r} {same}")
        seen[key] = label
    return cleaned


class LabelSet(BaseModel):
    """Sentiments, the reasons of negative feedback, and optional descriptions of any label."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sentiments: list[str] = Field(description="Sentiment classes; must include 'negative' when reasons are given.")
    reasons: list[str] = Field(default_factory=list, description="Why NEGATIVE feedback is negative (optional).")
    descriptions: dict[str, str] = Field(default_factory=dict, description="Optional one-line text per label.")

    @field_validator("sentiments")
    @classmethod
    def _sentiments(cls, value: list[str]) -> list[str]:
        if len(value) < 2:
            raise ValueError(f"sentiments needs at least two labels (got {len(value)})")
        return _check_labels("sentiments", value)

    @field_validator("reasons")
    @classmethod
    def _reasons(cls, value: list[str]) -> list[str]:
        return _check_labels("reasons", value)

    @model_validator(mode="after")
    def _consistent(self) -> LabelSet:
        if self.reasons and NEGATIVE not in self.sentiments:
            raise ValueError(
                f"reasons are given but sentiments has no {NEGATIVE!r} label (reasons explain "
                f"negative feedback); add {NEGATIVE!r} to sentiments or drop the reasons"
            )
        overlap = sorted(set(self.sentiments) & set(self.reasons))
        if overlap:
            raise ValueError(f"{overlap[0]!r} is both a sentiment and a reason; give them different names")
        unknown = sorted(set(self.descriptions) - set(self.sentiments) - set(self.reasons))
        if unknown:
            raise ValueError(f"descriptions name unknown label(s): {', '.join(map(repr, unknown))}")
        return self

    @classmethod
    def parse(cls, data: Any, source: str = "the label set") -> LabelSet:
        """Validate ``data`` (e.g. loaded YAML), turning every problem into one ConfigError with a hint."""
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source} is not a mapping with `sentiments` (got {type(data).__name__}).", hint=LABEL_HINT
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = []
            for item in exc.errors():
                where = ".".join(str(p) for p in item["loc"])
                message = str(item["msg"]).removeprefix("Value error, ")
                if item["type"] == "extra_forbidden":
                    message = "unknown key (expected sentiments, reasons, descriptions)"
                elif item["type"] == "missing":
                    message = "missing"
                problems.append(f"{where}: {message}" if where else message)
            raise ConfigError(f"Invalid label set in {source}: " + "; ".join(problems) + ".", hint=LABEL_HINT) from None

    def describe(self, labels: list[str]) -> str:
        """``label (description); …`` for a field description."""
        return "; ".join(
            f"{label} ({self.descriptions[label]})" if label in self.descriptions else label for label in labels
        )


def load_labels(path: Path | None = None) -> LabelSet:
    """The label set in ``path`` (YAML), or Flywheel's default (the airline feedback taxonomy)."""
    # Lazy (start-up time): only this path needs PyYAML.
    import yaml

    if path is None:
        text = resources.files("flywheel.programs").joinpath("labels", DEFAULT_LABELS).read_text(encoding="utf-8")
        source = f"the default label set ({DEFAULT_LABELS})"
    else:
        path = Path(path).expanduser()
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"The label set {path} does not exist.",
                hint="Fix the path given to --labels or classify.labels, or omit it to use the "
                "default airline feedback labels.",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"Cannot read the label set {path}: {exc}.", hint="Make it a readable UTF-8 YAML file."
            ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"The label set {source} is not valid YAML: {exc}", hint=LABEL_HINT) from None
    return LabelSet.parse(data, source)


def build_signature(labels: LabelSet) -> type[dspy.Signature]:
    """The classification signature for ``labels``: Literal-typed outputs, built at run time."""
    sentiment_type: Any = Literal[tuple(labels.sentiments)]  # type: ignore[valid-type]
    fields: dict[str, tuple[Any, Any]] = {
        "text": (str, dspy.InputField(desc="the customer's feedback")),
        "sentiment": (sentiment_type, dspy.OutputField(desc=f"one of: {labels.describe(labels.sentiments)}")),
    }
    instructions = "Classify a customer's feedback about the company by its sentiment"
    if labels.reasons:
        # Not Optional: a nullable enum doubles the schema in the prompt; the reason of feedback that
        # is not negative is dropped in forward(). The default only serves LMs that omit the field.
        reason_type: Any = Literal[tuple(labels.reasons)]  # type: ignore[valid-type]
        fields["reason"] = (
            reason_type,
            dspy.OutputField(
                default=None, desc=f"if the sentiment is {NEGATIVE}, its main reason: {labels.describe(labels.reasons)}"
            ),
        )
        instructions += f" and, for {NEGATIVE} feedback, the main reason"
    fields["justification"] = (str, dspy.OutputField(default="", desc="one short sentence explaining the labels"))
    return dspy.make_signature(fields, instructions + ".", signature_name="ClassifyFeedback")


class FeedbackClassifier(dspy.Module):
    """Feedback text → ``Prediction(sentiment, reason, justification)``; reason is None unless negative.

    Three shapes, one program (so every serving path — ``flywheel classify``, ``/invocations``, the
    MLflow pyfunc model, ``spark_udf`` — runs whichever version is registered):

    - **LM program** (no ``head``): the LM answers every row (zero-shot, or with few-shot demos);
    - **distilled head** (``head`` set, ``lm_below`` 0): a scikit-learn head over sentence vectors
      answers every row, no LM call;
    - **cascade** (``head`` set, ``lm_below`` > 0): the head answers when its sentiment probability
      is at least ``lm_below``; other rows go to the LM program.

    The head and the threshold are part of the DSPy state (plain arrays + JSON, see
    :mod:`flywheel.programs.classify_head`), so ``save``/``load`` and the registry carry them.
    """

    def __init__(
        self,
        labels: LabelSet | None = None,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        head: Any = None,
        lm_below: float = 0.0,
    ) -> None:
        super().__init__()
        self.labels = labels or load_labels(None)
        self.classify = dspy.Predict(build_signature(self.labels), max_tokens=max_tokens)
        self.head = head
        self.lm_below = float(lm_below)

    @property
    def shape(self) -> str:
        """``lm``, ``head`` or ``cascade``."""
        if self.head is None:
            return "lm"
        return "cascade" if self.lm_below > 0 else "head"

    def forward(self, text: str) -> dspy.Prediction:
        _check_text(text)
        if self.head is not None:
            guess = self._head_predictions([text])[0]
            if guess.confidence >= self.lm_below:
                return dspy.Prediction(**self._from_head(guess))
        return self.ask_lm(text)

    def ask_lm(self, text: str) -> dspy.Prediction:
        """The LM program's answer (whatever the head would say)."""
        out = self.classify(text=text)
        sentiment = out.sentiment
        reason = getattr(out, "reason", None)
        if sentiment != NEGATIVE or reason not in self.labels.reasons:
            reason = None
        justification = str(getattr(out, "justification", "") or "").strip()
        return dspy.Prediction(sentiment=sentiment, reason=reason, justification=justification)

    def classify_many(self, texts: list[str], *, threads: int = 1) -> list[dict[str, Any]]:
        """Classify many texts at once: one embedding pass for the head, the LM only for routed rows.

        Each result is ``{sentiment, reason, justification, routed, error}``; a row that fails gets
        ``error`` and the others still answer.
        """
        results: list[dict[str, Any]] = [{} for _ in texts]
        valid = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
        for i in set(range(len(texts))) - set(valid):
            results[i] = {"error": "The feedback text is empty."}
        to_lm = list(valid)
        if self.head is not None and valid:
            guesses = self._head_predictions([texts[i] for i in valid])
            to_lm = []
            for i, guess in zip(valid, guesses, strict=True):
                if guess.confidence >= self.lm_below:
                    results[i] = self._from_head(guess)
                else:
                    to_lm.append(i)

        def lm_row(i: int) -> dict[str, Any]:
            try:
                out = self.ask_lm(texts[i])
                return {
                    "sentiment": out.sentiment,
                    "reason": out.reason,
                    "justification": out.justification,
                    "routed": "lm",
                    "error": None,
                }
            except Exception as exc:  # one row's failure must not fail the batch
                return {"error": f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"}

        if to_lm:
            with ThreadPoolExecutor(max_workers=max(1, min(threads, len(to_lm)))) as pool:
                futures = {i: pool.submit(contextvars.copy_context().run, lm_row, i) for i in to_lm}
                for i, future in futures.items():
                    results[i] = future.result()
        return results

    def head_confidences(self, texts: list[str]) -> list[dict[str, Any]]:
        """The head's own answer and confidence for each text (for choosing a cascade threshold)."""
        return [{**self._from_head(g), "confidence": g.confidence} for g in self._head_predictions(texts)]

    def _head_predictions(self, texts: list[str]) -> list[Any]:
        return self.head.predict_texts(texts, shared_embedder(self.head.embedder))

    def _from_head(self, guess: Any) -> dict[str, Any]:
        reason = guess.reason if guess.sentiment == NEGATIVE and guess.reason in self.labels.reasons else None
        return {
            "sentiment": guess.sentiment,
            "reason": reason,
            "justification": f"distilled head (p={guess.confidence:.2f})",
            "routed": "head",
            "error": None,
        }

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        state = super().dump_state(json_mode=json_mode)
        state["head"] = None if self.head is None else self.head.to_state()
        state["lm_below"] = self.lm_below
        return state

    def load_state(self, state: dict[str, Any], **kwargs: Any) -> FeedbackClassifier:
        head = state.get("head")
        if head is not None:
            head = ClassifierHead.from_state(head)
            unknown = sorted(set(head.sentiment.classes_) - set(self.labels.sentiments))
            if unknown:
                raise ConfigError(
                    f"The classifier head predicts sentiment(s) {unknown} outside the label set.",
                    hint="Train the head with the same label set (--labels / classify.labels).",
                )
        self.head = head
        self.lm_below = float(state.get("lm_below") or 0.0)
        predictors = {k: v for k, v in state.items() if k not in {"head", "lm_below"}}
        super().load_state(predictors, **kwargs)
        return self


def _check_text(text: Any) -> None:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("The feedback text is empty.", hint="Classify a non-empty message.")
