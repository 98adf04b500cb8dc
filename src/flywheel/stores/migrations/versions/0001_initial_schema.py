"""The initial schema: the tables ``create_all`` made before Flywheel had migrations.

A database created by ``create_all`` (any earlier Flywheel) already has some or all of these tables:
each is created only when missing, so such a database upgrades to this revision unchanged and is
stamped; a new database gets every table.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _create(name: str, *elements: SchemaItem, indexes: tuple[str, ...] = ()) -> None:
    """Create table ``name`` with an index on each of ``indexes``, unless it exists."""
    if sa.inspect(op.get_bind()).has_table(name):
        return
    op.create_table(name, *elements)
    for column in indexes:
        op.create_index(f"ix_{name}_{column}", name, [column])


def _created_at() -> sa.Column[object]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    _create(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        _created_at(),
    )
    _create(
        "groups",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text(), nullable=False),
    )
    _create(
        "memberships",
        sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("group_name", sa.String(64), sa.ForeignKey("groups.name", ondelete="CASCADE"), primary_key=True),
    )
    _create(
        "documents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("owner", sa.String(64), sa.ForeignKey("users.name"), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("live_version", sa.Integer(), nullable=False),
        _created_at(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner", "source", name="uq_document_owner_source"),
    )
    _create(
        "document_versions",
        sa.Column("document_id", sa.String(32), sa.ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _created_at(),
    )
    _create(
        "conversations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user", sa.String(64), nullable=False),
        _created_at(),
        indexes=("user",),
    )
    _create(
        "conversation_turns",
        sa.Column(
            "conversation_id", sa.String(32), sa.ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("citations", sa.Text(), nullable=False),
    )
    _create(
        "interactions",
        sa.Column("trace_id", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("program", sa.String(128), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("citations", sa.Text(), nullable=False),
        sa.Column("groups", sa.Text(), nullable=False),
        _created_at(),
        indexes=("program", "user"),
    )
    _create(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "trace_id",
            sa.String(64),
            sa.ForeignKey("interactions.trace_id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("rating", sa.String(8), nullable=True),
        sa.Column("correction", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        _created_at(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        indexes=("user",),
    )
    _create(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user", sa.String(64), nullable=False),
        _created_at(),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        indexes=("prefix", "user"),
    )
    _create(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("history", sa.Text(), nullable=False),
        _created_at(),
        indexes=("user",),
    )


def downgrade() -> None:
    for name in (
        "responses",
        "api_keys",
        "feedback",
        "interactions",
        "conversation_turns",
        "conversations",
        "document_versions",
        "documents",
        "memberships",
        "groups",
        "users",
    ):
        op.drop_table(name)
