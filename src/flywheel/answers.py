"""What every interface returns for one question: the answer, its sources, and how it was produced.

Shared by the assistant, the service, traces and the MLflow model, so none of them converts a DSPy
prediction on its own. Also the one place OpenAI-style chat messages become a question and history.
"""

from __future__ import annotations

import re


def stream_pieces(text: str) -> list[str]:
    """Words with their following whitespace: the pieces a streamed answer arrives in."""
    return re.findall(r"\S+\s*|\s+", text) or [""]
