"""Value answers: the value phrase of the quoted sentence that a quantity or date question asks for."""

from __future__ import annotations

import dspy
from dspy.utils import DummyLM

from flywheel.access import Principal
from flywheel.programs.rag import Passage, RAGChatbot, RAGConfig
from flywheel.programs.values import asks_for_value, value_answer, value_phrases

ALICE = Principal("alice", frozenset({"mechanics"}))
OIL = Passage(
    "d1:1:0",
    "d1",
    "pw127m-oil.md",
    "The oil system is checked daily. The PW127M oil tank holds 14.5 US qt (13.7 l) in total, of which "
    "5.2 US qt are usable. Do not dispatch if consumption exceeds 0.25 US qt per flight hour.",
)


def phrases(sentence: str) -> list[str]:
    return [sentence[a:b] for a, b in value_phrases(sentence)]


def test_value_phrases_carry_their_units_qualifiers_and_ranges() -> None:
    assert phrases("An A-check is done every 750 flight hours on the E175.") == ["every 750 flight hours"]
    assert phrases("Acceptable resistance is 12.5 to 14.5 ohms.") == ["12.5 to 14.5 ohms."]
    assert phrases("He was born on March 14, 1879 in Ulm.") == ["March 14, 1879"]
    assert phrases("Frost up to 3 mm thick is allowed.") == ["up to 3 mm thick"]
    assert phrases("The fee is USD 35 per bag.") == ["USD 35 per bag."]


def test_identifiers_are_not_values() -> None:
    assert phrases("Lot 23-0417 went to N403SK; part SKP-PTP-75-1024 replaces it.") == []


def test_the_value_labelled_by_the_questions_words_is_chosen() -> None:
    sentence = "Standard bolt: 92 Nm; new-standard bolt: 97 Nm at installation."
    assert value_answer("What torque does the new-standard bolt need?", sentence) == "97 Nm"
    assert value_answer("What torque does a standard bolt need?", sentence) == "92 Nm"


def test_the_models_number_picks_the_value_and_the_questions_numbers_never_answer() -> None:
    sentence = "Bags of 51 to 70 lb pay 75 USD; bags over 70 lb pay 150 USD."
    assert value_answer("What is the fee for a bag over 70 lb?", sentence, generated="150") == "150 USD"
    assert value_answer("What happened in 1856?", "It was 1856.") is None
    assert value_answer("How many bolts?", "Install the bolts dry.") is None


def test_value_questions() -> None:
    assert asks_for_value("How often is an A-check done on the E175?")
    assert asks_for_value("What is the installation torque of the hub bolt?")
    assert asks_for_value("In what year did the war end?")
    assert asks_for_value("When did Raffles land?")
    assert not asks_for_value("Who founded the company?")
    assert not asks_for_value("Where was Wilson born?")


def test_a_quoted_answer_to_a_value_question_is_the_value_with_its_citation() -> None:
    """Before, the answer was the whole sentence (answer F1 ~0.3 against the gold "14.5 US qt")."""
    lm = DummyLM([{"answer": "The oil tank", "citations": [1]}], adapter=dspy.JSONAdapter())
    program = RAGChatbot(lambda q, p, k: [OIL], config=RAGConfig(answer_style="quote"))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = program(question="What is the total oil tank capacity of the PW127M engine?", principal=ALICE)
    assert result.answer == "14.5 US qt" and [c["chunk_id"] for c in result.citations] == ["d1:1:0"]


def test_value_answers_can_be_turned_off() -> None:
    lm = DummyLM([{"answer": "The oil tank", "citations": [1]}], adapter=dspy.JSONAdapter())
    program = RAGChatbot(lambda q, p, k: [OIL], config=RAGConfig(answer_style="quote", value_answers=False))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        result = program(question="What is the total oil tank capacity of the PW127M engine?", principal=ALICE)
    assert result.answer.startswith("The PW127M oil tank holds 14.5 US qt")


def test_section_numbers_pronouns_and_late_whens() -> None:
    card = "2.1 Scheduled: blades every 1,500 engine flight cycles."
    assert value_answer("How often are the blades borescoped?", card) == "every 1,500 engine flight cycles"
    assert value_answer("What is the taxi fuel?", "Fuel Policy > 8.1.3 Taxi fuel by station") is None
    assert value_answer("When did he publish it?", "In 1821 he published another memoir.") == "1821"
    assert not asks_for_value("Who was President when Wilson finished his book?")
