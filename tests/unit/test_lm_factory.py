from __future__ import annotations

from pathlib import Path

import dspy
import pytest
from dspy.utils import DummyLM
from dspy.utils.exceptions import LMAuthError, LMTimeoutError, LMTransportError

from flywheel.config import LMSettings, load_settings
from flywheel.errors import ConfigError, EndpointUnreachableError, LMError
from flywheel.lm import build_lm, configure_dspy, lm_failure


def test_configure_dspy_puts_the_cache_under_home_and_uses_the_json_adapter(flywheel_home: Path) -> None:
    settings = load_settings()
    lm = configure_dspy(settings, lm=DummyLM([{"answer": "42"}], adapter=dspy.JSONAdapter()))
    assert isinstance(dspy.settings.adapter, dspy.JSONAdapter)
    assert dspy.settings.lm is lm
    assert (flywheel_home / "dspy_cache").is_dir()
    assert dspy.Predict("question -> answer")(question="?").answer == "42"


def test_remote_lm_requires_an_api_base() -> None:
    with pytest.raises(ConfigError, match="no api_base"):
        build_lm(LMSettings(provider="openai"))


def test_remote_lm_declares_structured_output_support() -> None:
    lm = build_lm(LMSettings(provider="openai", api_base="http://127.0.0.1:9/v1", model="m"))
    assert lm.supports_response_schema
    plain = build_lm(LMSettings(provider="openai", api_base="http://127.0.0.1:9/v1", structured_outputs=False))
    assert not plain.supports_response_schema


def test_remote_lm_key_is_not_in_saved_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDPOINT_KEY", "sk-do-not-leak")
    lm = build_lm(LMSettings(provider="openai", api_base="http://127.0.0.1:9/v1", api_key_env="ENDPOINT_KEY"))
    assert "sk-do-not-leak" not in repr(lm.dump_state())


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (LMTimeoutError("slow"), EndpointUnreachableError, "did not answer within 3 s"),
        (LMTransportError("connection refused"), EndpointUnreachableError, "Cannot reach"),
        (LMAuthError("bad key"), LMError, "rejected the API key"),
        (RuntimeError("boom"), LMError, "failed: boom"),
    ],
)
def test_lm_failures_become_actionable_errors(error: Exception, kind: type, text: str) -> None:
    settings = LMSettings(provider="openai", api_base="http://h/v1", timeout_s=3)
    translated = lm_failure(error, settings)
    assert isinstance(translated, kind)
    assert text in translated.message
    assert translated.hint


def test_thread_budget_leaves_a_core_and_splits_the_rest_between_contexts() -> None:
    from flywheel.lm.embedded import thread_budget

    assert thread_budget(1, cores=2) == 1  # never 2 spin-waiting threads beside the embedder on 2 cores
    assert thread_budget(2, cores=2) == 1
    assert thread_budget(1, cores=16) == 15
    assert thread_budget(4, cores=16) == 3
    assert thread_budget(1, cores=1) == 1
