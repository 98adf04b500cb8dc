from __future__ import annotations

import json
import re
from typing import Literal

import dspy
import pytest
from dspy.adapters.json_adapter import _get_structured_outputs_response_format

from flywheel.lm.grammar import budget_shape, compiled_grammar, grammar_for, schema_to_gbnf


class Ticket(dspy.Signature):
    """Route a maintenance ticket."""

    text: str = dspy.InputField()
    reasoning: str = dspy.OutputField()
    team: Literal["mechanics", "pilots", "customer support"] = dspy.OutputField()
    priority: int = dspy.OutputField()
    tags: list[str] = dspy.OutputField()


def dspy_schema(signature: type[dspy.Signature]) -> dict:
    return _get_structured_outputs_response_format(signature).model_json_schema()


def test_literal_fields_become_alternatives_of_exact_strings() -> None:
    gbnf = schema_to_gbnf(dspy_schema(Ticket), string_budget=100)
    assert '"\\"mechanics\\"" ws' in gbnf
    assert '"\\"customer support\\"" ws' in gbnf
    assert "char{0,100}" in gbnf
    compiled_grammar(gbnf)  # llama.cpp accepts it


class Answer(dspy.Signature):
    """The RAG answer step's outputs (reasoning is added by ChainOfThought)."""

    question: str = dspy.InputField()
    reasoning: str = dspy.OutputField()
    answer: str = dspy.OutputField()
    citations: list[int] = dspy.OutputField()
    found: bool = dspy.OutputField()


@pytest.mark.parametrize("signature", [Ticket, Answer])
@pytest.mark.parametrize("max_tokens", [300, 400, 768])
def test_the_longest_answer_the_grammar_allows_fits_max_tokens(signature: type, max_tokens: int) -> None:
    """Regression: unbounded integer arrays let a looping model run past max_tokens (a parse error)."""
    schema = dspy_schema(signature)
    gbnf = grammar_for({"type": "json_schema", "json_schema": {"schema": schema}}, max_tokens)
    assert gbnf is not None
    bound = int(re.search(r"char\{0,(\d+)\}", gbnf).group(1))
    worst: dict = {}
    for name, spec in schema["properties"].items():
        if spec.get("type") == "string" and "enum" not in spec:
            worst[name] = "x" * bound
        elif spec.get("type") == "array":
            item = spec["items"].get("type")
            worst[name] = ["x" * bound] * 8 if item == "string" else [-999999999] * 8
        elif spec.get("type") == "integer":
            worst[name] = -999999999
        elif spec.get("type") == "boolean":
            worst[name] = False
        else:
            worst[name] = max(spec["enum"], key=len)
    assert len(json.dumps(worst)) <= max_tokens  # one token is at least one character
    assert "{0,7}" in gbnf  # arrays hold at most 8 items
    strings, _ = budget_shape(schema)
    assert strings == (1 + 8 if signature is Ticket else 2)


def test_free_text_requests_are_not_constrained() -> None:
    assert grammar_for(None, 100) is None
    assert grammar_for({"type": "text"}, 100) is None


def test_json_mode_without_schema_uses_the_generic_json_grammar() -> None:
    gbnf = grammar_for({"type": "json_object"}, 100)
    assert gbnf is not None and gbnf.strip().startswith("root")
    compiled_grammar(gbnf)


def test_unsupported_constructs_fall_back_to_llama_cpp_converter() -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}}}
    gbnf = schema_to_gbnf(schema, string_budget=50)
    compiled_grammar(gbnf)
    assert "code" in gbnf


@pytest.mark.parametrize("value", ["plain", 'quote " and \\ backslash', "ünïcödé"])
def test_const_literals_are_escaped(value: str) -> None:
    gbnf = schema_to_gbnf({"type": "object", "properties": {"v": {"const": value}}}, string_budget=10)
    compiled_grammar(gbnf)
    assert json.dumps(value, ensure_ascii=False).replace("\\", "\\\\").replace('"', '\\"') in gbnf
