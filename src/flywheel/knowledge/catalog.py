"""The catalog: users, groups, memberships, documents and their versions (tables in flywheel.stores).

SQLite under FLYWHEEL_HOME by default; any SQLAlchemy URL (e.g. PostgreSQL) works unchanged.
The vector index holds the chunks; the catalog holds what a document *is* and which version of
it is live, so a crashed ingestion can be recognised and finished by the next run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from flywheel.access import EVERYONE, Principal, check_name
from flywheel.errors import InvalidInputError, NotFoundError
from flywheel.stores.catalog import Document, DocumentVersion, Group, Membership, User
from flywheel.stores.database import Database, open_database


class Catalog:
    """Access to the catalog database. Methods open short transactions of their own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.db: Database = open_database(url, "the catalog database")
        self.engine = self.db.engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.db.transaction() as session:
            yield session

    # --- users and groups -----------------------------------------------------------------

    def add_group(self, name: str, description: str = "") -> None:
        check_name("group", name)
        with self.session() as s:
            group = s.get(Group, name)
            if group is None:
                s.add(Group(name=name, description=description))
            elif description:
                group.description = description

    def list_groups(self) -> list[dict[str, Any]]:
        with self.session() as s:
            members: dict[str, int] = {}
            for m in s.scalars(select(Membership)):
                members[m.group_name] = members.get(m.group_name, 0) + 1
            return [
                {"name": g.name, "description": g.description, "members": members.get(g.name, 0)}
                for g in s.scalars(select(Group).order_by(Group.name))
            ]

    def add_user(
        self, name: str, groups: list[str] | tuple[str, ...] = (), *, display_name: str = "", is_admin: bool = False
    ) -> Principal:
        """Create or update a user; groups are created as needed. Returns the principal."""
        check_name("user", name)
        for group in groups:
            self.add_group(group)
        with self.session() as s:
            user = s.get(User, name)
            if user is None:
                user = User(name=name, display_name=display_name or name, is_admin=is_admin)
                s.add(user)
            else:
                user.is_admin = is_admin or user.is_admin
                user.display_name = display_name or user.display_name
            existing = {m.group_name for m in user.memberships}
            for group in groups:
                if group not in existing and group != EVERYONE:
                    user.memberships.append(Membership(group_name=group))
        return self.principal(name)

    def remove_membership(self, user: str, group: str) -> None:
        with self.session() as s:
            membership = s.get(Membership, (user, group))
            if membership is None:
                raise NotFoundError(f"{user} is not a member of {group}.")
            s.delete(membership)

    def list_users(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [
                {
                    "name": u.name,
                    "display_name": u.display_name,
                    "groups": sorted(m.group_name for m in u.memberships),
                    "is_admin": u.is_admin,
                }
                for u in s.scalars(select(User).order_by(User.name))
            ]

    def principal(self, name: str) -> Principal:
        """The principal for a user name, with their groups as stored now."""
        with self.session() as s:
            user = s.get(User, name)
            if user is None:
                raise NotFoundError(
                    f"Unknown user {name!r}.", hint="List users with `flywheel users list`; add one with `users add`."
                )
            return Principal(name, frozenset(m.group_name for m in user.memberships), user.is_admin)

    def known_groups(self) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(Group.name))) | {EVERYONE}

    def require_groups(self, groups: list[str]) -> list[str]:
        if not groups:
            raise InvalidInputError(
                "A document must be shared with at least one group.",
                hint=f"Pass --group NAME (use '{EVERYONE}' for every user).",
            )
        unknown = sorted(set(groups) - self.known_groups())
        if unknown:
            raise NotFoundError(
                f"Unknown group(s): {', '.join(unknown)}.", hint="Create them with `flywheel groups add NAME`."
            )
        return sorted(set(groups))

    # --- documents ------------------------------------------------------------------------

    def find_document(self, owner: str, source: str) -> Document | None:
        with self.session() as s:
            doc = s.scalars(select(Document).where(Document.owner == owner, Document.source == source)).first()
            if doc is not None:
                _ = doc.versions  # load while the session is open
            return doc

    def find_documents(self, owner: str, sources: Iterable[str]) -> dict[str, Document]:
        """:meth:`find_document` for many file names at once (one query), by source."""
        names = list(dict.fromkeys(sources))
        if not names:
            return {}
        with self.session() as s:
            query = select(Document).where(Document.owner == owner, Document.source.in_(names))
            return {doc.source: doc for doc in s.scalars(query.options(selectinload(Document.versions)))}

    def get_document(self, document_id: str) -> Document:
        with self.session() as s:
            doc = s.get(Document, document_id)
            if doc is None:
                raise NotFoundError(f"No document with id {document_id!r}.", hint="See `flywheel docs list`.")
            _ = doc.versions
            return doc

    def bytes_owned(self, owner: str, *, except_sources: Iterable[str] = ()) -> int:
        """Total size of ``owner``'s documents (leaving out ``except_sources``, about to be replaced)."""
        query = select(func.coalesce(func.sum(Document.size_bytes), 0)).where(Document.owner == owner)
        skip = list(except_sources)
        if skip:
            query = query.where(Document.source.not_in(skip))
        with self.session() as s:
            return int(s.scalar(query) or 0)

    def document_groups(self, document_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """The current groups of each of these documents (one query; unknown ids are left out)."""
        ids = list(dict.fromkeys(document_ids))
        if not ids:
            return {}
        with self.session() as s:
            return {doc.id: tuple(doc.groups) for doc in s.scalars(select(Document).where(Document.id.in_(ids)))}

    def list_documents(self) -> list[Document]:
        with self.session() as s:
            docs = list(s.scalars(select(Document).order_by(Document.source)))
            for doc in docs:
                _ = doc.versions
            return docs

    def begin_version(
        self,
        *,
        document_id: str | None,
        owner: str,
        source: str,
        title: str,
        groups: list[str],
        tags: list[str],
        media_type: str,
        size_bytes: int,
        content_hash: str,
    ) -> tuple[str, int]:
        """Record a pending version (creating the document if new); returns (document id, version)."""
        return self.begin_versions(
            [
                dict(
                    document_id=document_id,
                    owner=owner,
                    source=source,
                    title=title,
                    groups=groups,
                    tags=tags,
                    media_type=media_type,
                    size_bytes=size_bytes,
                    content_hash=content_hash,
                )
            ]
        )[0]

    def begin_versions(self, items: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
        """:meth:`begin_version` for many documents in one transaction (one commit and one query per
        ingestion batch: a commit per document cost more than embedding a small one on SQLite)."""
        with self.session() as s:
            docs = _with_versions(s, [item["document_id"] for item in items if item["document_id"]])
            begun = []
            for item in items:
                doc = docs.get(item["document_id"] or "")
                if doc is None:
                    doc = Document(
                        id=uuid.uuid4().hex,
                        owner=item["owner"],
                        source=item["source"],
                        title=item["title"],
                        groups=item["groups"],
                        tags=item["tags"],
                        media_type=item["media_type"],
                        size_bytes=item["size_bytes"],
                        versions=[],
                    )
                    s.add(doc)
                number = (max((v.version for v in doc.versions), default=0)) + 1
                doc.versions.append(DocumentVersion(version=number, content_hash=item["content_hash"]))
                begun.append((doc.id, number))
            return begun

    def finish_version(
        self,
        document_id: str,
        version: int,
        *,
        chunk_count: int,
        title: str,
        groups: list[str],
        tags: list[str],
        media_type: str,
        size_bytes: int,
        content_hash: str,
    ) -> None:
        """Mark a version live (after its chunks were committed to the index)."""
        self.finish_versions(
            [
                dict(
                    document_id=document_id,
                    version=version,
                    chunk_count=chunk_count,
                    title=title,
                    groups=groups,
                    tags=tags,
                    media_type=media_type,
                    size_bytes=size_bytes,
                    content_hash=content_hash,
                )
            ]
        )

    def finish_versions(self, items: Sequence[dict[str, Any]]) -> None:
        """:meth:`finish_version` for many documents in one transaction: all live, or none."""
        with self.session() as s:
            docs = _with_versions(s, [item["document_id"] for item in items])
            for item in items:
                doc = docs.get(item["document_id"])
                if doc is None:
                    raise NotFoundError(f"Document {item['document_id']} vanished during ingestion.")
                for v in doc.versions:
                    if v.version == item["version"]:
                        v.status, v.chunk_count, v.error = "ready", item["chunk_count"], None
                    elif v.status in ("ready", "pending"):
                        v.status = "superseded"
                doc.live_version, doc.content_hash = item["version"], item["content_hash"]
                doc.title, doc.groups, doc.tags = item["title"], item["groups"], item["tags"]
                doc.media_type, doc.size_bytes = item["media_type"], item["size_bytes"]

    def fail_version(self, document_id: str, version: int, error: str) -> None:
        with self.session() as s:
            v = s.get(DocumentVersion, (document_id, version))
            if v is not None:
                v.status, v.error = "failed", error[:2000]

    def set_groups(self, document_id: str, groups: list[str]) -> None:
        with self.session() as s:
            doc = s.get(Document, document_id)
            if doc is None:
                raise NotFoundError(f"No document with id {document_id!r}.")
            doc.groups = groups

    def delete_document(self, document_id: str) -> None:
        with self.session() as s:
            doc = s.get(Document, document_id)
            if doc is not None:
                s.delete(doc)


def _with_versions(s: Session, document_ids: list[str]) -> dict[str, Document]:
    """These documents with their versions loaded, in one query, by id."""
    if not document_ids:
        return {}
    query = select(Document).where(Document.id.in_(document_ids)).options(selectinload(Document.versions))
    return {doc.id: doc for doc in s.scalars(query)}
