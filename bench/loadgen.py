"""A bounded async load generator for loopback HTTP services.

A fixed number of workers (the concurrency) share one ``httpx.AsyncClient`` and pull request
numbers from a common counter until ``requests`` have been sent or ``duration_s`` has passed,
whichever comes first; ``warmup`` requests run first at the same concurrency and are not
recorded (``after_warmup`` runs in between, e.g. to zero server-side counters). Every request
also has a timeout, so a run always stops by itself.

    result = asyncio.run(run_load(make_request, concurrency=8, requests=200, warmup=16))
    print(result.throughput, result.p50, result.p95, result.p99)

``make_request(i)`` returns a :class:`RequestSpec` (method, url, json body, headers, and an optional
``check`` that decides whether a 2xx answer is also a *correct* one).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request of a load run."""

    url: str
    json: Any = None
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    check: Callable[[httpx.Response], bool] | None = None


@dataclass
class LoadResult:
    """What a load run measured (latencies in seconds)."""

    concurrency: int
    latencies: list[float]
    errors: int
    duration_s: float
    error_samples: list[str] = field(default_factory=list)
    responses: list[tuple[int, Any]] = field(default_factory=list)  # (request number, parsed body) if kept

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        """Successful requests per second of wall-clock time."""
        return self.ok / self.duration_s if self.duration_s > 0 else float("nan")

    @property
    def mean(self) -> float:
        return sum(self.latencies) / len(self.latencies) if self.latencies else float("nan")

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 95)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    def summary(self) -> dict[str, float]:
        return {
            "concurrency": self.concurrency,
            "ok": self.ok,
            "errors": self.errors,
            "throughput": self.throughput,
            "mean": self.mean,
            "p50": self.p50,
            "p95": self.p95,
            "p99": self.p99,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation between closest ranks (NumPy's default)."""
    if not values:
        return float("nan")
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def merge(results: Sequence[LoadResult]) -> LoadResult:
    """Several runs at the same concurrency (e.g. interleaved rounds) as one result."""
    if not results:
        raise ValueError("nothing to merge")
    merged = LoadResult(results[0].concurrency, [], 0, 0.0)
    for result in results:
        merged.latencies += result.latencies
        merged.errors += result.errors
        merged.duration_s += result.duration_s
        merged.error_samples += result.error_samples
        merged.responses += result.responses
    return merged


async def run_load(
    make_request: Callable[[int], RequestSpec],
    *,
    concurrency: int,
    requests: int | None = None,
    duration_s: float | None = None,
    warmup: int = 0,
    timeout_s: float = 120.0,
    keep_responses: bool = False,
    client: httpx.AsyncClient | None = None,
    after_warmup: Callable[[], Any] | None = None,
) -> LoadResult:
    """Send requests with ``concurrency`` in flight until ``requests`` or ``duration_s`` is reached."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if requests is None and duration_s is None:
        raise ValueError("bound the run: give requests, duration_s or both")
    own = client is None
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = client or httpx.AsyncClient(timeout=timeout_s, limits=limits)
    try:
        if warmup:
            await _phase(client, make_request, concurrency, warmup, None, 0, False)
        if after_warmup is not None:
            after_warmup()  # e.g. zero the servers' counters
        return await _phase(client, make_request, concurrency, requests, duration_s, warmup, keep_responses)
    finally:
        if own:
            await client.aclose()


async def _phase(
    client: httpx.AsyncClient,
    make_request: Callable[[int], RequestSpec],
    concurrency: int,
    requests: int | None,
    duration_s: float | None,
    offset: int,
    keep: bool,
) -> LoadResult:
    result = LoadResult(concurrency, [], 0, 0.0)
    counter = iter(range(offset, offset + requests) if requests is not None else itertools.count(offset))
    started = time.perf_counter()
    deadline = started + duration_s if duration_s is not None else math.inf

    async def worker() -> None:
        for number in counter:
            if time.perf_counter() >= deadline:
                return
            spec = make_request(number)
            sent = time.perf_counter()
            try:
                response = await client.request(spec.method, spec.url, json=spec.json, headers=spec.headers)
                elapsed = time.perf_counter() - sent
                good = response.is_success and (spec.check is None or spec.check(response))
                if not good:
                    _error(result, f"HTTP {response.status_code}: {response.text[:200]}")
                    continue
            except httpx.HTTPError as exc:
                _error(result, f"{type(exc).__name__}: {exc}")
                continue
            result.latencies.append(elapsed)
            if keep:
                result.responses.append((number, _body(response)))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.duration_s = time.perf_counter() - started
    return result


def _error(result: LoadResult, message: str) -> None:
    result.errors += 1
    if len(result.error_samples) < 5:
        result.error_samples.append(message)


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
