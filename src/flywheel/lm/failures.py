"""Turning DSPy's LM errors into Flywheel errors that say what to do."""

from __future__ import annotations

import math

from flywheel.config import LMSettings
from flywheel.errors import EndpointUnreachableError, FlywheelError, LMError, LMUnavailableError

LM_EXCEPTION_PACKAGES = ("dspy", "litellm")


def is_lm_exception(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the LM stack (a DSPy or LiteLLM exception, or a Flywheel LM error), so that
    it is reported as an LM failure; anything else is a bug to log, not an LM problem to explain."""
    if isinstance(exc, LMError):
        return True
    return any(cls.__module__.split(".")[0] in LM_EXCEPTION_PACKAGES for cls in type(exc).__mro__)


def is_endpoint_fault(exc: BaseException) -> bool:
    """Whether a failed program call says the LM endpoint is unwell (what the circuit breaker counts):
    timeouts, connection failures, 5xx, rate limits and replies that are not even JSON; not bad input,
    authentication, or an answer the adapter could not parse."""
    # Lazy (start-up time): only this path needs DSPy.
    from dspy.utils.exceptions import (
        LMProviderError,
        LMRateLimitError,
        LMServerError,
        LMTimeoutError,
        LMTransportError,
        LMUnexpectedError,
    )

    if isinstance(exc, EndpointUnreachableError) and not isinstance(exc, LMUnavailableError):
        return True
    faults = (LMTransportError, LMUnexpectedError, LMTimeoutError, LMServerError, LMRateLimitError)
    return isinstance(exc, faults) or type(exc) is LMProviderError  # e.g. a reply that is not JSON


def lm_failure(exc: BaseException, settings: LMSettings) -> FlywheelError:
    """A Flywheel error describing why the configured LM did not answer."""
    if isinstance(exc, FlywheelError):
        return exc
    # Lazy (start-up time): only this path needs DSPy.
    from dspy.utils.exceptions import (
        AdapterParseError,
        LMAuthError,
        LMRateLimitError,
        LMServerError,
        LMTimeoutError,
        LMTransportError,
    )

    where = settings.api_base or "the embedded model"
    detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    # lm15 reports a read timeout as a transport failure whose message says so.
    if isinstance(exc, LMTimeoutError) or (isinstance(exc, LMTransportError) and "timed out" in detail):
        return EndpointUnreachableError(
            f"The LM endpoint {where} did not answer within {settings.timeout_s:g} s.",
            hint="Check that the server is running and not overloaded, or raise FLYWHEEL_LM__TIMEOUT_S.",
        )
    if isinstance(exc, LMTransportError):
        if "closed" in detail:
            return EndpointUnreachableError(
                f"The LM endpoint {where} closed the connection mid-answer: {detail}",
                hint="The server crashed or a proxy cut the reply; check the LM server's logs and retry.",
            )
        return EndpointUnreachableError(
            f"Cannot reach the LM endpoint {where}: {detail}",
            hint="Start the server (e.g. `flywheel lm serve`) or fix FLYWHEEL_LM__API_BASE.",
        )
    if isinstance(exc, LMAuthError):
        return LMError(
            f"The LM endpoint {where} rejected the API key: {detail}",
            hint=f"Set a valid key in ${settings.api_key_env or '<the variable named by lm.api_key_env>'}.",
        )
    if isinstance(exc, LMRateLimitError):
        wait = getattr(exc, "retry_after", None)
        seconds = max(1, math.ceil(wait)) if isinstance(wait, int | float) else 5
        return LMUnavailableError(
            f"The LM endpoint {where} is rate-limiting Flywheel (HTTP 429"
            + (f", asking to wait {wait:g} s)." if isinstance(wait, int | float) else ")."),
            hint=f"Retry in {seconds} s, lower the load, or raise the endpoint's quota.",
            retry_after=seconds,
        )
    if isinstance(exc, AdapterParseError):
        return LMError(
            f"The LM ({where}) answered, but not in the expected format (truncated or invalid JSON).",
            hint="Retry; if it keeps happening, raise FLYWHEEL_LM__MAX_TOKENS or set "
            "FLYWHEEL_LM__STRUCTURED_OUTPUTS=false for an endpoint that ignores JSON schemas.",
        )
    if isinstance(exc, LMServerError):
        return LMError(
            f"The LM endpoint {where} failed with a server error: {detail}",
            hint="Check the server's logs; the request was retried with backoff.",
        )
    return LMError(f"The LM ({where}) failed: {detail}", hint="Run `flywheel doctor` for a full check.")
