"""A user-defined program, loaded by name from the config in test_custom_programs.py."""

from __future__ import annotations

from typing import Any

import dspy


class EchoProgram(dspy.Module):
    """Answers with the question and the caller's groups; takes the shared services like built-ins."""

    def __init__(self, services: dict[str, Any]) -> None:
        super().__init__()
        self.services = services
        self.reply = dspy.Predict("question -> answer")

    def forward(self, question: str, principal: Any, history: Any = None) -> dspy.Prediction:
        answer = self.reply(question=question).answer
        return dspy.Prediction(answer=f"{answer} ({','.join(sorted(principal.groups))})", citations=[])


class NotAModule:
    pass
