"""Language models for DSPy programs: the embedded llama.cpp engine and OpenAI-compatible endpoints."""

from flywheel.lm.factory import build_lm, configure_dspy, embedded_engine
from flywheel.lm.failures import is_lm_exception, lm_failure

__all__ = ["build_lm", "configure_dspy", "embedded_engine", "is_lm_exception", "lm_failure"]
