"""A deterministic OpenAI-compatible chat server that 'classifies' feedback by keywords, instantly.

Stands in for an LM endpoint where many rows must go through the real DSPy program, pyfunc model
and Spark plumbing quickly: its answer depends only on the feedback text in the prompt, so two
paths that send the same prompts get the same answers. Every request is counted.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TEXT = re.compile(r"\[\[ ## text ## \]\]\n(.*?)\n\n(?:Respond|\[\[ ##)", re.DOTALL)


def classify(text: str) -> dict[str, Any]:
    lowered = text.lower()
    if any(word in lowered for word in ("thank", "love", "great", "awesome")):
        return {"sentiment": "positive", "reason": "Can't Tell", "justification": "praise"}
    if lowered.rstrip().endswith("?"):
        return {"sentiment": "neutral", "reason": "Can't Tell", "justification": "a question"}
    reason = (
        "Late Flight"
        if "late" in lowered or "delay" in lowered
        else "Cancelled Flight"
        if "cancel" in lowered
        else "Lost Luggage"
        if "bag" in lowered or "luggage" in lowered
        else "Customer Service Issue"
    )
    return {"sentiment": "negative", "reason": reason, "justification": " ".join(text.split()[:4])}


class FakeLM:
    def __init__(self) -> None:
        self.requests = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with lock:
                    outer.requests += 1
                prompt = "\n".join(str(m.get("content")) for m in body["messages"] if m.get("role") == "user")
                found = TEXT.findall(prompt)
                content = json.dumps(classify(found[-1] if found else ""))
                reply = json.dumps(
                    {
                        "id": "fake",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "fake"),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
