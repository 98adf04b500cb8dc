"""Access control over the sample knowledge base: no canary ever reaches a user outside its groups.

For every sample user and every canary fact (a sentence with a unique token, planted in one
restricted document), the exact sentence, the bare token and several paraphrases are searched in
every mode — before and after an ANN index is built. An outsider never gets a chunk of the canary's
document (nor of any document outside their groups); an insider finds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from flywheel.config import load_settings
from flywheel.knowledge.base import KnowledgeBase

from .conftest import load_samples

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
MODES = ("hybrid", "vector", "text")


def load_yaml(name: str) -> Any:
    return yaml.safe_load((SAMPLES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sample_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """Its own copy (these tests build an ANN index on it)."""
    kb = KnowledgeBase(load_settings(home=tmp_path_factory.mktemp("acl-home")))
    load_samples(kb)
    return kb


def canary_queries(canary: dict[str, Any]) -> list[str]:
    return [canary["fact"], canary["token"], *canary["paraphrases"]]


def doc_id_of(kb: KnowledgeBase, relative_path: str) -> str:
    name = Path(relative_path).name
    (doc,) = [d for d in kb.catalog.list_documents() if d.source == name]
    return doc.id


def run_acl_sweep(kb: KnowledgeBase) -> tuple[int, int]:
    users = [u["name"] for u in load_yaml("users.yaml")["users"]]
    canaries = load_yaml("canaries.yaml")
    queries = found = 0
    for user in users:
        principal = kb.principal(user)
        for canary in canaries:
            canary_doc = doc_id_of(kb, canary["document"])
            insider = principal.can_read(canary["groups"])
            seen = False
            for query in canary_queries(canary):
                for mode in MODES:
                    hits = kb.search(principal, query, k=10, mode=mode)  # type: ignore[arg-type]
                    queries += 1
                    leaks = [h for h in hits if not principal.can_read(h.groups)]
                    assert not leaks, f"{user} got {[h.citation() for h in leaks]} for {query!r} ({mode})"
                    if not insider:
                        assert all(h.doc_id != canary_doc for h in hits), f"{user} saw canary {canary['id']}"
                        assert all(canary["token"] not in h.text for h in hits)
                    seen = seen or any(h.doc_id == canary_doc for h in hits)
            if insider:
                assert seen, f"{user} may read canary {canary['id']} but never found it"
                found += 1
    return queries, found


def test_samples_define_users_groups_and_canaries() -> None:
    canaries = load_yaml("canaries.yaml")
    assert len(canaries) >= 10
    assert len(load_yaml("users.yaml")["users"]) >= 6
    for canary in canaries:
        assert "everyone" not in canary["groups"]
        assert len(canary["paraphrases"]) >= 3


def test_no_canary_leaks_exact_search(sample_kb: KnowledgeBase) -> None:
    queries, found = run_acl_sweep(sample_kb)
    assert queries >= 300 and found > 0


def test_no_canary_leaks_with_the_ann_index(sample_kb: KnowledgeBase) -> None:
    sample_kb.index.build_ann_index()
    queries, found = run_acl_sweep(sample_kb)
    assert queries >= 300 and found > 0


def test_insiders_find_the_exact_fact_at_the_top(sample_kb: KnowledgeBase) -> None:
    users = {u["name"]: u for u in load_yaml("users.yaml")["users"]}
    for canary in load_yaml("canaries.yaml"):
        insider = next(name for name in users if sample_kb.principal(name).can_read(canary["groups"]))
        hits = sample_kb.search(sample_kb.principal(insider), canary["fact"], k=3)
        assert any(canary["token"] in h.text for h in hits), canary["id"]
