"""A circuit breaker for the LM endpoint: fail fast while it is down, recover by itself when it is back.

``closed``: calls go through; ``failures`` endpoint faults in a row (transport errors, timeouts, 5xx,
429s that outlasted the retries) open the circuit. ``open``: calls are refused at once with a 503
and a ``Retry-After`` for the rest of ``open_s``, so no worker thread waits on a dead endpoint.
``half_open``: after ``open_s`` one trial call goes through (others are refused); its success closes
the circuit, its failure opens it again. Errors that say nothing about the endpoint (bad input, an
answer that did not parse) neither count nor reset the count.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from flywheel.errors import LMUnavailableError

State = Literal["closed", "half_open", "open"]
STATE_CODES: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}
T = TypeVar("T")


class CircuitBreaker:
    """Thread-safe breaker; ``on_change(state)`` is called on every transition (metrics)."""

    def __init__(
        self,
        failures: int = 5,
        open_s: float = 15.0,
        *,
        where: str = "the LM endpoint",
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self.failures = max(1, failures)
        self.open_s = open_s
        self.where = where
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._in_a_row = 0
        self._opened_at = 0.0
        self._trial = False
        self.rejected = 0
        self.trips = 0

    @property
    def state(self) -> State:
        with self._lock:
            return self._current()

    def _current(self) -> State:
        if self._state == "open" and self._clock() - self._opened_at >= self.open_s:
            self._set("half_open")
        return self._state

    def _set(self, state: State) -> None:
        if state != self._state:
            self._state = state
            if state == "open":
                self.trips += 1
            if self._on_change is not None:
                self._on_change(state)

    def before_call(self) -> None:
        """Let a call through, or raise :class:`LMUnavailableError` (503, with a retry delay)."""
        with self._lock:
            state = self._current()
            if state == "closed":
                return
            if state == "half_open" and not self._trial:
                self._trial = True
                return
            self.rejected += 1
            wait = self.open_s - (self._clock() - self._opened_at) if state == "open" else 1.0
        seconds = max(1, math.ceil(wait))
        raise LMUnavailableError(
            f"{self.where} failed {self.failures} times in a row; Flywheel stopped calling it for a while "
            f"(circuit breaker {state.replace('_', '-')}).",
            hint=f"Retry in {seconds} s. If it persists, check the LM server and its logs "
            "(the breaker closes again by itself once a trial call succeeds).",
            retry_after=seconds,
        )

    def record_success(self) -> None:
        with self._lock:
            self._in_a_row = 0
            self._trial = False
            self._set("closed")

    def record_failure(self) -> None:
        with self._lock:
            self._in_a_row += 1
            was_trial, self._trial = self._trial, False
            if was_trial or self._in_a_row >= self.failures:
                self._opened_at = self._clock()
                self._set("open")

    def release(self) -> None:
        """The call ended with an error that says nothing about the endpoint."""
        with self._lock:
            self._trial = False

    def call(self, func: Callable[[], T], is_fault: Callable[[BaseException], bool]) -> T:
        """``func()`` under the breaker; ``is_fault(exc)`` says whether an exception counts against the endpoint."""
        self.before_call()
        try:
            result = func()
        except BaseException as exc:
            if is_fault(exc):
                self.record_failure()
            else:
                self.release()
            raise
        self.record_success()
        return result
