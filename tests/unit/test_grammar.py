from __future__ import annotations

import json
from typing import Literal

import dspy
import pytest
from dspy.adapters.json_adapter import _get_structured_outputs_response_format

from flywheel.lm.grammar import compiled_grammar, count_string_fields, grammar_for, schema_to_gbnf


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


def test_budget_keeps_all_strings_within_max_tokens() -> None:
    schema = dspy_schema(Ticket)
    assert count_string_fields(schema) == 1 + 4  # reasoning + up to 4 tag strings budgeted
    gbnf = grammar_for({"type": "json_schema", "json_schema": {"schema": schema}}, max_tokens=548)
    assert gbnf is not None and "char{0,100}" in gbnf


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
