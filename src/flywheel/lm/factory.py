"""Building the configured ``dspy.LM``: the embedded engine or an OpenAI-compatible endpoint."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from flywheel.config import LMSettings, Settings
from flywheel.errors import ConfigError

if TYPE_CHECKING:
    import dspy

    from flywheel.lm.embedded import LlamaCppEngine

EMBEDDED_MODEL_PREFIX = "embedded"
# Provider id under which configured OpenAI-compatible endpoints are declared to DSPy's native
# engine, so that the JSON-schema response_format (structured outputs) is sent to them.
ENDPOINT_PROVIDER = "flywheel-openai"

_engines: dict[tuple[object, ...], LlamaCppEngine] = {}
_engines_lock = threading.Lock()


def embedded_engine(settings: LMSettings) -> LlamaCppEngine:
    """The process-wide engine for these settings (one model load per process)."""
    # Lazy (start-up time): only this path needs llama.cpp.
    from flywheel.lm.embedded import LlamaCppEngine

    key = (settings.model_path, settings.n_ctx, settings.n_threads, settings.pool_size, settings.repeat_penalty)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = LlamaCppEngine(
                settings.model_path,
                n_ctx=settings.n_ctx,
                n_threads=settings.n_threads,
                pool_size=settings.pool_size,
                default_max_tokens=settings.max_tokens,
                repeat_penalty=settings.repeat_penalty,
            )
            _engines[key] = engine
        return engine


def _declare_endpoint_provider(structured_outputs: bool) -> str:
    """Declare OpenAI-compatible endpoints to DSPy, stating whether they honour JSON schemas."""
    # Lazy (start-up time): only this path needs DSPy.
    from dspy.lm15 import ModelSupport, ProviderDefinition, register_provider
    from dspy.lm15 import registered_providers as registered

    provider_id = ENDPOINT_PROVIDER if structured_outputs else f"{ENDPOINT_PROVIDER}-plain"
    if any(p.id == provider_id for p in registered()):
        return provider_id
    # Lazy (start-up time): only this path needs DSPy.
    from dspy._vendor.lm15.features import AccessPolicy

    # The address here is only a default: every LM passes its own api_base.
    access = AccessPolicy(provider=provider_id, base_url="http://localhost:8000/v1")
    # vLLM's spellings are the plain OpenAI Chat Completions wire most servers speak.
    definition = ProviderDefinition.chat(access, compat="vllm", placeholder_key="none")
    register_provider(definition, supports=ModelSupport(response_schema=structured_outputs, function_calling=False))
    return provider_id


def build_lm(settings: LMSettings) -> dspy.LM:
    """A ``dspy.LM`` for these settings (a :class:`~flywheel.lm.bounded.BoundedLM`: deadline-aware, bounded
    retries). Remote keys are read from the environment here."""
    # Lazy (start-up time): only this path needs DSPy.
    from flywheel.lm.bounded import BoundedLM

    if settings.provider == "embedded":
        return BoundedLM(
            f"{EMBEDDED_MODEL_PREFIX}/{settings.model}",
            engine=embedded_engine(settings),
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            cache=settings.cache,
        )
    if not settings.api_base:
        raise ConfigError(
            f"The LM provider is '{settings.provider}' but no api_base is set.",
            hint="Set FLYWHEEL_LM__API_BASE (e.g. http://127.0.0.1:8081/v1) or lm.api_base in flywheel.toml.",
        )
    provider = _declare_endpoint_provider(settings.structured_outputs)
    return BoundedLM(  # Flywheel retries (bounded, deadline-aware); see flywheel.lm.bounded
        f"{provider}/{settings.model}",
        api_base=settings.api_base,
        api_key=settings.api_key() or "none",
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
        max_retry_wait_s=settings.max_retry_wait_s,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        cache=settings.cache,
    )


def configure_dspy(settings: Settings, lm: dspy.LM | None = None) -> dspy.LM:
    """Point DSPy's cache at FLYWHEEL_HOME and make the configured LM the default.

    Flywheel uses DSPy's JSONAdapter: it describes outputs as a JSON schema, which the embedded
    engine (and structured-output endpoints) enforce while decoding; :class:`CachingJSONAdapter`
    builds each signature's system message and schema once.
    """
    # Lazy (start-up time): only this path needs DSPy.
    import dspy

    from flywheel.lm.adapter import CachingJSONAdapter

    settings.ensure_dirs()
    dspy.configure_cache(disk_cache_dir=str(settings.dspy_cache_dir))
    lm = lm or build_lm(settings.lm)
    dspy.configure(lm=lm, adapter=CachingJSONAdapter())
    return lm
