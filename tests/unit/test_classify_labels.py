"""The feedback classifier's label sets (configuration, validated with actionable errors) and program."""

from __future__ import annotations

import typing
from pathlib import Path

import dspy
import pytest
from dspy.utils import DummyLM

from flywheel.errors import ConfigError, InvalidInputError
from flywheel.programs.classify import FeedbackClassifier, LabelSet, build_signature, load_labels

AIRLINE_REASONS = [
    "Customer Service Issue",
    "Late Flight",
    "Cancelled Flight",
    "Lost Luggage",
    "Bad Flight",
    "Flight Booking Problems",
    "Flight Attendant Complaints",
    "longlines",
    "Damaged Luggage",
    "Can't Tell",
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_label_set_is_the_airline_feedback_taxonomy() -> None:
    labels = load_labels(None)
    assert labels.sentiments == ["negative", "neutral", "positive"]
    assert labels.reasons == AIRLINE_REASONS
    assert set(labels.descriptions) <= {*labels.sentiments, *labels.reasons}


def test_a_custom_yaml_label_set(tmp_path: Path) -> None:
    labels = load_labels(
        write(
            tmp_path,
            "sentiments: [negative, positive]\nreasons: [Price, ' Delivery ']\ndescriptions: {Price: too expensive}\n",
        )
    )
    assert labels.reasons == ["Price", "Delivery"]  # surrounding spaces dropped
    assert labels.describe(labels.reasons) == "Price (too expensive); Delivery"


def test_sentiment_only_label_set_has_no_reason_field() -> None:
    signature = build_signature(LabelSet(sentiments=["happy", "sad"]))
    assert list(signature.output_fields) == ["sentiment", "justification"]
    assert typing.get_args(signature.output_fields["sentiment"].annotation) == ("happy", "sad")


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("sentiments: []\n", "at least two labels"),
        ("sentiments: [negative]\n", "at least two labels"),
        ("sentiments: [negative, positive, negative]\n", "lists 'negative' twice"),
        ("sentiments: [negative, positive]\nreasons: [Late, late]\n", "differ only in case"),
        ("sentiments: [negative, positive]\nreasons: [Late, '  ']\n", "empty label"),
        ("sentiments: [bad, good]\nreasons: [Late]\n", "no 'negative' label"),
        ("sentiments: [negative, positive]\nreasons: [positive]\n", "both a sentiment and a reason"),
        ("sentiments: [negative, positive]\ndescriptions: {Late: delayed}\n", "unknown label(s): 'Late'"),
        ("reasons: [Late]\n", "sentiments: missing"),
        ("sentiments: [negative, positive]\nreason: [Late]\n", "reason: unknown key"),
        ("sentiments: [negative, positive]\nreasons: Late\n", "reasons: Input should be a valid list"),
        (f"sentiments: [negative, {'x' * 81}]\n", "longer than 80 characters"),
        ("sentiments: [negative, positive]\nreasons: [Late, None]\n", "'None' is reserved"),
        ("- negative\n- positive\n", "not a mapping"),
        ("sentiments: [negative, positive\n", "not valid YAML"),
    ],
)
def test_invalid_label_sets_say_what_is_wrong_and_how_to_fix_it(tmp_path: Path, yaml_text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_labels(write(tmp_path, yaml_text))
    assert expected in info.value.message
    assert "sentiments:" in (info.value.hint or "")


def test_missing_label_file_is_a_config_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_labels(tmp_path / "nope.yaml")
    assert "--labels" in (info.value.hint or "")


def run(classifier: FeedbackClassifier, answers: list[dict], text: str) -> dspy.Prediction:
    lm = DummyLM(answers, adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        return classifier(text=text)


def test_classifier_returns_sentiment_reason_and_justification() -> None:
    result = run(
        FeedbackClassifier(),
        [{"sentiment": "negative", "reason": "Lost Luggage", "justification": "The bag did not arrive."}],
        "my bag never arrived",
    )
    assert (result.sentiment, result.reason, result.justification) == (
        "negative",
        "Lost Luggage",
        "The bag did not arrive.",
    )


def test_reason_is_dropped_unless_the_feedback_is_negative() -> None:
    result = run(
        FeedbackClassifier(),
        [{"sentiment": "positive", "reason": "Late Flight", "justification": "thanks"}],
        "thank you!",
    )
    assert result.sentiment == "positive" and result.reason is None


def test_labels_outside_the_set_do_not_parse() -> None:
    answers = [{"sentiment": "furious", "reason": "Late Flight", "justification": "x"}] * 4
    with pytest.raises(Exception, match=r"furious|Literal|parse"):
        run(FeedbackClassifier(), answers, "late again")


def test_custom_labels_reach_the_prompt() -> None:
    labels = LabelSet(sentiments=["negative", "positive"], reasons=["Price"], descriptions={"Price": "too dear"})
    lm = DummyLM(
        [{"sentiment": "negative", "reason": "Price", "justification": "expensive"}], adapter=dspy.JSONAdapter()
    )
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert FeedbackClassifier(labels)(text="way too expensive").reason == "Price"
    prompt = lm.history[0]["messages"][0]["content"]
    assert "Price (too dear)" in prompt and "Late Flight" not in prompt


def test_empty_text_is_refused_without_calling_the_lm() -> None:
    with pytest.raises(InvalidInputError):
        run(FeedbackClassifier(), [], "   ")


def test_classifier_state_round_trips(tmp_path: Path) -> None:
    program = FeedbackClassifier()
    program.classify.demos = [
        dspy.Example(text="late", sentiment="negative", reason="Late Flight", justification="delay")
    ]
    program.save(tmp_path / "classifier.json")
    loaded = FeedbackClassifier()
    loaded.load(tmp_path / "classifier.json")
    assert loaded.classify.demos[0]["reason"] == "Late Flight"


def test_the_assistant_builds_the_classifier_by_name_with_configured_labels(tmp_path: Path) -> None:
    from flywheel.assistant import BUILTIN_PROGRAMS, Assistant
    from flywheel.config import load_settings

    labels = write(tmp_path, "sentiments: [negative, positive]\nreasons: [Price]\n")
    assistant = Assistant(load_settings(classify={"labels": labels}), knowledge=object())
    program = assistant.program("classifier")
    assert "classifier" in BUILTIN_PROGRAMS
    assert isinstance(program, FeedbackClassifier) and program.labels.reasons == ["Price"]
