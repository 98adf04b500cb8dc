"""Stored Responses-API responses: what ``previous_response_id`` continues from, per user.

Each stored response keeps its owner, the response object as returned, and the conversation up to and
including its own turn (the last ``max_turns`` {question, answer} pairs), so continuing from any
earlier response — also forking from one that is not the latest — is one row read. Another user's id
is "not found" (existence is not disclosed): history quotes retrieved passages and never crosses users.
Lives in the catalog database with the other stores.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from flywheel.errors import NotFoundError
from flywheel.stores.database import Base, Database, open_database, utcnow


class StoredResponse(Base):
    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    body: Mapped[str] = mapped_column(Text)
    history: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ResponseStore:
    def __init__(self, url: str, *, max_turns: int = 6) -> None:
        self.db: Database = open_database(url, "the responses table")
        self.engine = self.db.engine
        self.max_turns = max_turns

    def save(self, user: str, body: dict[str, Any], history: list[dict[str, str]]) -> None:
        """Store a response and the conversation it ends (its own turn last)."""
        with self.db.transaction() as s:
            s.add(
                StoredResponse(
                    id=body["id"],
                    user=user,
                    body=json.dumps(body, default=str),
                    history=json.dumps(history[-self.max_turns :]),
                )
            )

    def _owned(self, s: Session, user: str, response_id: str) -> StoredResponse:
        row = s.get(StoredResponse, response_id)
        if row is None or row.user != user:
            raise NotFoundError(
                f"No stored response {response_id!r}.",
                hint="Use the id of one of your own responses created with store=true, "
                "or send the whole conversation in `input`.",
            )
        return row

    def history(self, user: str, response_id: str) -> list[dict[str, str]]:
        """The conversation that ``response_id`` ended, oldest turn first."""
        with self.db.reading() as s:
            return list(json.loads(self._owned(s, user, response_id).history or "[]"))

    def get(self, user: str, response_id: str) -> dict[str, Any]:
        with self.db.reading() as s:
            return dict(json.loads(self._owned(s, user, response_id).body))
