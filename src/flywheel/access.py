"""Principals and the access-control filter every retrieval goes through.

A principal is a user with the groups they belong to. A document is shared with one or more
groups; the group ``everyone`` makes it visible to every user. Reading is decided by groups
alone — admins manage documents (change groups, delete) but read passages only through their
groups, like anyone else. The filter is a SQL predicate evaluated *inside* the vector-store query,
so a passage outside the principal's groups is never read, ranked or returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flywheel.errors import AccessDeniedError, InvalidInputError

EVERYONE = "everyone"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def check_name(kind: str, name: str) -> str:
    """Validate a user or group name: lowercase letters, digits, ``_ . -``; at most 64 characters."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"Invalid {kind} name {name!r}.",
            hint=f"A {kind} name is 1–64 characters: lowercase letters, digits, '_', '.', '-', "
            "starting with a letter or digit.",
        )
    return name


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user, their groups, and whether they administer the knowledge base."""

    user: str
    groups: frozenset[str] = field(default_factory=frozenset)
    is_admin: bool = False

    def __post_init__(self) -> None:
        check_name("user", self.user)
        for group in self.groups:
            check_name("group", group)
        object.__setattr__(self, "groups", frozenset(self.groups) | {EVERYONE})

    def can_read(self, document_groups: frozenset[str] | set[str] | list[str]) -> bool:
        """Whether a document shared with ``document_groups`` is visible to this principal."""
        return bool(self.groups & set(document_groups))

    def can_manage(self, owner: str) -> bool:
        """Whether this principal may change the groups of, or delete, a document owned by ``owner``."""
        return self.is_admin or self.user == owner

    def require_manage(self, owner: str, what: str) -> None:
        if not self.can_manage(owner):
            raise AccessDeniedError(
                f"{self.user} may not {what}: only the owner ({owner}) and admins can.",
                hint="Ask the document's owner or an admin.",
            )

    def require_member(self, groups: list[str] | set[str]) -> None:
        """Uploading into a group requires belonging to it (admins may upload anywhere)."""
        if self.is_admin:
            return
        outside = sorted(set(groups) - self.groups)
        if outside:
            raise AccessDeniedError(
                f"{self.user} is not a member of {', '.join(outside)}.",
                hint=f"Share with your own groups ({', '.join(sorted(self.groups))}) or ask an admin.",
            )


class AclFilter:
    """The SQL predicate over the ``groups`` list column that restricts a query to a principal."""

    column = "groups"

    @staticmethod
    def for_principal(principal: Principal) -> str:
        # Names are validated against a strict pattern (no quotes possible); quote anyway.
        groups = ", ".join("'" + g.replace("'", "''") + "'" for g in sorted(principal.groups))
        return f"array_has_any({AclFilter.column}, make_array({groups}))"

    @staticmethod
    def combine(acl: str, extra: str | None) -> str:
        """The ACL predicate AND an optional metadata filter (the ACL can never be widened)."""
        return f"({acl}) AND ({extra})" if extra else acl
