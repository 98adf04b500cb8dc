"""LM calls with a deadline and bounded retries, so a program call never outlives its request.

DSPy retries transient LM failures itself, sleeping as long as a 429's ``Retry-After`` says (an hour,
if the endpoint says so) and starting new attempts whatever time is left; a served request that
timed out therefore kept its worker thread busy for minutes. :class:`BoundedLM` takes the retries
over (DSPy's are set to 0):

- before every attempt it checks the caller's deadline (:func:`deadline`, set per request by the
  service) and raises :class:`RequestTimeoutError` once it has passed, so a program that timed out
  stops at its next LM call instead of running to the end;
- it retries only what is worth retrying (timeouts, connection errors, 5xx, 429), at most
  ``lm.max_retries`` times, waiting ``Retry-After`` when given, else 0.5 s, 1 s, 2 s …, but never
  longer than ``lm.max_retry_wait_s`` and never past the deadline (it gives up instead); calls
  without a deadline (batch classification, optimization) honour a ``Retry-After`` up to 120 s;
- each attempt's HTTP read is bounded by ``lm.timeout_s`` (lm15's transport enforces it), so after a
  deadline passes the worker thread ends within one attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import dspy

from flywheel.errors import RequestTimeoutError

_deadline: ContextVar[float | None] = ContextVar("flywheel_lm_deadline", default=None)
OFFLINE_MAX_RETRY_WAIT_S = 120.0


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """LM calls made inside this block (in this thread or context) must start within ``seconds``."""
    token = _deadline.set(time.monotonic() + seconds if seconds else None)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the current deadline (None: no deadline)."""
    end = _deadline.get()
    return None if end is None else end - time.monotonic()


def check_deadline() -> None:
    left = remaining()
    if left is not None and left <= 0:
        raise RequestTimeoutError(
            "The request ran out of time before its next LM call.",
            hint="Retry later, ask a shorter question, or raise FLYWHEEL_SERVE__REQUEST_TIMEOUT_S.",
        )


def _is_retryable(exc: BaseException) -> bool:
    # Lazy (start-up time): only this path needs DSPy.
    from dspy.utils.exceptions import is_retryable_lm_error

    return isinstance(exc, Exception) and is_retryable_lm_error(exc)


class BoundedLM(dspy.LM):
    """``dspy.LM`` whose calls respect :func:`deadline` and retry a bounded number of times."""

    def __init__(self, model: str, *, max_retries: int = 0, max_retry_wait_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(model, num_retries=0, **kwargs)
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s

    def retry_delay(self, exc: BaseException, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up and raise ``exc``."""
        if attempt >= self.max_retries or not _is_retryable(exc):
            return None
        hint = getattr(exc, "retry_after", None)
        delay = float(hint) if isinstance(hint, int | float) and hint >= 0 else 0.5 * 2**attempt
        left = remaining()
        # A served request (it has a deadline) waits at most max_retry_wait_s; a batch job or an
        # optimization run has no caller waiting on it and honours a longer Retry-After, up to a bound.
        cap = self.max_retry_wait_s if left is not None else max(self.max_retry_wait_s, OFFLINE_MAX_RETRY_WAIT_S)
        if delay > cap:
            return None  # the endpoint asks for a longer pause than this caller can wait: say so now
        if left is not None and delay >= left:
            return None
        return delay

    def __call__(self, prompt: Any = None, *, messages: Any = None, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            check_deadline()
            try:
                return super().__call__(prompt, messages=messages, **kwargs)
            except Exception as exc:
                delay = self.retry_delay(exc, attempt)
                if delay is None:
                    raise
                attempt += 1
                time.sleep(delay)

    async def acall(self, prompt: Any = None, *, messages: Any = None, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            check_deadline()
            try:
                return await super().acall(prompt, messages=messages, **kwargs)
            except Exception as exc:
                delay = self.retry_delay(exc, attempt)
                if delay is None:
                    raise
                attempt += 1
                await asyncio.sleep(delay)
