from __future__ import annotations

import pytest

from flywheel.access import EVERYONE, AclFilter, Principal
from flywheel.errors import AccessDeniedError, InvalidInputError
from flywheel.knowledge.index import MetadataFilter


def test_every_principal_belongs_to_everyone() -> None:
    assert EVERYONE in Principal("frank").groups


def test_reading_is_decided_by_groups_alone_even_for_admins() -> None:
    admin = Principal("root", is_admin=True)
    assert not admin.can_read({"mechanics"})
    assert admin.can_read({"mechanics", EVERYONE})
    assert Principal("alice", frozenset({"mechanics"})).can_read(["mechanics"])


def test_only_owner_and_admins_manage() -> None:
    with pytest.raises(AccessDeniedError, match="only the owner"):
        Principal("bob").require_manage("alice", "delete x")
    Principal("alice").require_manage("alice", "delete x")
    Principal("root", is_admin=True).require_manage("alice", "delete x")


def test_uploading_requires_membership() -> None:
    with pytest.raises(AccessDeniedError, match="not a member of pilots"):
        Principal("alice", frozenset({"mechanics"})).require_member(["mechanics", "pilots"])


@pytest.mark.parametrize("name", ["", "Alice", "a b", "x'--", "../etc", "a" * 65])
def test_names_are_strictly_validated(name: str) -> None:
    with pytest.raises(InvalidInputError):
        Principal(name)


def test_acl_filter_lists_exactly_the_principals_groups() -> None:
    sql = AclFilter.for_principal(Principal("erin", frozenset({"pilots", "mechanics"})))
    assert sql == "array_has_any(groups, make_array('everyone', 'mechanics', 'pilots'))"


def test_metadata_filters_are_quoted_and_cannot_widen_the_acl() -> None:
    hostile = MetadataFilter(tags=("x') OR (1=1",), sources=("a'b.md",))
    where = AclFilter.combine(AclFilter.for_principal(Principal("frank")), hostile.sql())
    assert where.startswith("(array_has_any(groups, make_array('everyone'))) AND (")
    assert "'x'') OR (1=1'" in where
    assert "'a''b.md'" in where
