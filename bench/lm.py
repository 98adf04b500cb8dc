"""The embedded LM: raw prefill/decode speed, and structured-output parse success.

Parse success compares, on the same 50 prompts and the same model:
  * DSPy's plain ChatAdapter (no JSON fallback), unconstrained text;
  * DSPy's JSONAdapter with the model merely *asked* for JSON (engine declares no schema support);
  * DSPy's JSONAdapter with Flywheel's grammar-constrained decoding (the default).

Run: python -m bench.lm [--prompts 50]
"""

from __future__ import annotations

import argparse
import csv
import time
from typing import Literal

import dspy
from dspy.utils.exceptions import AdapterParseError

from bench import lm_threads
from bench.lm_threads import thread_budget_rows
from bench.report import SHARED_DATA, markdown_table, median, write_section
from flywheel.lm.embedded import LlamaCppEngine

REASONS = Literal[
    "none",
    "Customer Service Issue",
    "Late Flight",
    "Cancelled Flight",
    "Lost Luggage",
    "Bad Flight",
    "Flight Booking Problems",
    "Flight Attendant Complaints",
    "longlines",
    "Damaged Luggage",
    "Can't Tell",
]


class Feedback(dspy.Signature):
    """Classify an airline customer's tweet: its sentiment and, if negative, the complaint reason."""

    text: str = dspy.InputField()
    sentiment: Literal["negative", "neutral", "positive"] = dspy.OutputField()
    reason: REASONS = dspy.OutputField(desc="'none' unless the sentiment is negative")


class UnconstrainedEngine(LlamaCppEngine):
    """The same engine, declaring no structured-output support: the model is only prompted."""

    supports_response_schema = False
    supported_params = frozenset({"temperature", "max_tokens", "top_p", "stop", "seed"})


def load_prompts(n: int) -> list[str]:
    path = SHARED_DATA / "airline_feedback" / "dev.csv"
    if not path.exists():
        raise SystemExit(f"{path} is missing: this benchmark needs ../shared/data")
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["text"] for _, row in zip(range(n), csv.DictReader(handle), strict=False)]


def raw_speed(engine: LlamaCppEngine, rounds: int = 5) -> tuple[float, float]:
    """Prefill and decode tokens/s of llama.cpp itself (no DSPy), medians over ``rounds``."""
    prompt = " ".join(load_prompts(12))
    prefill, decode = [], []
    with engine.context() as llm:
        tokens = llm.tokenize(prompt.encode())
        for _ in range(rounds):
            llm.reset()
            started = time.perf_counter()
            llm.eval(tokens)
            prefill.append(len(tokens) / (time.perf_counter() - started))
            generated, started = 0, time.perf_counter()
            for token in llm.generate([], temp=0.0, reset=False):
                generated += 1
                if generated >= 128 or token == llm.token_eos():
                    break
            decode.append(generated / (time.perf_counter() - started))
    return median(prefill), median(decode)


def parse_rate(lm: dspy.LM, adapter: dspy.Adapter, prompts: list[str]) -> tuple[int, float]:
    ok, started = 0, time.perf_counter()
    program = dspy.Predict(Feedback)
    with dspy.context(lm=lm, adapter=adapter):
        for text in prompts:
            try:
                program(text=text)
                ok += 1
            except AdapterParseError:
                pass
    return ok, (time.perf_counter() - started) / len(prompts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--skip-threads", action="store_true", help="skip the thread-budget scenario")
    args = parser.parse_args()
    prompts = load_prompts(args.prompts)
    constrained = LlamaCppEngine()
    prefill, decode = raw_speed(constrained)
    plain = UnconstrainedEngine()
    variants = [
        (
            "ChatAdapter, unconstrained",
            dspy.LM("embedded/smollm2", engine=plain, cache=False, temperature=0.0),
            dspy.ChatAdapter(use_json_adapter_fallback=False),
        ),
        (
            "JSONAdapter, prompted only",
            dspy.LM("embedded/smollm2", engine=plain, cache=False, temperature=0.0),
            dspy.JSONAdapter(),
        ),
        (
            "JSONAdapter + grammar (Flywheel)",
            dspy.LM("embedded/smollm2", engine=constrained, cache=False, temperature=0.0),
            dspy.JSONAdapter(),
        ),
    ]
    rows = []
    baseline = None
    for name, lm, adapter in variants:
        ok, seconds = parse_rate(lm, adapter, prompts)
        baseline = baseline if baseline is not None else ok
        rows.append([name, f"{ok}/{len(prompts)}", f"{ok / len(prompts):.0%}", f"{seconds:.2f}"])
    speed = markdown_table(
        ["measure", "tokens/s"], [["prefill (prompt eval)", f"{prefill:.0f}"], ["decode (generation)", f"{decode:.0f}"]]
    )
    parse = markdown_table(["adapter / decoding", "parsed", "success rate", "s per call"], rows)
    body = (
        "SmolLM2-135M-Instruct Q4_1 through llama.cpp, in-process, one context, temperature 0.\n\n"
        f"{speed}\n\nStructured outputs on the first {len(prompts)} tweets of airline_feedback/dev.csv "
        "(signature: `text -> sentiment: Literal[3], reason: Literal[11]`); a call counts as parsed when the "
        "adapter returns every field with a valid value.\n\n" + parse
    )
    if not args.skip_threads:
        budget_rows, summary = thread_budget_rows()
        body += (
            "\n\n### Thread budget: decode beside a concurrent embedder load (same process)\n\n"
            f"{int(summary['cores'])} cores; budget (default): llama.cpp `thread_budget(1)` threads for decode "
            "and prompts, torch intra-op threads = the cores the loaded contexts leave (`flywheel.threads`); "
            "naive: llama.cpp `cpu_count` threads, torch at its default. Variants alternated, medians of 2 "
            "rounds of ~6 s of decoding each (`python -m bench.lm_threads`). "
            "Decode beside the embedder, budget / naive: "
            f"{summary['loaded_ratio']:.2f}.\n\n" + lm_threads.table(budget_rows)
        )
    print(speed, "\n")
    print(parse)
    write_section("lm", "Embedded LM: speed and structured-output parse rate", body, "python -m bench.lm")


if __name__ == "__main__":
    main()
