"""API keys: random secrets mapped to users, stored only as SHA-256 hashes.

A key looks like ``fw_<random>``; the catalog database (its own ``api_keys`` table) keeps the hash
and a short visible prefix, never the key itself, so the plaintext is shown exactly once, when the
key is created. Revoked keys stop authenticating immediately; the row stays for auditing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, String, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from flywheel.access import check_name
from flywheel.errors import InvalidInputError, NotFoundError
from flywheel.stores.database import Base, Database, open_database, utcnow

KEY_PREFIX = "fw_"
VISIBLE_CHARS = 8  # characters of the random part shown in listings (and usable to revoke)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def hash_key(plaintext: str) -> str:
    """The stored form of a key (SHA-256; keys are 256-bit random, so no salt or slow hash is needed)."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


class ApiKeyStore:
    """Create, list, revoke and check API keys (SQLAlchemy; same database as the catalog)."""

    def __init__(self, catalog_url: str) -> None:
        self.db: Database = open_database(catalog_url, "the API key table")
        self.engine = self.db.engine

    def create(self, user: str) -> tuple[str, str]:
        """A new key for ``user``: returns (key id, plaintext). The plaintext is not stored anywhere."""
        check_name("user", user)
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = uuid.uuid4().hex[:12]
        with self.db.transaction() as s:
            s.add(
                ApiKey(
                    id=key_id,
                    prefix=plaintext[: len(KEY_PREFIX) + VISIBLE_CHARS],
                    key_hash=hash_key(plaintext),
                    user=user,
                )
            )
        return key_id, plaintext

    def authenticate(self, plaintext: str | None) -> str | None:
        """The user a valid, unrevoked key belongs to; None for anything else."""
        if not plaintext or not isinstance(plaintext, str) or len(plaintext) > 200:
            return None
        digest = hash_key(plaintext.strip())
        with self.db.reading() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).first()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
            return None
        return row.user

    def revoke(self, key_id_or_prefix: str) -> dict[str, Any]:
        """Revoke one key by its id or its visible prefix; returns its listing row."""
        ref = (key_id_or_prefix or "").strip()
        if len(ref) < 6:
            raise InvalidInputError(
                "Give a key id or the key's visible prefix (at least 6 characters).", hint="See `flywheel keys list`."
            )
        with self.db.transaction() as s:
            rows = s.scalars(select(ApiKey).where(or_(ApiKey.id == ref, ApiKey.prefix == ref))).all()
            if not rows:
                raise NotFoundError(f"No API key {ref!r}.", hint="See `flywheel keys list` for ids and prefixes.")
            if len(rows) > 1:
                raise InvalidInputError(f"{ref!r} matches {len(rows)} keys.", hint="Revoke by key id instead.")
            row = rows[0]
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            return _describe(row)

    def list(self, user: str | None = None) -> list[dict[str, Any]]:
        """Every key (or one user's): id, visible prefix, user, created_at, revoked_at. Never the key."""
        with self.db.reading() as s:
            query = select(ApiKey).order_by(ApiKey.created_at)
            if user:
                query = query.where(ApiKey.user == user)
            return [_describe(row) for row in s.scalars(query)]


def _describe(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "prefix": row.prefix,
        "user": row.user,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
        "active": row.revoked_at is None,
    }
