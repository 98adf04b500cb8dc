"""Conversations: ids and stored turns, per user, in the catalog database.

A conversation belongs to the user who started it; another user asking with its id gets a
"not found" (existence is not disclosed), so history — which quotes retrieved passages — never
crosses users.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from flywheel.access import Principal
from flywheel.errors import NotFoundError
from flywheel.stores.database import Base, Database, open_database, utcnow


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Turn(Base):
    __tablename__ = "conversation_turns"

    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    citations: Mapped[str] = mapped_column(Text, default="[]")


class ConversationStore:
    """Create conversations and append/read their turns (SQLAlchemy; same database as the catalog)."""

    def __init__(self, url: str, *, max_turns: int = 6) -> None:
        self.db: Database = open_database(url, "the conversation tables")
        self.engine = self.db.engine
        self.max_turns = max_turns

    def start(self, principal: Principal) -> str:
        conversation_id = uuid.uuid4().hex
        with self.db.transaction() as s:
            s.add(Conversation(id=conversation_id, user=principal.user))
        return conversation_id

    def _owned(self, s: Session, principal: Principal, conversation_id: str) -> Conversation:
        conversation = s.get(Conversation, conversation_id)
        if conversation is None or conversation.user != principal.user:
            raise NotFoundError(f"No conversation {conversation_id!r}.", hint="Start a new conversation.")
        return conversation

    def history(self, principal: Principal, conversation_id: str) -> list[dict[str, str]]:
        """The last ``max_turns`` turns as DSPy History messages ({question, answer})."""
        with self.db.transaction() as s:
            self._owned(s, principal, conversation_id)
            turns = s.scalars(
                select(Turn)
                .where(Turn.conversation_id == conversation_id)
                .order_by(Turn.position.desc())
                .limit(self.max_turns)
            ).all()
            return [{"question": t.question, "answer": t.answer} for t in reversed(turns)]

    def append(
        self, principal: Principal, conversation_id: str, question: str, answer: str, citations: list[dict[str, Any]]
    ) -> None:
        with self.db.transaction() as s:
            self._owned(s, principal, conversation_id)
            last = s.scalars(
                select(Turn.position)
                .where(Turn.conversation_id == conversation_id)
                .order_by(Turn.position.desc())
                .limit(1)
            ).first()
            s.add(
                Turn(
                    conversation_id=conversation_id,
                    position=(last or 0) + 1,
                    question=question,
                    answer=answer,
                    citations=json.dumps(citations),
                )
            )
