"""Closed choices decided by the LM's own token probabilities, so a threshold can be calibrated.

A yes/no answer generated under a grammar is the LM's argmax between the two words: a 135M model
that says "yes" to nearly everything keeps saying it, and no amount of data changes that. When the
LM engine can score continuations (the embedded llama.cpp engine: one prompt evaluation, no
decoding), the program instead reads P(option) at the point where the answer's value starts and
decides with a threshold that ``flywheel optimize`` fits on labelled rows (see
:func:`fit_threshold`). Engines that cannot score (remote endpoints) keep the generated answer.

The prompt scored is exactly the one the predictor would send (same adapter, signature, demos and
inputs), so the probability is the predictor's own, not a separate classifier's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import dspy

# Where the value of the first output field starts in the JSON reply of DSPy's JSONAdapter.
JSON_VALUE_PREFIX = '{{"{field}": "'


class OptionScorer(Protocol):
    def __call__(self, messages: list[dict[str, str]], prefix: str, options: Sequence[str]) -> dict[str, float]: ...


def option_scorer(lm: Any = None) -> OptionScorer | None:
    """The configured LM's continuation scorer, when its engine has one (``option_logprobs``)."""
    lm = lm if lm is not None else dspy.settings.lm
    engine = getattr(lm, "engine", None)
    scorer = getattr(engine, "option_logprobs", None)
    return scorer if callable(scorer) else None


def first_option_probability(
    predictor: dspy.Predict,
    inputs: dict[str, Any],
    demos: Sequence[Any],
    options: tuple[str, str],
    *,
    scorer: OptionScorer | None = None,
) -> float | None:
    """P(``options[0]``) against ``options[1]`` as the predictor's first output value, or None when the
    LM cannot score continuations or the prompt cannot be built for it."""
    scorer = scorer or option_scorer()
    if scorer is None:
        return None
    adapter = dspy.settings.adapter or dspy.JSONAdapter()
    if not isinstance(adapter, dspy.JSONAdapter):
        return None  # the value prefix below is JSONAdapter's reply shape
    field = next(iter(predictor.signature.output_fields))
    messages = adapter.format(predictor.signature, list(demos), inputs)
    logprobs = scorer(messages, JSON_VALUE_PREFIX.format(field=field), options)
    return 1.0 / (1.0 + math.exp(logprobs[options[1]] - logprobs[options[0]]))


def fit_threshold(
    probabilities: Sequence[float], positive: Sequence[bool], *, default: float = 0.5
) -> tuple[float, float]:
    """The threshold on P(positive) that decides the labelled rows best, and its accuracy.

    Candidates are the midpoints between neighbouring observed probabilities (any value in a gap makes
    the same decisions); ties keep the candidate nearest ``default``, then the one in the widest gap.
    """
    if len(probabilities) != len(positive):
        raise ValueError("fit_threshold needs one label per probability")
    if not probabilities:
        return default, 0.0
    accuracy: Callable[[float], float] = lambda t: (  # noqa: E731
        sum((p >= t) == y for p, y in zip(probabilities, positive, strict=True)) / len(probabilities)
    )
    points = sorted(set(probabilities))
    gaps = [(0.0, points[0]), *itertools.pairwise(points), (points[-1], 1.0)]
    candidates = [((lo + hi) / 2, hi - lo) for lo, hi in gaps]
    best = max(candidates, key=lambda c: (round(accuracy(c[0]), 9), -abs(c[0] - default), c[1]))
    default_accuracy = accuracy(default)
    if accuracy(best[0]) <= default_accuracy:
        return default, default_accuracy
    return best[0], accuracy(best[0])
