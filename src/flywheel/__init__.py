"""Flywheel: self-improving LLM pipelines (DSPy programs), self-hosted and offline by default."""

from __future__ import annotations

import os
from pathlib import Path

from flywheel.threads import use_openmp_wait_policy

__version__ = "0.1.0"

# Nothing in Flywheel may reach for the internet at run time: LiteLLM's price map, the Hugging
# Face hub and DSPy's cache location are pinned before any of them is imported.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("LANCE_LOG", "error")  # LanceDB warnings are for developers, not users
use_openmp_wait_policy()  # before torch or llama.cpp loads libgomp (flywheel.threads)
os.environ.setdefault(
    "DSPY_CACHEDIR", str(Path(os.environ.get("FLYWHEEL_HOME", "~/.flywheel")).expanduser() / "dspy_cache")
)
