"""Shared fixtures: every test runs with its own FLYWHEEL_HOME and no stray FLYWHEEL_* variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip: a user's clone has no ../shared (CI always does)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared/data exists only in the Flywheel workspace and CI")
    return path


@pytest.fixture(autouse=True)
def flywheel_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("flywheel-home")
    for name in list(os.environ):
        if name.startswith("FLYWHEEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    monkeypatch.chdir(home)
    return home
