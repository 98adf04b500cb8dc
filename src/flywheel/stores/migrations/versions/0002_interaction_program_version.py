"""Interactions record which registered version of the program answered (``program_version``).

Feedback then says which version it is about: ``FeedbackStore.list_feedback(program_version=…)``,
``flywheel feedback export --version``, and the same value as the answer's MLflow trace tag
``flywheel.program_version``. Rows answered before this revision, or by a program that is not a
registered version, have none.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("interactions")}
    if "program_version" not in columns:  # a table made by create_all from today's models has it
        op.add_column("interactions", sa.Column("program_version", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("program_version")
