"""Language models for DSPy programs: the embedded llama.cpp engine and OpenAI-compatible endpoints."""

from flywheel.lm.factory import build_lm, configure_dspy, embedded_engine
from flywheel.lm.failures import lm_failure

__all__ = ["build_lm", "configure_dspy", "embedded_engine", "lm_failure"]
