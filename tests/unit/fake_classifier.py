"""A fast, deterministic stand-in for the feedback classifier (no LM), for batch tests.

Loaded by name through ``programs.custom`` (``FLYWHEEL_PROGRAMS__CUSTOM='{"fake": "tests.unit.fake_classifier:
FakeClassifier"}'``). ``FAKE_CLASSIFIER_DELAY`` (seconds per row) slows it down so a run can be killed
mid-way; a text containing ``<<fail>>`` raises; ``FAKE_CLASSIFIER_LOG`` names a file that gets one line
per call (the text classified).
"""

from __future__ import annotations

import os
import threading
import time

import dspy

_log_lock = threading.Lock()


def label(text: str) -> tuple[str, str | None]:
    lowered = text.lower()
    if "<<fail>>" in lowered:
        raise ValueError(f"cannot classify {text!r}")
    if "love" in lowered or "thank" in lowered:
        return "positive", None
    if lowered.rstrip().endswith("?"):
        return "neutral", None
    return "negative", "Late Flight" if "late" in lowered else "Can't Tell"


class FakeClassifier(dspy.Module):
    def forward(self, text: str) -> dspy.Prediction:
        log = os.environ.get("FAKE_CLASSIFIER_LOG")
        if log:
            with _log_lock, open(log, "a", encoding="utf-8") as handle:
                handle.write(text.replace("\n", " ") + "\n")
        time.sleep(float(os.environ.get("FAKE_CLASSIFIER_DELAY", "0")))
        sentiment, reason = label(text)
        return dspy.Prediction(sentiment=sentiment, reason=reason, justification=f"fake: {sentiment}")
