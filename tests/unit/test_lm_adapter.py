"""CachingJSONAdapter: the same prompts and requests as DSPy's JSONAdapter, with the per-signature parts built once."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import dspy
import httpx
import pytest
from dspy.adapters import json_adapter

from flywheel.config import LMSettings
from flywheel.lm import build_lm
from flywheel.lm.adapter import CachingJSONAdapter
from flywheel.programs.rag import AnswerFromPassages, as_history

from .serve_helpers import stub_lm_base

INPUTS = {
    "passages": "[1] Engine oil is changed every 50 hours.\n[2] Spark plugs are checked at each annual.",
    "history": as_history([{"question": "What about oil?", "answer": "every 50 hours"}]),
    "question": "How often are spark plugs checked?",
}


def _answer_signature() -> type[dspy.Signature]:
    return dspy.ChainOfThought(AnswerFromPassages).predict.signature


def _request_sent(base: str, adapter: dspy.Adapter, signature: type[dspy.Signature]) -> dict[str, Any]:
    lm = build_lm(LMSettings(provider="openai", api_base=base, model="stub", cache=False))
    with dspy.context(lm=lm, adapter=adapter):
        dspy.Predict(signature)(**INPUTS)
    return httpx.get(base.removesuffix("/v1") + "/last", timeout=10).json()


def test_requests_are_identical_to_the_json_adapters_call_after_call() -> None:
    base = stub_lm_base()
    signature = _answer_signature()
    plain = [_request_sent(base, dspy.JSONAdapter(), signature) for _ in range(2)]
    caching = CachingJSONAdapter()
    cached = [_request_sent(base, caching, signature) for _ in range(3)]
    assert plain[0]["messages"] and plain[0]["response_format"]["type"] == "json_schema"
    assert plain[0] == plain[1]
    assert all(body == plain[0] for body in cached)


def test_the_response_schema_and_system_message_are_built_once_per_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[type] = []
    build = json_adapter._get_structured_outputs_response_format

    def counting(signature: type, *args: Any) -> Any:
        built.append(signature)
        return build(signature, *args)

    monkeypatch.setattr(json_adapter, "_get_structured_outputs_response_format", counting)
    base = stub_lm_base()
    signature = _answer_signature()
    adapter = CachingJSONAdapter()
    for _ in range(3):
        _request_sent(base, adapter, signature)
    # each call builds its own LM here; one schema per (signature, LM) object
    assert len(built) == 3
    lm = build_lm(LMSettings(provider="openai", api_base=base, model="stub", cache=False))
    built.clear()
    with dspy.context(lm=lm, adapter=adapter):
        for _ in range(3):
            dspy.Predict(signature)(**INPUTS)
    assert len(built) == 1


def test_instructions_changed_in_place_rebuild_the_system_message() -> None:
    signature = dspy.Signature("question -> answer", "Answer in French.")
    adapter = CachingJSONAdapter()
    first = adapter.format(signature, [], {"question": "hi"})[0]["content"]
    assert "Answer in French." in first
    signature.instructions = "Answer in German."
    second = adapter.format(signature, [], {"question": "hi"})[0]["content"]
    assert "Answer in German." in second and "French" not in second
    assert second == dspy.JSONAdapter().format(signature, [], {"question": "hi"})[0]["content"]


def test_a_discarded_signature_is_not_kept_alive_by_the_cache() -> None:
    adapter = CachingJSONAdapter()
    signature = dspy.Signature("question -> answer", "Temporary.")
    adapter.format(signature, [], {"question": "hi"})
    ref = weakref.ref(signature)
    del signature
    gc.collect()
    assert ref() is None


def test_the_adapter_copies_and_pickles_like_dspys() -> None:
    import copy
    import pickle

    adapter = CachingJSONAdapter()
    signature = dspy.Signature("question -> answer", "Be brief.")
    expected = adapter.format(signature, [], {"question": "hi"})
    for clone in (copy.deepcopy(adapter), pickle.loads(pickle.dumps(adapter))):
        assert clone.format(signature, [], {"question": "hi"}) == expected
