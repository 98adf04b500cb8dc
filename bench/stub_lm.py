"""An OpenAI-compatible stub LM with a fixed latency, for serving benchmarks.

``POST /v1/chat/completions`` waits exactly ``--latency-ms`` (an ``asyncio.sleep``, so any number of
requests wait at once) and answers a minimal valid instance of the request's ``response_format``
JSON schema (strings, numbers, booleans, enums, consts, arrays, objects, ``$ref``, ``anyOf``), or a
fixed sentence when no schema is asked for; ``stream: true`` gets the same answer as server-sent
events. It is a plain asyncio HTTP/1.1 server (keep-alive, no framework) so that it costs far
less CPU per request than the services measured against it; ``python -m bench.serve`` measures
its own capacity (requests/s at concurrency N, ideally N / latency) next to theirs.

``GET /stats`` returns ``{"requests": n, "busy_s": total time spent answering}`` and
``POST /stats/reset`` zeroes them, so a benchmark can read the LM time per request at the LM;
``POST /config`` with ``{"latency_ms": 1000}`` changes the latency; ``GET /last`` returns the last
completion request as received (to check that two clients send the same prompt).

Run: python -m bench.stub_lm --port 8090 --latency-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

TEXT_ANSWER = "The stub LM answers every question with this sentence."
STRING_VALUE = "stub"
_MAX_DEPTH = 12


def instance(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A minimal valid instance of a JSON schema (the subset LLM structured outputs use).

    Objects get every declared property; arrays ``max(minItems, 1)`` items (0 when ``maxItems`` is
    0); numbers their minimum (else 1); strings ``"stub"`` fitted to min/maxLength; enums and
    consts their first value. ``pattern`` and ``format`` are not interpreted.
    """
    root = schema if root is None else root
    if depth > _MAX_DEPTH or not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return instance(_resolve(schema["$ref"], root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = schema[key]
            chosen = next((o for o in options if not _is_null(o, root)), options[0])
            return instance(chosen, root, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = instance(part, root, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
            else:
                return value
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        return {name: instance(spec, root, depth + 1) for name, spec in (schema.get("properties") or {}).items()}
    if kind == "array":
        return _array(schema, root, depth)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema)


def _resolve(ref: str, root: Any) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported, not {ref!r}")
    node = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _is_null(schema: Any, root: Any) -> bool:
    if isinstance(schema, dict) and "$ref" in schema:
        schema = _resolve(schema["$ref"], root)
    return isinstance(schema, dict) and schema.get("type") == "null"


def _array(schema: dict[str, Any], root: Any, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems") or []
    values = [instance(item, root, depth + 1) for item in prefix]
    wanted = max(int(schema.get("minItems", 0)), 1)
    if "maxItems" in schema:
        wanted = min(wanted, int(schema["maxItems"]))
    items = schema.get("items")
    while len(values) < wanted and isinstance(items, dict):
        values.append(instance(items, root, depth + 1))
    return values


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    value: float = 1
    if "minimum" in schema:
        value = schema["minimum"]
    elif "exclusiveMinimum" in schema:
        value = schema["exclusiveMinimum"] + (1 if integer else 0.5)
    if "maximum" in schema and value > schema["maximum"]:
        value = schema["maximum"]
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        value = schema["exclusiveMaximum"] - (1 if integer else 0.5)
    return int(value) if integer else float(value)


def _string(schema: dict[str, Any]) -> str:
    value = STRING_VALUE
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    if len(value) < low:
        value = value + "x" * (low - len(value))
    if high is not None:
        value = value[: int(high)]
    return value


def answer_for(body: dict[str, Any]) -> str:
    """The completion text for a chat request: a schema instance as JSON, or a fixed sentence."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        return json.dumps(instance(spec.get("schema", spec)))
    if fmt.get("type") == "json_object":
        return "{}"
    return TEXT_ANSWER


class StubLM:
    """The server: fixed latency per completion, counters for the benchmark."""

    def __init__(self, latency_s: float, model: str = "stub") -> None:
        self.latency_s = latency_s
        self.model = model
        self.requests = 0
        self.busy_s = 0.0
        self.last: dict[str, Any] = {}
        self._answers: dict[str, str] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = [*lines[0].split(" "), "", ""][:3]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                length = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(length) if length else b""
                status, content_type, payload, *more = await self.route(method, path.split("?", 1)[0], raw)
                extra: dict[str, Any] = more[0] if more else {}  # {"headers": {...}, "cut": n} (bench.fault_lm)
                close = headers.get("connection", "").lower() == "close"
                extra_headers = "".join(f"{k}: {v}\r\n" for k, v in extra.get("headers", {}).items())
                head = (
                    f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(payload)}\r\n"
                    f"{extra_headers}connection: {'close' if close else 'keep-alive'}\r\n\r\n"
                ).encode()
                if extra.get("cut") is not None:  # the connection drops after ``cut`` bytes of the body
                    writer.write(head + payload[: extra["cut"]])
                    await writer.drain()
                    return
                writer.write(head + payload)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def route(self, method: str, path: str, raw: bytes) -> tuple[Any, ...]:
        if method == "POST" and path.endswith("/chat/completions"):
            return await self.complete(raw)
        if method == "GET" and path in ("/health", "/v1/health"):
            return "200 OK", "application/json", b'{"status": "ok"}'
        if method == "GET" and path.endswith("/models"):
            data = {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "bench"}]}
            return "200 OK", "application/json", json.dumps(data).encode()
        if method == "GET" and path == "/stats":
            stats = {"requests": self.requests, "busy_s": self.busy_s, "latency_s": self.latency_s}
            return "200 OK", "application/json", json.dumps(stats).encode()
        if method == "POST" and path == "/config":
            self.latency_s = float(json.loads(raw or b"{}").get("latency_ms", self.latency_s * 1000)) / 1000
            return "200 OK", "application/json", json.dumps({"latency_s": self.latency_s}).encode()
        if method == "GET" and path == "/last":
            return "200 OK", "application/json", json.dumps(self.last).encode()
        if method == "POST" and path == "/stats/reset":
            self.requests, self.busy_s = 0, 0.0
            return "200 OK", "application/json", b"{}"
        return "404 Not Found", "application/json", b'{"error": {"message": "not found"}}'

    async def complete(self, raw: bytes) -> tuple[Any, ...]:
        started = time.perf_counter()
        try:
            body = self.last = json.loads(raw)
            key = json.dumps(body.get("response_format"), sort_keys=True)
            text = self._answers.get(key)
            if text is None:
                text = self._answers[key] = answer_for(body)
            prompt_chars = sum(len(str(m.get("content") or "")) for m in body.get("messages") or [])
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            error = {"error": {"message": f"bad request: {exc}", "type": "invalid_request_error"}}
            return "400 Bad Request", "application/json", json.dumps(error).encode()
        await asyncio.sleep(self.latency_s)
        model = body.get("model") or self.model
        usage = {
            "prompt_tokens": prompt_chars // 4,
            "completion_tokens": len(text) // 4,
            "total_tokens": (prompt_chars + len(text)) // 4,
        }
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.get("stream"):
            chunks = [
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage},
            ]
            payload = (
                b"".join(
                    f"data: {json.dumps(dict(c, id=ident, object='chat.completion.chunk', created=created, model=model))}"  # noqa: E501
                    "\n\n".encode()
                    for c in chunks
                )
                + b"data: [DONE]\n\n"
            )
            self._count(started)
            return "200 OK", "text/event-stream", payload
        reply = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        }
        self._count(started)
        return "200 OK", "application/json", json.dumps(reply).encode()

    def _count(self, started: float) -> None:
        self.requests += 1
        self.busy_s += time.perf_counter() - started


async def serve(host: str, port: int, latency_s: float, stub: StubLM | None = None) -> None:
    stub = stub or StubLM(latency_s)
    server = await asyncio.start_server(stub.handle, host, port, backlog=1024, limit=2**24)
    async with server:
        await server.serve_forever()


def main(
    server_class: type[StubLM] = StubLM,
    *,
    port: int = 8090,
    latency_ms: float = 50.0,
    description: str = "OpenAI-compatible stub LM with a fixed latency.",
) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--latency-ms", type=float, default=latency_ms)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.latency_ms / 1000, server_class(args.latency_ms / 1000)))


if __name__ == "__main__":
    main()
