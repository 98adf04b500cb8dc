"""What a program does, which decides its inputs, outputs, metrics and model signature."""

from __future__ import annotations

from enum import StrEnum


class ProgramKind(StrEnum):
    """``qa`` programs answer questions with citations; ``classifier`` programs label texts."""

    QA = "qa"
    CLASSIFIER = "classifier"

    @classmethod
    def of(cls, program: str) -> ProgramKind:
        """The kind of the program called ``program``: the built-in classifier, or a question answerer."""
        return cls.CLASSIFIER if program == cls.CLASSIFIER.value else cls.QA
