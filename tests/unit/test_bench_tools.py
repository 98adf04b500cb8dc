"""The benchmark tools' pure parts: the stub LM's schema → instance generator, the load generator's
percentiles. No servers, no timing asserts."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from bench.loadgen import LoadResult, RequestSpec, merge, percentile, run_load
from bench.stub_lm import TEXT_ANSWER, StubLM, answer_for, instance


def test_instance_covers_the_structured_output_subset() -> None:
    schema = {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string"},
            "answer": {"type": "string", "minLength": 6, "maxLength": 8},
            "citations": {"type": "array", "items": {"type": "integer", "minimum": 1}},
            "found": {"type": "boolean"},
            "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.9},
            "team": {"enum": ["mechanics", "pilots"]},
            "kind": {"const": "rag"},
            "maybe": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/Item"}]},
            "empty": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
            "pair": {"type": ["null", "integer"]},
        },
        "required": ["reasoning", "answer"],
        "$defs": {"Item": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    value = instance(schema)
    assert value["reasoning"] == "stub"
    assert 6 <= len(value["answer"]) <= 8
    assert value["citations"] == [1]
    assert value["found"] is True
    assert 0 < value["score"] <= 0.9
    assert value["team"] == "mechanics"
    assert value["kind"] == "rag"
    assert value["maybe"] == {"name": "stub"}
    assert value["empty"] == []
    assert value["pair"] == 1


def test_answer_for_dspy_json_schema_and_plain_text() -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "Out",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"answer": {"type": "string"}, "found": {"type": "boolean"}},
                "required": ["answer", "found"],
                "additionalProperties": False,
            },
        },
    }
    assert json.loads(answer_for({"response_format": fmt})) == {"answer": "stub", "found": True}
    assert answer_for({"messages": [{"role": "user", "content": "hi"}]}) == TEXT_ANSWER
    assert answer_for({"response_format": {"type": "json_object"}}) == "{}"


def test_stub_completion_counts_and_rejects_bad_json() -> None:
    stub = StubLM(latency_s=0.0)
    status, _, payload = asyncio.run(stub.complete(b'{"messages": [{"role": "user", "content": "q"}]}'))
    assert status.startswith("200")
    assert json.loads(payload)["choices"][0]["message"]["content"] == TEXT_ANSWER
    assert stub.requests == 1
    status, _, _ = asyncio.run(stub.complete(b"not json"))
    assert status.startswith("400")


def test_percentile_interpolates_like_numpy() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 50) == pytest.approx(5.5)
    assert percentile(values, 95) == pytest.approx(9.55)
    assert percentile(values, 99) == pytest.approx(9.91)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 10.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) != percentile([], 50)  # NaN
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_load_result_and_merge() -> None:
    a = LoadResult(4, [0.1, 0.3], 1, 2.0)
    b = LoadResult(4, [0.2], 0, 1.0)
    merged = merge([a, b])
    assert merged.ok == 3 and merged.errors == 1
    assert merged.throughput == pytest.approx(1.0)
    assert merged.p50 == pytest.approx(0.2)
    assert merged.mean == pytest.approx(0.2)


def test_run_load_is_bounded_and_counts_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500 if request.url.path == "/bad" else 200, json={"ok": True})

    async def go() -> LoadResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await run_load(
                lambda i: RequestSpec("http://x/bad" if i % 5 == 4 else "http://x/ok", {}),
                concurrency=3,
                requests=20,
                warmup=2,
                client=client,
                keep_responses=True,
            )

    result = asyncio.run(go())
    assert result.ok + result.errors == 20
    assert result.errors == 4  # requests 2..21 (after the warm-up), every fifth one fails
    assert len(result.responses) == result.ok


def test_interleaved_rounds_give_median_throughputs_and_paired_ratios() -> None:
    from bench.serve import Measured, combine, paired_ratio

    def run(requests: int, seconds: float) -> Measured:
        return Measured(LoadResult(8, [0.1] * requests, 0, seconds), 0.05, 1.0, 0.01, 0.1)

    # round 2 ran on a slow spell of the machine for both services
    flywheel = combine([run(30, 1.0), run(30, 3.0), run(30, 1.0)])
    langchain = combine([run(20, 1.0), run(20, 3.0), run(20, 1.0)])
    assert flywheel.rounds == [30.0, 10.0, 30.0] and flywheel.throughput == 30.0
    assert paired_ratio(flywheel, langchain) == pytest.approx(1.5)
    assert flywheel.result.throughput == pytest.approx(90 / 5.0)  # the merged run still holds every request
    single = run(10, 2.0)
    assert single.throughput == 5.0 and paired_ratio(single, run(5, 2.0)) == 2.0
