"""Interactions and the feedback users give on them (thumbs, corrections, comments).

Every answered request is recorded as an *interaction* under its trace id (who asked, which
program, the question, the answer and its citations). Feedback attaches to a trace id, and only
the user who asked may give it. The optimizer exports :meth:`FeedbackStore.list_feedback` rows
into training datasets. Both tables live in the catalog database (SQLAlchemy; SQLite or Postgres).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from flywheel.errors import AccessDeniedError, InvalidInputError, NotFoundError
from flywheel.stores.database import Base, Database, open_database, utcnow

Rating = Literal["up", "down"]
RATINGS = ("up", "down")
MAX_TEXT = 20_000


class Interaction(Base):
    __tablename__ = "interactions"

    trace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    program: Mapped[str] = mapped_column(String(128), index=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    citations: Mapped[str] = mapped_column(Text, default="[]")
    groups: Mapped[str] = mapped_column(Text, default="[]")  # the asker's groups, for ACL-aware exports
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the registered version of the program that answered (None: an unregistered program, or an older row)
    program_version: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trace_id: Mapped[str] = mapped_column(ForeignKey("interactions.trace_id", ondelete="CASCADE"), unique=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    rating: Mapped[str | None] = mapped_column(String(8), nullable=True)
    correction: Mapped[str | None] = mapped_column(Text, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class FeedbackStore:
    """Record interactions, attach feedback to them, and export both for datasets."""

    def __init__(self, catalog_url: str) -> None:
        self.db: Database = open_database(catalog_url, "the feedback tables")
        self.engine = self.db.engine

    def record_interaction(
        self,
        trace_id: str,
        user: str,
        program: str,
        question: str,
        answer: str,
        citations: list[dict[str, Any]],
        *,
        groups: list[str] | tuple[str, ...] = (),
        program_version: str | None = None,
    ) -> None:
        """Store one answered request under its trace id (idempotent: a second call updates it);
        ``program_version``: the registered version of ``program`` that answered, if one did."""
        if not trace_id:
            raise InvalidInputError("An interaction needs a trace id.")
        with self.db.transaction() as s:
            row = s.get(Interaction, trace_id)
            if row is None:
                row = Interaction(trace_id=trace_id, user=user)
                s.add(row)
            elif row.user != user:
                raise AccessDeniedError(f"Trace {trace_id} belongs to another user.")
            row.program, row.question, row.answer = program, question, answer
            row.citations = json.dumps(list(citations or []), default=str)
            row.groups = json.dumps(sorted(groups))
            row.program_version = program_version

    def interaction(self, trace_id: str, user: str | None = None) -> dict[str, Any]:
        """One interaction; with ``user``, only if it is theirs (else not found: existence is not disclosed)."""
        with self.db.reading() as s:
            row = s.get(Interaction, trace_id)
            if row is None or (user is not None and row.user != user):
                raise NotFoundError(
                    f"No answer with trace id {trace_id!r}.", hint="Use the trace_id returned with the answer."
                )
            return _interaction_dict(row)

    def add_feedback(
        self,
        trace_id: str,
        user: str,
        *,
        rating: Rating | None = None,
        correction: str | None = None,
        comment: str | None = None,
    ) -> int:
        """Attach feedback to the user's own answer; a second call updates the fields it gives. Returns the id."""
        if rating is not None and rating not in RATINGS:
            raise InvalidInputError(f"Invalid rating {rating!r}.", hint="Use 'up' or 'down'.")
        correction = _clean(correction, "correction")
        comment = _clean(comment, "comment")
        if rating is None and correction is None and comment is None:
            raise InvalidInputError(
                "The feedback is empty.", hint="Give a rating ('up'/'down'), a correction or a comment."
            )
        try:
            return self._upsert_feedback(trace_id, user, rating, correction, comment)
        except IntegrityError:  # the same answer rated twice at once: the other insert won, update it
            return self._upsert_feedback(trace_id, user, rating, correction, comment)

    def _upsert_feedback(
        self, trace_id: str, user: str, rating: Rating | None, correction: str | None, comment: str | None
    ) -> int:
        with self.db.transaction() as s:
            interaction = s.get(Interaction, trace_id) if trace_id else None
            if interaction is None:
                raise NotFoundError(
                    f"No answer with trace id {trace_id!r}.", hint="Use the trace_id returned with the answer."
                )
            if interaction.user != user:
                raise AccessDeniedError(
                    f"{user} may not give feedback on another user's answer.",
                    hint="Give feedback on your own answers only.",
                )
            row = s.scalars(select(Feedback).where(Feedback.trace_id == trace_id)).first()
            if row is None:
                row = Feedback(trace_id=trace_id, user=user)
                s.add(row)
            if rating is not None:
                row.rating = rating
            if correction is not None:
                row.correction = correction
            if comment is not None:
                row.comment = comment
            row.updated_at = utcnow()
            s.flush()
            return row.id

    def list_feedback(self, program: str | None = None, program_version: str | None = None) -> list[dict[str, Any]]:
        """Interactions with feedback, oldest first: trace_id, user, program, program_version, question,
        answer, citations, rating, correction, comment, created_at (of the feedback), groups; only those
        on ``program`` / answered by its registered version ``program_version`` when given."""
        with self.db.reading() as s:
            query = select(Feedback, Interaction).join(Interaction, Feedback.trace_id == Interaction.trace_id)
            if program:
                query = query.where(Interaction.program == program)
            if program_version is not None:
                query = query.where(Interaction.program_version == str(program_version))
            rows = s.execute(query.order_by(Feedback.created_at, Feedback.id)).all()
            return [
                {
                    **_interaction_dict(interaction),
                    "rating": feedback.rating,
                    "correction": feedback.correction,
                    "comment": feedback.comment,
                    "created_at": feedback.created_at.isoformat() if feedback.created_at else None,
                }
                for feedback, interaction in rows
            ]


def _clean(text: str | None, what: str) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInputError(f"The {what} must be text.")
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise InvalidInputError(f"The {what} is longer than {MAX_TEXT} characters.", hint="Shorten it.")
    return text or None


def _interaction_dict(row: Interaction) -> dict[str, Any]:
    return {
        "trace_id": row.trace_id,
        "user": row.user,
        "program": row.program,
        "program_version": row.program_version,
        "question": row.question,
        "answer": row.answer,
        "citations": json.loads(row.citations or "[]"),
        "groups": json.loads(row.groups or "[]"),
        "asked_at": row.created_at.isoformat() if row.created_at else None,
    }
