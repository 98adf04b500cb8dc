"""Turning DSPy's LM errors into Flywheel errors that say what to do."""

from __future__ import annotations

from flywheel.config import LMSettings
from flywheel.errors import EndpointUnreachableError, FlywheelError, LMError


def lm_failure(exc: BaseException, settings: LMSettings) -> FlywheelError:
    """A Flywheel error describing why the configured LM did not answer."""
    if isinstance(exc, FlywheelError):
        return exc
    from dspy.utils.exceptions import (
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
        return LMError(
            f"The LM endpoint {where} kept rate-limiting after {settings.max_retries} retries.",
            hint="Wait and retry, lower the concurrency, or raise FLYWHEEL_LM__MAX_RETRIES.",
        )
    if isinstance(exc, LMServerError):
        return LMError(
            f"The LM endpoint {where} failed with a server error: {detail}",
            hint="Check the server's logs; the request was retried with backoff.",
        )
    return LMError(f"The LM ({where}) failed: {detail}", hint="Run `flywheel doctor` for a full check.")
