"""End-to-end fixtures: the real embedded model, loaded once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dspy
import pytest

from flywheel.config import LMSettings, load_settings
from flywheel.knowledge.base import KnowledgeBase
from flywheel.lm import build_lm

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def embedded_lm() -> Iterator[dspy.LM]:
    """The embedded SmolLM2 behind dspy.LM, uncached so every call really decodes."""
    yield build_lm(LMSettings(cache=False, pool_size=2))


def load_samples(kb: KnowledgeBase) -> None:
    """Users, groups and every document of samples/, as `flywheel users import` + `docs import` do."""
    import yaml

    users = yaml.safe_load((SAMPLES / "users.yaml").read_text(encoding="utf-8"))
    for group in users["groups"]:
        kb.catalog.add_group(group["name"], group.get("description", ""))
    for user in users["users"]:
        kb.catalog.add_user(user["name"], user.get("groups", []), is_admin=bool(user.get("admin")))
    for entry in yaml.safe_load((SAMPLES / "knowledge" / "manifest.yaml").read_text(encoding="utf-8")):
        path = SAMPLES / "knowledge" / entry["path"]
        results = kb.ingest_files(
            kb.principal(entry["owner"]),
            [(path.name, path.read_bytes())],
            groups=entry["groups"],
            tags=entry.get("tags", []),
            titles={path.name: entry["title"]} if entry.get("title") else None,
        )
        assert results[0].status == "added", results[0]


@pytest.fixture(scope="session")
def sample_knowledge(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The sample knowledge base, ingested once per test session into its own home."""
    kb = KnowledgeBase(load_settings(home=tmp_path_factory.mktemp("samples-home")))
    load_samples(kb)
    return kb
