"""JSON schema → GBNF grammar for constrained decoding with llama.cpp.

DSPy's JSONAdapter describes a signature's outputs as a JSON schema (``Literal`` fields become
``enum``). Decoding under the grammar of that schema makes every answer parse. Strings get a
length bound (written with GBNF's native ``{0,n}`` repetition) so that even a model stuck in a
loop closes its strings and its object before ``max_tokens`` runs out: the sum of the bounds plus
the fixed JSON structure stays within the token budget, so the output is always complete JSON.

Schemas outside the supported subset (``pattern``, ``oneOf``…) fall back to llama.cpp's own
converter, without length bounds.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llama_cpp import LlamaGrammar

_CHAR = r'[^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_PRIMITIVES = {
    "ws": "[ ]?",
    "char": _CHAR,
    "string": '"\\"" char{0,%d} "\\"" ws',
    "integer": '"-"? ([0-9] | [1-9] [0-9]{0,8}) ws',
    "number": '"-"? ([0-9] | [1-9] [0-9]{0,8}) ("." [0-9]{1,8})? ([eE] [-+]? [0-9]{1,2})? ws',
    "boolean": '("true" | "false") ws',
    "null": '"null" ws',
}
_MAX_ARRAY_ITEMS = 8
# Worst-case characters of each bounded primitive, value plus trailing space (see _PRIMITIVES).
_FIXED_CHARS = {"integer": 11, "number": 25, "boolean": 6, "null": 5}


class UnsupportedSchema(ValueError):
    """The schema uses a construct this converter does not handle."""


class _Converter:
    def __init__(self, root: dict[str, Any], string_budget: int) -> None:
        self.root = root
        self.string_budget = string_budget
        self.rules: dict[str, str] = {}

    def rule(self, name: str, body: str) -> str:
        safe = re.sub(r"[^a-zA-Z0-9-]+", "-", name).strip("-").lower() or "r"
        candidate, n = safe, 1
        while candidate in self.rules and self.rules[candidate] != body:
            n += 1
            candidate = f"{safe}-{n}"
        self.rules[candidate] = body
        return candidate

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if ref is None:
            return schema
        if not ref.startswith("#/"):
            raise UnsupportedSchema(f"external $ref {ref}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        return self.resolve(node)

    def visit(self, schema: dict[str, Any], name: str) -> str:
        schema = self.resolve(schema)
        if "const" in schema:
            return self.literal(schema["const"])
        if "enum" in schema:
            return "(" + " | ".join(self.literal(v) for v in schema["enum"]) + ")"
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.visit(s, f"{name}-{i}") for i, s in enumerate(schema[key])]
                return "(" + " | ".join(options) + ")"
        if any(k in schema for k in ("pattern", "allOf", "not", "patternProperties")):
            raise UnsupportedSchema("pattern/allOf/not")
        kind = schema.get("type")
        if isinstance(kind, list):
            return "(" + " | ".join(self.visit({**schema, "type": k}, name) for k in kind) + ")"
        if kind == "string":
            bound = min(int(schema.get("maxLength", self.string_budget)), self.string_budget)
            return self.rule(f"string-{bound}", _PRIMITIVES["string"] % bound)
        if kind in ("integer", "number", "boolean", "null"):
            return self.rule(kind, _PRIMITIVES[kind])
        if kind == "array":
            item = self.visit(schema.get("items", {"type": "string"}), f"{name}-item")
            most = min(int(schema.get("maxItems", _MAX_ARRAY_ITEMS)), _MAX_ARRAY_ITEMS)
            body = f'"[" ws ({item} ("," ws {item}){{0,{max(most - 1, 0)}}})? "]" ws'
            return self.rule(f"{name}-array", body)
        if kind == "object" or "properties" in schema:
            return self.obj(schema, name)
        raise UnsupportedSchema(f"type {kind!r}")

    def obj(self, schema: dict[str, Any], name: str) -> str:
        props: dict[str, Any] = schema.get("properties") or {}
        if not props:
            raise UnsupportedSchema("free-form object")
        # Structured-output schemas list every property as required: emit them in order.
        parts = []
        for i, (key, sub) in enumerate(props.items()):
            value = self.visit(sub, f"{name}-{key}")
            sep = '"," ws ' if i else ""
            parts.append(f'{sep}{self.literal(key)} ":" ws {value}')
        return self.rule(f"{name}-object", '"{" ws ' + " ".join(parts) + ' "}" ws')

    @staticmethod
    def literal(value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False)
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" ws'


def budget_shape(schema: dict[str, Any]) -> tuple[int, int]:
    """(free-text strings, worst-case characters of everything else) for a schema, for budgeting.

    Arrays count ``_MAX_ARRAY_ITEMS`` times their item; alternatives count their largest option.
    """
    root = schema

    def walk(node: Any, depth: int = 0) -> tuple[int, int]:
        if depth > 20 or not isinstance(node, dict):
            return 0, 0
        if "$ref" in node and node["$ref"].startswith("#/"):
            target: Any = root
            for part in node["$ref"][2:].split("/"):
                target = target.get(part, {})
            return walk(target, depth + 1)
        if "const" in node:
            return 0, len(json.dumps(node["const"])) + 1
        if "enum" in node:
            return 0, max((len(json.dumps(v)) for v in node["enum"]), default=0) + 1
        options = [walk(s, depth + 1) for key in ("anyOf", "oneOf") for s in node.get(key, [])]
        if options:
            return max(o[0] for o in options), max(o[1] for o in options)
        kind = node.get("type")
        if kind == "string":
            return 1, 3
        if kind in _FIXED_CHARS:
            return 0, _FIXED_CHARS[kind]
        if kind == "array":
            strings, fixed = walk(node.get("items", {"type": "string"}), depth + 1)
            return strings * _MAX_ARRAY_ITEMS, (fixed + 2) * _MAX_ARRAY_ITEMS + 3
        strings, fixed = 0, 3
        for key, sub in (node.get("properties") or {}).items():
            sub_strings, sub_fixed = walk(sub, depth + 1)
            strings, fixed = strings + sub_strings, fixed + sub_fixed + len(json.dumps(key)) + 3
        return strings, fixed

    return walk(schema)


def schema_to_gbnf(schema: dict[str, Any], *, string_budget: int) -> str:
    """A GBNF grammar whose sentences are exactly the JSON documents valid under ``schema``.

    ``string_budget`` bounds every string's length in characters (one character is at most one
    token, so bounding characters bounds tokens).
    """
    converter = _Converter(schema, max(string_budget, 1))
    try:
        root = converter.visit(schema, "root")
    except (UnsupportedSchema, KeyError, TypeError):
        # Lazy (start-up time): only this path needs llama.cpp.
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        return json_schema_to_gbnf(json.dumps(schema))
    lines = [f"root ::= {root}"]
    lines += [f"{name} ::= {body}" for name, body in converter.rules.items()]
    lines += [f"{name} ::= {body}" for name, body in _PRIMITIVES.items() if name in ("ws", "char")]
    return "\n".join(lines) + "\n"


JSON_OBJECT_GBNF = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value){0,63} )? "}" ws
array  ::= "[" ws ( value ("," ws value){0,63} )? "]" ws
string ::= "\"" ([^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})){0,2000} "\"" ws
number ::= "-"? ([0-9] | [1-9] [0-9]{0,15}) ("." [0-9]{1,12})? ([eE] [-+]? [0-9]{1,3})? ws
ws     ::= [ \t\n]{0,4}
"""


# Tokens kept back beyond the schema's worst-case structure (a leading space, the end token).
_SAFETY_TOKENS = 8
# No string is bounded below this; a schema too large for max_tokens may then still be cut short.
_MIN_STRING_BUDGET = 8


@lru_cache(maxsize=128)
def compiled_grammar(gbnf: str) -> LlamaGrammar:
    """The llama.cpp grammar object for ``gbnf`` (compiled once per process)."""
    # Lazy (start-up time): only this path needs llama.cpp.
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(gbnf, verbose=False)


def _schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | str | None:
    """The JSON schema a response_format asks for; "json" for schema-less JSON mode; None for text."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or response_format
        schema = spec.get("schema")
        return schema if isinstance(schema, dict) else "json"
    if kind == "json_object":
        return "json"
    if "schema" in response_format and isinstance(response_format["schema"], dict):
        return response_format["schema"]
    return None


def grammar_for(response_format: dict[str, Any] | None, max_tokens: int) -> str | None:
    """GBNF for a response_format, with string bounds that fit ``max_tokens``; None for free text."""
    schema = _schema_of(response_format)
    if schema is None:
        return None
    if schema == "json":
        return JSON_OBJECT_GBNF
    assert isinstance(schema, dict)
    strings, fixed = budget_shape(schema)
    budget = max((max_tokens - fixed - _SAFETY_TOKENS) // max(strings, 1), _MIN_STRING_BUDGET)
    return schema_to_gbnf(schema, string_budget=budget)
