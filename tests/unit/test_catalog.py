from __future__ import annotations

import pytest

from flywheel.errors import InvalidInputError, NotFoundError
from flywheel.knowledge.catalog import Catalog


@pytest.fixture
def catalog(store_url: str) -> Catalog:
    return Catalog(store_url)  # on SQLite and on PostgreSQL


def test_users_groups_and_principals(catalog: Catalog) -> None:
    catalog.add_group("mechanics", "Line maintenance")
    principal = catalog.add_user("alice", ["mechanics", "pilots"], display_name="Alice")
    assert principal.groups == {"mechanics", "pilots", "everyone"}
    catalog.add_user("alice", ["cabin-crew"])  # adds, keeps the others
    assert catalog.principal("alice").groups == {"mechanics", "pilots", "cabin-crew", "everyone"}
    catalog.remove_membership("alice", "pilots")
    assert "pilots" not in catalog.principal("alice").groups
    assert {g["name"] for g in catalog.list_groups()} == {"mechanics", "pilots", "cabin-crew"}


def test_unknown_user_and_groups_are_explained(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match="Unknown user 'zed'"):
        catalog.principal("zed")
    with pytest.raises(NotFoundError, match="Unknown group"):
        catalog.require_groups(["ghosts"])
    with pytest.raises(InvalidInputError, match="at least one group"):
        catalog.require_groups([])
    assert catalog.require_groups(["everyone"]) == ["everyone"]


def test_version_lifecycle(catalog: Catalog) -> None:
    catalog.add_user("alice", ["mechanics"])
    fields = dict(title="Oil", groups=["mechanics"], tags=[], media_type="text/markdown", size_bytes=10)
    doc_id, v1 = catalog.begin_version(document_id=None, owner="alice", source="oil.md", content_hash="h1", **fields)
    assert catalog.get_document(doc_id).status == "pending"
    assert catalog.get_document(doc_id).live_version == 0
    catalog.finish_version(doc_id, v1, chunk_count=3, content_hash="h1", **fields)
    _, v2 = catalog.begin_version(document_id=doc_id, owner="alice", source="oil.md", content_hash="h2", **fields)
    assert v2 == v1 + 1
    assert catalog.get_document(doc_id).live_version == v1  # still the old one while v2 is pending
    catalog.finish_version(doc_id, v2, chunk_count=4, content_hash="h2", **fields)
    doc = catalog.get_document(doc_id)
    assert (doc.live_version, doc.content_hash, doc.status) == (v2, "h2", "ready")
    assert [v.status for v in doc.versions] == ["superseded", "ready"]
    catalog.delete_document(doc_id)
    with pytest.raises(NotFoundError):
        catalog.get_document(doc_id)
