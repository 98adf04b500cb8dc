"""The embedded model through DSPy: every structured answer parses, under concurrency too."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import dspy
import pytest

CONTEXT_QUESTIONS = [
    ("The ATR 72-600 has two Pratt & Whitney PW127M turboprop engines.", "Which engines power the ATR 72-600?"),
    ("Engine oil must be checked within 30 minutes after shutdown.", "When should engine oil be checked?"),
    ("Tire pressure on the E175 main gear is 158 psi unloaded.", "What is the E175 main gear tire pressure?"),
    ("Boise is the airline's largest hub, with 44 daily departures.", "How many daily departures leave Boise?"),
    ("Passengers may carry one personal item and one cabin bag.", "How many cabin bags may a passenger carry?"),
    ("De-icing fluid Type IV has a holdover time of 35 to 75 minutes in light snow.", "What is Type IV holdover?"),
    ("The APU must not be started during refuelling.", "Can the APU be started while refuelling?"),
    ("Brake wear pins flush with the housing mean the brake must be replaced.", "When is a brake replaced?"),
    ("Flight attendants secure the galley before taxi.", "Who secures the galley before taxi?"),
    ("Lost baggage claims must be filed within 21 days.", "How long do passengers have to file a claim?"),
    ("Propeller blades are inspected every 600 flight hours.", "How often are propeller blades inspected?"),
    ("The company was founded in 1998 in Spokane.", "Where was the company founded?"),
    ("Pets under 9 kg may travel in the cabin in an approved carrier.", "What is the cabin pet weight limit?"),
    ("Fuel policy requires 45 minutes of final reserve fuel.", "What final reserve fuel is required?"),
    ("Refunds go back to the original form of payment within 7 days.", "How are refunds paid?"),
    ("The E175 seats 76 passengers in two classes.", "How many passengers does the E175 seat?"),
    ("A borescope inspection follows any bird strike on an engine.", "What follows an engine bird strike?"),
    ("Cabin crew brief exit-row passengers before departure.", "Who is briefed before departure?"),
    ("Delays over three hours earn a meal voucher.", "What does a delay over three hours earn?"),
    ("MEL category C items must be fixed within 10 calendar days.", "How long for an MEL category C item?"),
    ("The hydraulic system uses Skydrol LD-4 fluid.", "Which hydraulic fluid is used?"),
    ("Wheelchair assistance can be requested up to 48 hours before departure.", "When to request a wheelchair?"),
    ("The oxygen mask drops automatically above 14,000 feet cabin altitude.", "When do oxygen masks drop?"),
    ("Pilots must complete cold-weather training every October.", "When is cold-weather training?"),
    ("Unaccompanied minors aged 5 to 14 pay a 100 dollar fee.", "What is the unaccompanied minor fee?"),
    ("Torque the wheel nut to 150 Nm, then back off and re-torque to 45 Nm.", "What is the final wheel nut torque?"),
    ("Reno has a single runway suitable for the ATR.", "How many runways at Reno suit the ATR?"),
    ("The first-aid kit is checked before each first flight of the day.", "When is the first-aid kit checked?"),
    ("Complaints are answered within 5 business days.", "How fast are complaints answered?"),
    ("", "What colour is the sky on a clear day?"),
]

TWEETS = [
    "@SkylarkAir lost my bag again, worst airline ever",
    "@SkylarkAir thanks for the upgrade, lovely crew!",
    "@SkylarkAir what time does the Boise lounge open?",
    "@SkylarkAir 3 hour delay and no explanation. unacceptable",
    "@SkylarkAir great landing in the snow today, well done pilots",
    "@SkylarkAir is wifi available on the E175?",
    "@SkylarkAir cancelled my flight and rebooked me for tomorrow. ruined my trip",
    "@SkylarkAir the flight attendant was rude to my mother",
    "@SkylarkAir love the new seats",
    "@SkylarkAir how do I add a bag to my booking?",
    "@SkylarkAir booking site crashed twice, still can't check in",
    "@SkylarkAir on time and friendly as always",
    "@SkylarkAir my suitcase arrived broken",
    "@SkylarkAir do you fly to Seattle?",
    "@SkylarkAir 45 min on hold, nobody answers",
    "@SkylarkAir best customer service I've had in years, thank you Jen!",
    "@SkylarkAir the line at check-in was an hour long",
    "@SkylarkAir flight 212 departed early, nice",
    "@SkylarkAir can I bring my cat in the cabin?",
    "@SkylarkAir my refund still hasn't arrived after 3 weeks",
    "@SkylarkAir smooth flight, tasty snacks",
    "@SkylarkAir why is my seat not reclining",
    "@SkylarkAir what's the baggage allowance for international?",
    "@SkylarkAir the crew handled the medical emergency perfectly",
    "@SkylarkAir stuck on the tarmac for 2 hours, no water",
    "@SkylarkAir ok",
    "@SkylarkAir they charged me twice for the same ticket",
    "@SkylarkAir Reno to Boise was quick and easy",
    "@SkylarkAir gate agent refused to help",
    "@SkylarkAir is the 6am flight usually full?",
]


class FeedbackSentiment(dspy.Signature):
    """Classify an airline customer's message."""

    text: str = dspy.InputField(desc="A customer's message")
    sentiment: Literal["negative", "neutral", "positive"] = dspy.OutputField(desc="Overall sentiment")
    topic: Literal["baggage", "delay", "staff", "booking", "comfort", "other"] = dspy.OutputField()


def test_chain_of_thought_answers_parse_on_30_inputs(embedded_lm: dspy.LM) -> None:
    program = dspy.ChainOfThought("context, question -> answer")
    with dspy.context(lm=embedded_lm, adapter=dspy.JSONAdapter()):
        results = [program(context=c or "(none)", question=q) for c, q in CONTEXT_QUESTIONS]
    # An adapter parse error raises; on top of that every field must be present and a string.
    assert len(results) == 30
    for result in results:
        assert isinstance(result.reasoning, str)
        assert isinstance(result.answer, str) and result.answer.strip()


def test_literal_outputs_are_always_valid_choices(embedded_lm: dspy.LM) -> None:
    program = dspy.Predict(FeedbackSentiment)
    with dspy.context(lm=embedded_lm, adapter=dspy.JSONAdapter()):
        results = [program(text=t) for t in TWEETS]
    assert {r.sentiment for r in results} <= {"negative", "neutral", "positive"}
    assert {r.topic for r in results} <= {"baggage", "delay", "staff", "booking", "comfort", "other"}
    assert len(results) == 30


def test_token_usage_is_reported(embedded_lm: dspy.LM) -> None:
    with dspy.context(lm=embedded_lm, adapter=dspy.JSONAdapter()):
        dspy.Predict("question -> answer")(question="Name a colour.")
    usage = embedded_lm.history[-1]["usage"]
    assert usage["prompt_tokens"] > 10
    assert usage["completion_tokens"] > 0


def test_eight_threads_at_once_all_succeed(embedded_lm: dspy.LM) -> None:
    program = dspy.Predict(FeedbackSentiment)

    def classify(text: str) -> str:
        with dspy.context(lm=embedded_lm, adapter=dspy.JSONAdapter()):
            return program(text=text).sentiment

    with ThreadPoolExecutor(max_workers=8) as pool:
        labels = list(pool.map(classify, TWEETS[:16]))
    assert len(labels) == 16
    assert set(labels) <= {"negative", "neutral", "positive"}


def test_a_runaway_answer_still_parses_when_the_token_budget_is_tiny(embedded_lm: dspy.LM) -> None:
    """The grammar bounds strings by the budget, so even a cut-short answer is complete JSON."""
    tight = embedded_lm.copy(max_tokens=80)
    with dspy.context(lm=tight, adapter=dspy.JSONAdapter()):
        result = dspy.ChainOfThought("question -> answer")(question="Write a long essay about aircraft engines.")
    assert isinstance(result.answer, str)


@pytest.mark.parametrize("pool_size", [1, 3])
def test_pool_never_lends_one_context_to_two_threads(pool_size: int) -> None:
    from flywheel.lm.embedded import LlamaCppEngine

    engine = LlamaCppEngine(pool_size=pool_size)
    in_use: set[int] = set()
    overlaps: list[int] = []

    def hold(_: int) -> None:
        with engine.context() as llm:
            if id(llm) in in_use:
                overlaps.append(id(llm))
            in_use.add(id(llm))
            llm.tokenize(b"hello world")
            in_use.discard(id(llm))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(hold, range(64)))
    assert not overlaps
    assert engine._created <= pool_size
    engine.close()


def test_option_scores_of_a_prompt_are_computed_once(embedded_lm: dspy.LM, monkeypatch: pytest.MonkeyPatch) -> None:
    """An optimizer's designs that share a prompt score it once: the second call evaluates nothing."""
    import llama_cpp

    messages = [{"role": "user", "content": f"Is the sky blue? ({uuid.uuid4()})"}]
    first = embedded_lm.engine.option_logprobs(messages, '{"answer": "', ("yes", "no"))

    def no_eval(*_: object, **__: object) -> None:
        raise AssertionError("the prompt was evaluated again")

    monkeypatch.setattr(llama_cpp.Llama, "eval", no_eval)
    assert embedded_lm.engine.option_logprobs(messages, '{"answer": "', ("yes", "no")) == first


def test_shared_lm_calls_answer_a_repeated_request_once_with_the_cache_off(
    embedded_lm: dspy.LM, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.optimize.rag_search import shared_lm_calls

    engine = embedded_lm.engine
    calls: list[object] = []
    complete = engine.complete
    monkeypatch.setattr(engine, "complete", lambda request: calls.append(request) or complete(request))
    question = f"What colour is the sky? ({uuid.uuid4()})"
    with dspy.context(lm=embedded_lm, adapter=dspy.JSONAdapter()):
        with shared_lm_calls():
            first = dspy.Predict("question -> answer")(question=question)
            again = dspy.Predict("question -> answer")(question=question)
        assert len(calls) == 1 and first.answer == again.answer
        dspy.Predict("question -> answer")(question=question)  # outside: the configured LM, uncached
    assert len(calls) == 2
