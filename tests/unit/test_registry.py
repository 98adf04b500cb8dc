"""Program versions in the MLflow registry (sqlite under a temp FLYWHEEL_HOME): register, promote,
roll back, and the assistant picking up a new champion without a restart."""

from __future__ import annotations

import dspy
import pytest
from dspy.utils import DummyLM

from flywheel.assistant import Assistant
from flywheel.config import load_settings
from flywheel.errors import NotFoundError
from flywheel.evaluate.datasets import dataset_from_rows
from flywheel.optimize.compile import Budget
from flywheel.optimize.workflow import OptimizeRequest, optimize_program
from flywheel.registry.programs import ProgramRegistry


class FakeKnowledge:
    catalog = None


def classifier_with_demo(text: str) -> dspy.Module:
    from flywheel.programs.classify import FeedbackClassifier

    program = FeedbackClassifier()
    program.classify.demos = [dspy.Example(text=text, sentiment="negative", reason="Late Flight", justification="j")]
    return program


def test_register_promote_rollback_and_reload() -> None:
    settings = load_settings()
    registry = ProgramRegistry(settings)
    assert registry.get("classifier") is None
    v1 = registry.register(
        "classifier", classifier_with_demo("first"), metrics={"accuracy": 0.5}, params={"optimizer": "none"}
    )
    v2 = registry.register("classifier", classifier_with_demo("second"), metrics={"accuracy": 0.7})
    assert (v1.version, v2.version) == (1, 2) and v2.status == "candidate" and v2.metrics == {"accuracy": 0.7}
    assert registry.model_uri("classifier") == "models:/flywheel-classifier@champion"

    registry.promote("classifier", 1)
    assistant = Assistant(settings, knowledge=FakeKnowledge(), registry=registry)
    program = assistant.program("classifier")
    assert program.classify.demos[0]["text"] == "first"
    assert assistant.refresh() == []

    registry.promote("classifier", 2, reason="better")
    assert registry.get("classifier").version == 2
    assert [v.status for v in registry.versions("classifier")] == ["champion", "retired"]
    assert assistant.refresh() == ["classifier"]
    assert assistant.program("classifier").classify.demos[0]["text"] == "second"
    assert program.classify.demos[0]["text"] == "first"  # an in-flight holder keeps its object

    back = registry.rollback("classifier")
    assert back.version == 1 and registry.get("classifier", "champion").version == 1
    assert registry.get("classifier", 2).status == "rolled-back"
    assert assistant.refresh() == ["classifier"]
    with pytest.raises(NotFoundError, match="no earlier champion"):
        registry.rollback("classifier")
    with pytest.raises(NotFoundError):
        registry.promote("classifier", 9)
    assert registry.names() == ["classifier"]


def tweets(n: int, offset: int = 0) -> list[dict]:
    return [
        {"text": f"flight {i + offset} was late again", "sentiment": "negative", "reason": "Late Flight"}
        for i in range(n)
    ]


def label(sentiment: str, reason: str | None = None) -> dict:
    return {"sentiment": sentiment, "reason": reason, "justification": "j"}


def test_optimize_registers_a_candidate_and_the_gate_decides() -> None:
    settings = load_settings()
    registry = ProgramRegistry(settings)
    assistant = Assistant(settings, knowledge=FakeKnowledge(), registry=registry)
    train = dataset_from_rows(tweets(3), "classifier", name="train")
    dev = dataset_from_rows(tweets(2, offset=10), "classifier", name="dev")
    # champion on dev: wrong twice; bootstrap: right on all 3 train rows; candidate on dev: right twice.
    answers = [label("positive")] * 2 + [label("negative", "Late Flight")] * 5
    request = OptimizeRequest(
        program="classifier",
        optimizer="bootstrap",
        objective="accuracy",
        train=train,
        dev=dev,
        threads=1,
        margin=0.1,
        budget=Budget(max_lm_calls=50),
    )
    with dspy.context(lm=DummyLM(answers, adapter=dspy.JSONAdapter()), adapter=dspy.JSONAdapter()):
        outcome = optimize_program(assistant, registry, request)
    assert outcome.baseline.metrics["accuracy"] == 0.0 and outcome.candidate.metrics["accuracy"] == 1.0
    assert outcome.decision.promote
    assert outcome.version.version == 2 and registry.get("classifier").version == 2  # v1 = unoptimized
    assert registry.get("classifier", 1).params["optimizer"] == "none"
    assert outcome.version.params["optimizer"] == "bootstrap" and outcome.compiled.demos == 3
    assert outcome.compiled.lm_calls == 3

    # a second round whose candidate is worse stays a candidate; the champion does not move
    answers = [label("negative", "Late Flight")] * 2 + [label("negative", "Late Flight")] * 3 + [label("neutral")] * 2
    assistant.refresh()
    with dspy.context(lm=DummyLM(answers, adapter=dspy.JSONAdapter()), adapter=dspy.JSONAdapter()):
        outcome = optimize_program(assistant, registry, request)
    assert not outcome.decision.promote and outcome.version.version == 3
    assert registry.get("classifier").version == 2 and registry.get("classifier", 3).status == "candidate"


def test_versions_registered_in_one_run_keep_their_own_state() -> None:
    """Regression: two versions registered inside one MLflow run shared an artifact path, so the
    unoptimized baseline (v1) silently became a copy of the candidate (v2)."""
    import mlflow

    from flywheel.registry.tracking import use_tracking

    settings = load_settings()
    registry = ProgramRegistry(settings)
    use_tracking(settings)
    with mlflow.start_run():
        registry.register("classifier", classifier_with_demo("first"))
        registry.register("classifier", classifier_with_demo("second"))
    fresh = ProgramRegistry(settings)
    assert fresh.load_state("classifier", 1)[1]["classify"]["demos"][0]["text"] == "first"
    assert fresh.load_state("classifier", 2)[1]["classify"]["demos"][0]["text"] == "second"


def test_a_promote_killed_between_its_writes_leaves_the_alias_deciding_the_status() -> None:
    # promote moves the champion alias, then tags the new and the old champion (separate writes): a
    # process killed in between must not leave a champion that reads as "candidate", nor two champions.
    registry = ProgramRegistry(load_settings())
    registry.register("classifier", classifier_with_demo("first"))
    registry.register("classifier", classifier_with_demo("second"))
    registry.promote("classifier", 1)
    registry.client.set_registered_model_alias(registry.model_name("classifier"), "champion", "2")  # then killed
    assert registry.get("classifier").version == 2
    assert [v.status for v in registry.versions("classifier")] == ["champion", "retired"]
