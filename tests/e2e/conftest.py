"""End-to-end fixtures: the real embedded model, loaded once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import dspy
import pytest

from flywheel.config import LMSettings
from flywheel.lm import build_lm


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def embedded_lm() -> Iterator[dspy.LM]:
    """The embedded SmolLM2 behind dspy.LM, uncached so every call really decodes."""
    yield build_lm(LMSettings(cache=False, pool_size=2))
