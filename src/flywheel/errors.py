"""Flywheel's error hierarchy.

Every error carries a message that says what went wrong and a ``hint`` that says how to fix
it. The CLI prints ``str(error)`` without a traceback; the API maps ``status_code`` to a 4xx/5xx
JSON body. Library code raises these instead of bare exceptions wherever a user can act.
"""

from __future__ import annotations


class FlywheelError(Exception):
    """Base class: a problem the user can fix, described in words they can act on."""

    status_code: int = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  How to fix: {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        """The JSON body the API returns for this error."""
        body = {"error": type(self).__name__, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body


class ConfigError(FlywheelError):
    """Invalid or unknown configuration (env vars, flywheel.toml)."""


class ModelFileError(FlywheelError):
    """The embedded model file is missing, unreadable or corrupt."""

    status_code = 503


class LMError(FlywheelError):
    """A language model could not answer (unreachable endpoint, timeout, bad reply)."""

    status_code = 502


class EndpointUnreachableError(LMError):
    """A remote endpoint refused the connection or did not answer within its timeout."""

    status_code = 503


class EmbedderError(FlywheelError):
    """The embedding model could not be loaded or did not answer."""

    status_code = 503


class StorageError(FlywheelError):
    """A data directory or database is not usable (permissions, disk, corrupt files)."""

    status_code = 500


class EmbedderMismatchError(StorageError):
    """The index's vectors were made by a different embedder than the configured one."""

    status_code = 503


class NotFoundError(FlywheelError):
    """A named thing (document, user, group, program) does not exist."""

    status_code = 404


class AccessDeniedError(FlywheelError):
    """The principal may not perform this action or see this resource."""

    status_code = 403


class InvalidInputError(FlywheelError):
    """Input data (a file, a dataset, a request body) is malformed or unsupported."""

    status_code = 422


class AuthenticationError(FlywheelError):
    """No API key, or one that is unknown or revoked."""

    status_code = 401


class RequestTimeoutError(FlywheelError):
    """A program call ran longer than serve.request_timeout_s."""

    status_code = 504


class PayloadTooLargeError(InvalidInputError):
    """An upload over knowledge.max_file_mb."""

    status_code = 413


class UnsupportedMediaError(InvalidInputError):
    """An upload of a file type the knowledge base cannot parse."""

    status_code = 415


class RetryLaterError(FlywheelError):
    """A refusal that clears by itself: the API adds a ``Retry-After`` header with ``retry_after`` seconds."""

    status_code = 503

    def __init__(self, message: str, *, hint: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = max(1, int(retry_after))


class LMUnavailableError(RetryLaterError, EndpointUnreachableError):
    """The LM endpoint's circuit breaker is open: calls are refused until a trial call succeeds."""

    status_code = 503


class RateLimitedError(RetryLaterError):
    """An API key went over its request rate or its concurrent-request limit."""

    status_code = 429


class QuotaExceededError(PayloadTooLargeError):
    """An upload would take a user over limits.upload_quota_mb."""

    status_code = 413


class DiskFullError(StorageError):
    """A write failed because the disk (or volume) under FLYWHEEL_HOME is full."""

    status_code = 507
