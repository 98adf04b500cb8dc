from __future__ import annotations

import dspy
import pytest
from dspy.utils import DummyLM

from flywheel.access import Principal
from flywheel.assistant import Assistant, load_program_class
from flywheel.config import load_settings
from flywheel.errors import ConfigError, NotFoundError


class NoKnowledge:
    embedder = None

    def search(self, *args: object, **kwargs: object) -> list[object]:
        return []


def assistant(**custom: str) -> Assistant:
    settings = load_settings(programs={"custom": custom})
    return Assistant(settings, knowledge=NoKnowledge())


def test_a_custom_program_named_in_the_config_answers_through_the_assistant() -> None:
    helper = assistant(echo="tests.unit.custom_program:EchoProgram")
    assert "echo" in helper.names()
    lm = DummyLM([{"answer": "hello"}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        reply = helper.ask("hi?", Principal("alice", frozenset({"mechanics"})), program="echo")
    assert reply["answer"] == "hello (everyone,mechanics)"
    assert reply["program"] == "echo" and reply["conversation_id"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon_here", "not of the form"),
        ("tests.unit.custom_program:Missing", "Cannot import"),
        ("not_a_package_xyz:Thing", "Cannot import"),
        ("tests.unit.custom_program:NotAModule", "not a dspy.Module"),
    ],
)
def test_bad_program_specs_are_explained(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_program_class(spec)


def test_unknown_program_name() -> None:
    with pytest.raises(NotFoundError, match="Unknown program 'nope'"):
        assistant().program("nope")


def test_conversations_continue_and_stay_private() -> None:
    helper = assistant(echo="tests.unit.custom_program:EchoProgram")
    alice, bob = Principal("alice"), Principal("bob")
    lm = DummyLM([{"answer": "one"}, {"answer": "two"}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        first = helper.ask("q1", alice, program="echo")
        helper.ask("q2", alice, program="echo", conversation_id=first["conversation_id"])
    assert [t["question"] for t in helper.conversations.history(alice, first["conversation_id"])] == ["q1", "q2"]
    with pytest.raises(NotFoundError):
        helper.ask("q3", bob, program="echo", conversation_id=first["conversation_id"])
