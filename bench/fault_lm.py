"""The stub LM with injectable faults: the LM endpoint misbehaving in each way a real one does.

``POST /fault`` with ``{"mode": M, "times": n, "retry_after": s, "slow_s": x}`` makes the next ``n``
completion requests (every one when ``times`` is absent or null) fail with mode ``M``; ``{"mode":
"none"}`` heals it. ``GET /fault`` shows the mode and how many requests each mode has answered.

| mode | what the client sees |
|---|---|
| ``slow`` | the answer, after ``slow_s`` seconds (set it beyond the client's timeout) |
| ``error500`` | ``500 Internal Server Error`` with an OpenAI-style JSON error |
| ``malformed`` | ``200 OK`` whose body is not JSON at all |
| ``truncated`` | ``200 OK``, a well-formed completion whose content is half of the JSON answer |
| ``drop`` | the headers and half the body, then the connection closes (mid-answer, also for streams) |
| ``ratelimit`` | ``429 Too Many Requests`` with ``Retry-After: retry_after`` |

``POST /v1/embeddings`` answers deterministic 64-d bag-of-words vectors, so a whole ``flywheel serve``
(LM and embedder) can run against this one loopback process without loading any model.

Run: ``python -m bench.fault_lm --port 8091``; in tests, ``with running(FaultLM()) as lm: lm.api_base``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from bench import stub_lm
from bench.stub_lm import StubLM

MODES = ("none", "slow", "error500", "malformed", "truncated", "drop", "ratelimit")
EMBEDDING_DIMENSIONS = 64


def hash_vector(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A normalised bag-of-words vector: similar texts get similar vectors, no model needed."""
    vector = np.zeros(dimensions, dtype=np.float32)
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % dimensions] += 1.0
    vector /= np.linalg.norm(vector) or 1.0
    return [float(x) for x in vector]


class FaultLM(StubLM):
    """A :class:`bench.stub_lm.StubLM` whose completions fail on demand."""

    def __init__(self, latency_s: float = 0.0, model: str = "stub") -> None:
        super().__init__(latency_s, model)
        self.mode = "none"
        self.times: int | None = None
        self.retry_after = 1
        self.slow_s = 30.0
        self.counts: dict[str, int] = dict.fromkeys(MODES, 0)
        self.port = 0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def set_fault(self, mode: str, times: int | None = None, *, retry_after: int = 1, slow_s: float = 30.0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {', '.join(MODES)}")
        self.mode, self.times, self.retry_after, self.slow_s = mode, times, retry_after, slow_s

    def _next_mode(self) -> str:
        if self.mode == "none" or self.times == 0:
            return "none"
        if self.times is not None:
            self.times -= 1
        return self.mode

    async def route(self, method: str, path: str, raw: bytes) -> tuple[Any, ...]:
        if path == "/fault":
            if method == "POST":
                spec = json.loads(raw or b"{}")
                self.set_fault(
                    spec.get("mode", "none"),
                    spec.get("times"),
                    retry_after=int(spec.get("retry_after", 1)),
                    slow_s=float(spec.get("slow_s", 30.0)),
                )
            state = {"mode": self.mode, "times": self.times, "counts": self.counts}
            return "200 OK", "application/json", json.dumps(state).encode()
        if method == "POST" and path.endswith("/embeddings"):
            body = json.loads(raw or b"{}")
            texts = body.get("input") or []
            texts = [texts] if isinstance(texts, str) else texts
            data = [{"object": "embedding", "index": i, "embedding": hash_vector(str(t))} for i, t in enumerate(texts)]
            reply = {"object": "list", "data": data, "model": body.get("model", "hash"), "usage": {}}
            return "200 OK", "application/json", json.dumps(reply).encode()
        return await super().route(method, path, raw)

    async def complete(self, raw: bytes) -> tuple[Any, ...]:
        mode = self._next_mode()
        self.counts[mode] += 1
        if mode == "error500":
            error = {"error": {"message": "injected server error", "type": "server_error"}}
            return "500 Internal Server Error", "application/json", json.dumps(error).encode()
        if mode == "ratelimit":
            error = {"error": {"message": "injected rate limit", "type": "rate_limit_error"}}
            return (
                "429 Too Many Requests",
                "application/json",
                json.dumps(error).encode(),
                {"headers": {"retry-after": str(self.retry_after)}},
            )
        if mode == "malformed":
            return "200 OK", "application/json", b"<html>upstream proxy error</html>"
        if mode == "slow":
            await asyncio.sleep(self.slow_s)
        status, content_type, payload, *_ = await super().complete(raw)
        if mode == "truncated" and status.startswith("200") and content_type == "application/json":
            reply = json.loads(payload)
            content = reply["choices"][0]["message"]["content"]
            reply["choices"][0]["message"]["content"] = content[: max(1, len(content) // 2)]
            return status, content_type, json.dumps(reply).encode()
        if mode == "drop":
            return status, content_type, payload, {"cut": len(payload) // 2}
        return status, content_type, payload


@contextlib.contextmanager
def running(server: FaultLM, host: str = "127.0.0.1") -> Iterator[FaultLM]:
    """Serve ``server`` on a free loopback port from a background thread (its own event loop)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        holder["server"] = await asyncio.start_server(server.handle, host, 0, limit=2**24)
        server.port = holder["server"].sockets[0].getsockname()[1]
        started.set()
        async with holder["server"]:
            with contextlib.suppress(asyncio.CancelledError):
                await holder["server"].serve_forever()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), name="fault-lm", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the fault LM did not start")
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(lambda: [task.cancel() for task in asyncio.all_tasks(loop)])
        thread.join(5)


def main() -> None:
    stub_lm.main(FaultLM, port=8091, latency_ms=0.0, description="OpenAI-compatible stub LM with injectable faults.")


if __name__ == "__main__":
    main()
