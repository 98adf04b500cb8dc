"""Abuse limits per API key: a request rate (token bucket), concurrent requests, and request body size.

An ASGI middleware in front of every route (``/health``, ``/ready``, the web page and its static files
excepted) applies, in order:

1. **body size**: a ``Content-Length`` over ``limits.max_body_mb`` (``limits.max_upload_mb`` for
   ``POST /documents``) is a 413 before the body is read; a body sent without a length is counted
   as it arrives and stopped at the same limit;
2. **rate**: each key has a bucket of ``limits.burst`` requests refilled at ``limits.rate_per_minute``;
   an empty bucket is a 429 with ``Retry-After`` (seconds until a request is allowed again);
3. **concurrency**: at most ``limits.max_concurrent`` requests of one key in flight (a streamed answer
   counts until its last byte); one more is a 429 with ``Retry-After: 1``.

Keys are counted by their SHA-256, whether or not they are valid (an unknown key is then refused by
authentication), so the limiter never holds plaintext keys. Requests without a key are not limited
here: they get a 401 without touching a store. Setting a limit to 0 turns it off. The per-user upload
quota is checked by the upload route (:func:`check_upload_quota`).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException

from flywheel.config import LimitsSettings
from flywheel.errors import FlywheelError, PayloadTooLargeError, QuotaExceededError, RateLimitedError

EXEMPT_PREFIXES = ("/static/", "/docs", "/redoc", "/openapi.json")
EXEMPT_PATHS = ("/", "/health", "/ready", "/favicon.ico")
MAX_TRACKED_KEYS = 10_000
MB = 1024 * 1024


class KeyLimiter:
    """Token bucket and in-flight count per key digest (thread-safe, bounded memory)."""

    def __init__(
        self, rate_per_minute: float, burst: int, max_concurrent: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = max(1, burst)
        self.max_concurrent = max_concurrent
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # digest → (tokens, at)
        self._in_flight: dict[str, int] = {}

    def acquire(self, digest: str) -> None:
        """Take one request for ``digest`` or raise :class:`RateLimitedError`; pair with :meth:`release`."""
        with self._lock:
            if self.rate > 0:
                now = self._clock()
                tokens, at = self._buckets.pop(digest, (float(self.burst), now))
                tokens = min(float(self.burst), tokens + (now - at) * self.rate)
                if tokens < 1.0:
                    self._buckets[digest] = (tokens, now)
                    wait = math.ceil((1.0 - tokens) / self.rate)
                    raise RateLimitedError(
                        f"Too many requests with this API key (limit {self.rate * 60:g} per minute, "
                        f"bursts of {self.burst}).",
                        hint=f"Retry in {wait} s, slow down, or ask an admin to raise limits.rate_per_minute.",
                        retry_after=wait,
                    )
                self._buckets[digest] = (tokens - 1.0, now)
                while len(self._buckets) > MAX_TRACKED_KEYS:
                    self._buckets.popitem(last=False)
            if self.max_concurrent > 0:
                running = self._in_flight.get(digest, 0)
                if running >= self.max_concurrent:
                    raise RateLimitedError(
                        f"This API key already has {running} requests in flight (limit {self.max_concurrent}).",
                        hint="Wait for an answer before sending more, or ask an admin to raise limits.max_concurrent.",
                        retry_after=1,
                    )
                self._in_flight[digest] = running + 1

    def release(self, digest: str) -> None:
        if self.max_concurrent <= 0:
            return
        with self._lock:
            running = self._in_flight.get(digest, 0) - 1
            if running > 0:
                self._in_flight[digest] = running
            else:
                self._in_flight.pop(digest, None)


def key_digest(headers: list[tuple[bytes, bytes]]) -> str | None:
    """SHA-256 of the API key in ``Authorization: Bearer`` or ``X-API-Key``, if any."""
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"authorization" and value[:7].lower() == b"bearer ":
            key = value[7:].strip()
        elif lowered == b"x-api-key":
            key = value.strip()
        else:
            continue
        if key:
            return hashlib.sha256(key).hexdigest()
    return None


def error_response(exc: FlywheelError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": exc.to_dict()}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    return exc.status_code, headers, body


class LimitsMiddleware:
    """Pure ASGI middleware (streams keep their concurrency slot until the last byte is sent)."""

    def __init__(self, app: Any, settings: LimitsSettings, on_refusal: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.limiter = KeyLimiter(settings.rate_per_minute, settings.burst, settings.max_concurrent)
        self.on_refusal = on_refusal

    def body_limit(self, method: str, path: str) -> int:
        mb = (
            self.settings.max_upload_mb
            if method == "POST" and path.rstrip("/") == "/documents"
            else self.settings.max_body_mb
        )
        return int(mb * MB) if mb > 0 else 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        limit = self.body_limit(scope.get("method", "GET"), path)
        if limit:
            length = next((v for k, v in headers if k.lower() == b"content-length"), None)
            if length is not None and length.isdigit() and int(length) > limit:
                await self._refuse(send, _too_large(limit), "body_size")
                return
            receive = _counting(receive, limit)
        digest = key_digest(headers)
        if digest is None:
            await self.app(scope, receive, send)
            return
        try:
            self.limiter.acquire(digest)
        except RateLimitedError as exc:
            await self._refuse(send, exc, "concurrency" if "in flight" in exc.message else "rate")
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release(digest)

    async def _refuse(self, send: Any, exc: FlywheelError, reason: str) -> None:
        if self.on_refusal is not None:
            self.on_refusal(reason)
        status, headers, body = error_response(exc)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The request body is over the {limit / MB:.3g} MB limit.",
        hint="Send less (split uploads into several requests), or ask an admin to raise "
        "limits.max_body_mb / limits.max_upload_mb.",
    )


def _counting(receive: Any, limit: int) -> Any:
    """``receive`` that raises a 413 error once more than ``limit`` body bytes have arrived."""
    seen = 0

    async def wrapped() -> dict[str, Any]:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:  # an HTTPException, so FastAPI's body parsing passes it on as a 413
                error = _too_large(limit)
                raise HTTPException(413, detail=f"{error.message} {error.hint}")
        return message

    return wrapped


def check_upload_quota(settings: LimitsSettings, used_bytes: int, incoming_bytes: int) -> None:
    """Raise :class:`QuotaExceededError` when ``used + incoming`` goes over the per-user upload quota."""
    quota = int(settings.upload_quota_mb * MB)
    if quota <= 0 or used_bytes + incoming_bytes <= quota:
        return
    raise QuotaExceededError(
        f"This upload ({incoming_bytes / MB:.1f} MB) would take you over your {settings.upload_quota_mb:g} MB "
        f"document quota ({used_bytes / MB:.1f} MB used).",
        hint="Delete documents you no longer need (DELETE /documents/{id}), or ask an admin to raise "
        "limits.upload_quota_mb.",
    )
