"""What the service holds: the assistant, stores, LM, tracer and metrics; program calls off the event loop.

Program calls run in worker threads bounded by ``serve.workers`` and limited to
``serve.request_timeout_s`` (a 504 after that). The thread inherits that deadline: its next LM call
raises instead of starting, retries never wait past it, and each HTTP attempt is bounded by
``lm.timeout_s``, so the thread ends soon after the 504 (``flywheel.lm.bounded``). LM endpoint faults
feed a circuit breaker (``flywheel.lm.breaker``): while it is open, program calls are refused at once
with a 503 and ``Retry-After``. Every answered call gets a trace id and is recorded as an interaction, so feedback can
attach to it. A newly promoted champion is picked up by ``Assistant.refresh`` at most every
``serve.reload_interval_s``; in-flight calls keep the program object they started with.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from flywheel.access import Principal
from flywheel.answers import Answer
from flywheel.config import Settings
from flywheel.errors import FlywheelError, InvalidInputError, LMUnavailableError, NotFoundError, RequestTimeoutError
from flywheel.lm import lm_failure
from flywheel.lm.bounded import deadline
from flywheel.lm.breaker import STATE_CODES, CircuitBreaker
from flywheel.lm.failures import is_endpoint_fault, is_lm_exception
from flywheel.serve.metrics import Metrics
from flywheel.serve.tracing import Tracer
from flywheel.stores.feedback import FeedbackStore
from flywheel.stores.keys import ApiKeyStore

log = logging.getLogger("flywheel.serve")
T = TypeVar("T")
DEFAULT_MODEL = "flywheel"


class Service:
    """Shared by every request of one app."""

    def __init__(
        self,
        settings: Settings,
        *,
        assistant: Any,
        keys: ApiKeyStore,
        feedback: FeedbackStore,
        lm: Any,
        tracer: Tracer,
        metrics: Metrics,
        registry: Any = None,
    ) -> None:
        self.settings = settings
        self.assistant = assistant
        self.knowledge = assistant.knowledge
        self.keys = keys
        self.feedback = feedback
        self.lm = lm
        self.tracer = tracer
        self.metrics = metrics
        self.registry = registry
        self.ready = False
        self.started = time.time()
        self._limiter: anyio.CapacityLimiter | None = None
        self._last_refresh = time.monotonic()
        self._refresh_lock = threading.Lock()
        self.breaker = CircuitBreaker(
            settings.serve.breaker_failures,
            settings.serve.breaker_open_s,
            where=f"The LM endpoint {settings.lm.api_base or '(embedded)'}",
            on_change=self._breaker_changed,
        )

    def _breaker_changed(self, state: str) -> None:
        self.metrics.lm_circuit.set(STATE_CODES[state])  # type: ignore[index]
        if state == "open":
            self.metrics.lm_circuit_opened.inc()
            log.warning("LM circuit breaker open: refusing LM calls for %g s", self.settings.serve.breaker_open_s)
        else:
            log.warning("LM circuit breaker %s", state.replace("_", "-"))

    # --- running work off the event loop -------------------------------------------------------

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.settings.serve.workers)
        return self._limiter

    async def run(self, func: Callable[..., T], *args: Any, timeout: bool = True) -> T:
        """Run ``func(*args)`` in a worker thread; a 504 error when it exceeds the request timeout."""
        await self.maybe_refresh()
        limit = self.settings.serve.request_timeout_s if timeout else None
        try:
            # The worker thread inherits the deadline: its LM calls stop once the 504 has been sent.
            with anyio.fail_after(limit), deadline(limit):
                return await anyio.to_thread.run_sync(func, *args, limiter=self.limiter, abandon_on_cancel=True)
        except TimeoutError:
            raise RequestTimeoutError(
                f"The request did not finish within {self.settings.serve.request_timeout_s:g} s.",
                hint="Retry later, ask a shorter question, or raise FLYWHEEL_SERVE__REQUEST_TIMEOUT_S.",
            ) from None

    async def maybe_refresh(self) -> None:
        """Pick up newly promoted champions, at most every reload_interval_s, without blocking requests."""
        interval = self.settings.serve.reload_interval_s
        refresh = getattr(self.assistant, "refresh", None)
        if not interval or refresh is None or time.monotonic() - self._last_refresh < interval:
            return
        if not self._refresh_lock.acquire(blocking=False):
            return
        self._last_refresh = time.monotonic()

        def work() -> None:
            try:
                swapped = refresh()
                if swapped:
                    log.warning("Serving newly promoted program version(s): %s", ", ".join(swapped))
            except Exception as exc:  # a broken registry must not take the service down
                log.warning("Could not look for new champions: %s", exc)
            finally:
                self._refresh_lock.release()

        threading.Thread(target=work, name="flywheel-refresh", daemon=True).start()

    # --- programs -----------------------------------------------------------------------------

    def program_names(self) -> list[str]:
        return list(self.assistant.names())

    def resolve_model(self, model: str | None) -> str:
        """``rag``, ``agent@champion`` or ``flywheel`` (the default program) → a program name."""
        name = (model or DEFAULT_MODEL).strip()
        name, _, alias = name.partition("@")
        if alias and alias != self.settings.serve.alias:
            raise NotFoundError(
                f"This service serves the '{self.settings.serve.alias}' version of each program, not '{alias}'.",
                hint=f"Use model '{name}' or '{name}@{self.settings.serve.alias}'.",
            )
        if name in ("", DEFAULT_MODEL):
            name = self.settings.programs.default
        if name not in self.program_names():
            raise NotFoundError(
                f"Unknown program {name!r}.",
                hint=f"Known programs: {', '.join(self.program_names())} (GET /v1/models).",
            )
        return name

    @functools.cached_property
    def adapter(self) -> Any:
        """One adapter for every request: it keeps the per-signature parts of the prompts."""
        # Lazy (start-up time): only this path needs DSPy.
        from flywheel.lm.adapter import CachingJSONAdapter

        return CachingJSONAdapter()

    def lm_context(self) -> Any:
        # Lazy (start-up time): only this path needs DSPy.
        import dspy

        if self.lm is None:
            return nullcontext()
        # No LM call history: DSPy keeps the last 10,000 calls (prompts with the retrieved passages,
        # responses) in the LM and in a global list, which nothing in a service reads; the heap grew
        # by them, and every full garbage collection walked them.
        return dspy.context(lm=self.lm, adapter=self.adapter, disable_history=True)

    def answer(
        self, principal: Principal, program_name: str, question: str, history: list[dict[str, str]] | None = None
    ) -> Answer:
        """Run one program call as ``principal`` (in a worker thread): traced, recorded, errors explained."""
        question = (question or "").strip()
        if not question:
            raise InvalidInputError("The question is empty.", hint="Ask something.")
        limit = self.settings.limits.max_question_chars
        if len(question) > limit:
            raise InvalidInputError(
                f"The question is longer than {limit} characters.",
                hint="Shorten it (the limit is limits.max_question_chars).",
            )
        # The current champion and its version; a swap does not affect this call.
        current = getattr(self.assistant, "current", None)
        program, version = current(program_name) if current else (self.assistant.program(program_name), None)
        started = time.perf_counter()
        outcome = "error"

        def call() -> Any:
            with self.lm_context():
                return program(question=question, principal=principal, history=list(history or []))

        try:
            inputs = {
                "question": question,
                "user": principal.user,
                "program": program_name,
                "history_turns": len(history or []),
            }
            # which registered version answered (the trace's name says which program): per-version
            # feedback and quality in MLflow, e.g. search_traces(filter_string="tags.`flywheel.program_version` = '3'")
            tags = {"flywheel.program_version": str(version)} if version is not None else None
            prediction, trace_id = self.breaker.call(
                lambda: self.tracer.run(f"flywheel.{program_name}", inputs, call, tags), is_endpoint_fault
            )
            outcome = "ok"
        except LMUnavailableError:
            outcome = "refused"
            self.metrics.lm_circuit_refused.inc()
            raise
        except FlywheelError:
            raise
        except Exception as exc:
            if not is_lm_exception(exc):
                raise  # a bug, not an LM failure: the app logs it and answers 500
            raise self.explain(exc) from exc
        finally:
            self.metrics.program_calls.labels(program_name, outcome).inc()
            self.metrics.program_latency.labels(program_name).observe(time.perf_counter() - started)
        answer = Answer.from_prediction(prediction, trace_id=trace_id, program=program_name, program_version=version)
        self.feedback.record_interaction(
            trace_id,
            principal.user,
            program_name,
            question,
            answer.answer,
            answer.citations,
            groups=sorted(principal.groups),
            program_version=None if version is None else str(version),
        )
        return answer

    def explain(self, exc: BaseException) -> FlywheelError:
        """An LM failure inside a program call as a Flywheel error (→ 502/503)."""
        log.warning("Program call failed: %s: %s", type(exc).__name__, str(exc)[:300])
        return lm_failure(exc, self.settings.lm)
