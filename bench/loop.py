"""The whole flywheel, end to end, on a running service: answers → feedback → optimize → gate → hot swap.

On the sample knowledge base (36 documents, its users and groups) and its labelled questions
(samples/datasets/rag_questions.jsonl, a seeded 50/50 split into *feedback* and *held-out* questions):

1. ``flywheel serve`` (embedded SmolLM2, the RAG chatbot as a new user gets it) answers both halves
   through ``/v1/chat/completions``, each question asked with its user's API key;
2. users give feedback through ``POST /feedback`` on the feedback half: a thumbs-up where the answer
   holds the gold answer (whole tokens), else a thumbs-down with the gold answer as the correction;
3. ``flywheel optimize rag --from-feedback --dev held-out`` (the default ``auto`` optimizer) builds a
   candidate from that feedback only and gates it on the held-out half;
4. the running service picks up the new champion by itself (no restart; ``serve.reload_interval_s``),
   and the same questions are asked again.

Every step's metric is reported: answer F1 / answer-contains / refusals before and after, on both
halves, the gate's decision, and the seconds from promotion to the first answer of the new version.

Run: python -m bench.loop [--no-write]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench import services
from bench.report import markdown_table, write_section
from flywheel.config import load_settings
from flywheel.evaluate.metrics import answer_contains, mean, token_f1
from flywheel.registry.programs import ProgramRegistry

SEED = 0
NOT_FOUND_PREFIX = "I could not find"


def log(message: str) -> None:
    print(f"loop: {message}", file=sys.stderr, flush=True)


def ask_all(url: str, keys: dict[str, str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each question through the OpenAI-compatible route as its user; answer, trace id, version header."""
    out = []
    with httpx.Client(timeout=600) as client:
        for row in rows:
            reply = client.post(
                f"{url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {keys[row['user']]}"},
                json={"model": "rag", "messages": [{"role": "user", "content": row["question"]}]},
            )
            reply.raise_for_status()
            body = reply.json()
            out.append(
                {
                    "answer": body["choices"][0]["message"]["content"],
                    "trace_id": body.get("flywheel", {}).get("trace_id"),
                }
            )
    return out


def score(rows: list[dict[str, Any]], answers: list[dict[str, Any]]) -> dict[str, float | None]:
    return {
        "f1": mean(token_f1(r, a) for r, a in zip(rows, answers, strict=True)),
        "contains": mean(answer_contains(r, a) for r, a in zip(rows, answers, strict=True)),
        "refused": mean(float(a["answer"].startswith(NOT_FOUND_PREFIX)) for a in answers),
    }


def give_feedback(url: str, keys: dict[str, str], rows: list[dict[str, Any]], answers: list[dict[str, Any]]) -> dict:
    counts = {"up": 0, "down_with_correction": 0}
    with httpx.Client(timeout=120) as client:
        for row, answer in zip(rows, answers, strict=True):
            good = answer_contains(row, answer) == 1.0
            body = {"trace_id": answer["trace_id"], "rating": "up" if good else "down"}
            if not good:
                body["correction"] = row["answer"]
            client.post(
                f"{url}/feedback", headers={"Authorization": f"Bearer {keys[row['user']]}"}, json=body
            ).raise_for_status()
            counts["up" if good else "down_with_correction"] += 1
    return counts


def wait_for_version(url: str, key: str, version: int, timeout_s: float = 120) -> float:
    """Seconds until the service reports ``version`` as the rag champion it serves."""
    started = time.perf_counter()
    with httpx.Client(timeout=30) as client:
        while time.perf_counter() - started < timeout_s:
            models = client.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
            served = {m["id"]: m.get("version") for m in models.get("data", [])}
            if str(served.get("rag")) == str(version):
                return time.perf_counter() - started
            time.sleep(0.5)
    raise TimeoutError(f"the service did not load version {version} within {timeout_s} s")


def run() -> dict[str, Any]:
    home = services.fresh_home()
    rows = [r for r in services.questions() if r.get("answer")]
    random.Random(SEED).shuffle(rows)
    middle = len(rows) // 2
    feedback_rows, held_out = rows[:middle], rows[middle:]
    held_out_path = Path(home) / "held_out.jsonl"
    held_out_path.write_text("".join(json.dumps(r) + "\n" for r in held_out))
    users = sorted({r["user"] for r in rows})
    keys = services.create_keys(home, users)
    env = services.base_env(
        home,
        LM__N_THREADS="1",
        LM__CACHE="false",
        SERVE__RELOAD_INTERVAL_S="1",
        LIMITS__RATE_PER_MINUTE="0",
        LIMITS__MAX_CONCURRENT="0",
    )
    result: dict[str, Any] = {"feedback_q": len(feedback_rows), "held_out_q": len(held_out)}
    with services.flywheel_service(env) as service:
        log(f"answering {len(rows)} questions before optimization …")
        before = {
            "feedback": ask_all(service.url, keys, feedback_rows),
            "held_out": ask_all(service.url, keys, held_out),
        }
        result["feedback"] = give_feedback(service.url, keys, feedback_rows, before["feedback"])
        log(f"feedback given: {result['feedback']}; optimizing from it …")
        started = time.perf_counter()
        output = services.flywheel(
            "optimize", "rag", "--from-feedback", "--dev", str(held_out_path), env=env, timeout=3600
        )
        result["optimize_s"] = time.perf_counter() - started
        result["optimize_output"] = output[-3000:]
        champion = ProgramRegistry(load_settings(home=home)).get("rag", "champion")
        result["champion"] = champion.version if champion else None
        result["promoted"] = bool(champion and champion.version > 1)
        if result["promoted"]:
            result["swap_s"] = wait_for_version(service.url, keys[users[0]], champion.version)
        log("answering the same questions again …")
        after = {
            "feedback": ask_all(service.url, keys, feedback_rows),
            "held_out": ask_all(service.url, keys, held_out),
        }
    result["scores"] = {
        f"{when} · {half}": score(feedback_rows if half == "feedback" else held_out, answers[half])
        for when, answers in (("before", before), ("after", after))
        for half in answers
    }
    return result


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def render(result: dict[str, Any], wall_s: float) -> str:
    table = markdown_table(
        ["step · questions", "answer F1", "answer contains", "refused"],
        [[name, fmt(s["f1"]), fmt(s["contains"]), fmt(s["refused"])] for name, s in result["scores"].items()],
    )
    swap = (
        f"the running service served it {result['swap_s']:.1f} s later without a restart"
        if result.get("swap_s") is not None
        else "no new champion, nothing to swap"
    )
    gate = f"champion is now version {result['champion']}" if result["promoted"] else "the gate kept the old champion"
    return f"""{table}

Sample knowledge base, {result["feedback_q"]} questions that received feedback and {result["held_out_q"]} held-out
questions (seeded 50/50 split of `samples/datasets/rag_questions.jsonl`, each asked with its user's API key through
`/v1/chat/completions`; embedded SmolLM2-135M, one llama.cpp thread). Feedback through `POST /feedback`:
{result["feedback"]["up"]} thumbs-up, {result["feedback"]["down_with_correction"]} thumbs-down with a correction.
`flywheel optimize rag --from-feedback --dev held-out` ({result["optimize_s"] / 60:.1f} min): {gate}; {swap}.
Whole run {wall_s / 60:.1f} min."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    args = parser.parse_args()
    services.exit_on_sigterm()
    started = time.perf_counter()
    result = run()
    body = render(result, time.perf_counter() - started)
    print(body, flush=True)
    print(result.get("optimize_output", ""), file=sys.stderr)
    if not args.no_write:
        write_section(
            "loop",
            "The flywheel end to end: serve → feedback → optimize → gate → hot swap",
            body,
            "python -m bench.loop",
        )


if __name__ == "__main__":
    main()
