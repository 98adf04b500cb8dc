"""LM decode speed alone and beside a concurrent embedder load: the default thread budget vs naive.

* budget (default): llama.cpp with ``thread_budget(1)`` threads for decode *and* prompts, torch's
  intra-op threads = the cores the loaded context leaves (``flywheel.threads``);
* naive: llama.cpp with ``cpu_count`` threads (decode and prompts), torch at its default (every core).

Both contexts are loaded once, in one process; the variants alternate (budget, naive, budget, …)
after a warm-up, and each measures decode tokens/s alone, then decode tokens/s while another thread
embeds 90-token chunks without pause (its chunks/s are reported too: the budget must not buy LM
speed by starving the embedder). Part of ``python -m bench.lm``; alone: ``python -m bench.lm_threads``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable

from bench.report import markdown_table, median, write_section
from flywheel import threads
from flywheel.knowledge.embed import LocalEmbedder
from flywheel.lm.embedded import LlamaCppEngine, thread_budget

PROMPT = (
    "Write a short maintenance note about checking the oil level of a turboprop engine after a flight, "
    "listing the steps in order."
)
CHUNK = (
    "The oil level is checked within thirty minutes of engine shutdown; the sight gauge must read between "
    "the add and full marks, and any drop of more than a quart per hour is recorded in the logbook. "
) * 3


def decode_rate(engine: LlamaCppEngine, tokens: int, budget_s: float = 6.0) -> float:
    """Decode tokens/s of greedy generation, ``tokens`` at a time (the prompt evaluated again before each
    run, outside the timing; an end-of-text token does not stop the count), for about ``budget_s`` seconds:
    a slow variant is measured over fewer tokens instead of running for minutes."""
    generated, seconds = 0, 0.0
    with engine.context() as llm:
        prompt = llm.tokenize(PROMPT.encode())
        while seconds < budget_s:
            llm.reset()
            llm.eval(prompt)
            started = time.perf_counter()
            for count, _token in enumerate(llm.generate([], temp=0.0, reset=False), start=1):
                generated += 1
                if count >= tokens or seconds + time.perf_counter() - started > budget_s:
                    break
            seconds += time.perf_counter() - started
    return generated / seconds


def with_embedder_load(embedder: LocalEmbedder, work: Callable[[], float]) -> tuple[float, float]:
    """``work()`` while another thread embeds batches of chunks non-stop; (work's result, chunks/s)."""
    stop = threading.Event()
    done = [0]

    def load() -> None:
        while not stop.is_set():
            embedder.embed([CHUNK] * 16)
            done[0] += 16

    worker = threading.Thread(target=load, daemon=True)
    started = time.perf_counter()
    worker.start()
    time.sleep(0.5)  # the load is running before the LM starts
    try:
        result = work()
    finally:
        stop.set()
        worker.join()
    return result, done[0] / (time.perf_counter() - started)


def thread_budget_rows(rounds: int = 2, tokens: int = 128) -> tuple[list[list[object]], dict[str, float]]:
    cores = threads.cores()
    engines = {
        "budget (default)": LlamaCppEngine(n_threads=thread_budget(1)),
        "naive": LlamaCppEngine(n_threads=os.cpu_count() or 1),
    }
    torch_threads = {"budget (default)": None, "naive": os.cpu_count() or 1}
    embedder = LocalEmbedder()
    embedder.embed([CHUNK] * 16)  # model loaded, torch warmed
    alone: dict[str, list[float]] = {name: [] for name in engines}
    loaded: dict[str, list[float]] = {name: [] for name in engines}
    embed_rate: dict[str, list[float]] = {name: [] for name in engines}
    for engine in engines.values():
        decode_rate(engine, 16, 0.5)  # contexts created (threads reserved), warm
    for _ in range(rounds):
        for name, engine in engines.items():
            embedder.threads = torch_threads[name]  # None: the budget's share
            alone[name].append(decode_rate(engine, tokens))
            rate, chunks = with_embedder_load(embedder, lambda engine=engine: decode_rate(engine, tokens))
            loaded[name].append(rate)
            embed_rate[name].append(chunks)
            print(
                f"{name}: decode alone {alone[name][-1]:.0f} tok/s, beside the embedder {rate:.0f} tok/s "
                f"(embedder {chunks:.1f} chunks/s)",
                flush=True,
            )
    # Both contexts are loaded in this process, so the budget's torch share here is cores − both
    # contexts' threads (at least 1); with one engine, as in serving, it is cores − its threads.
    rows = []
    for name, engine in engines.items():
        torch_n = torch_threads[name] or max(1, cores - engine.n_threads)
        rows.append(
            [
                name,
                f"{engine.n_threads} / {engine.n_threads}",
                str(torch_n),
                f"{median(alone[name]):.0f}",
                f"{median(loaded[name]):.0f}",
                f"{median(loaded[name]) / median(alone[name]):.2f}",
                f"{median(embed_rate[name]):.1f}",
            ]
        )
    budget, naive = (median(loaded[n]) for n in engines)
    for engine in engines.values():
        engine.close()
    return rows, {"loaded_ratio": budget / naive, "cores": float(cores)}


def table(rows: list[list[object]]) -> str:
    return markdown_table(
        [
            "threads",
            "llama.cpp decode / prompt threads",
            "torch threads",
            "decode tok/s alone",
            "decode tok/s beside the embedder",
            "beside / alone",
            "embedder chunks/s meanwhile",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows, summary = thread_budget_rows(args.rounds, args.tokens)
    print(table(rows))
    print(f"decode beside the embedder, budget / naive: {summary['loaded_ratio']:.2f}")
    write_section(
        "lm_threads",
        "Thread budget: LM decode alone and beside a concurrent embedder",
        (
            "SmolLM2 (llama.cpp) and MiniLM (torch) in one process. Budget (default): llama.cpp `thread_budget(1)` "
            "threads for decode and prompts, torch intra-op threads = the cores the loaded contexts leave "
            "(`flywheel.threads`); naive: llama.cpp `cpu_count` threads, torch at its default. Variants alternated, "
            f"medians of {args.rounds} rounds of ~6 s of decoding each. Load average {load:.1f} at the start on "
            f"{int(summary['cores'])} cores: the kernel shares the cores among all runnable threads of every "
            "process, so on a machine shared with other jobs a variant with more threads also takes CPU from "
            "them, which this single-process comparison cannot separate.\n\n" + table(rows)
        ),
        "python -m bench.lm_threads",
    )


if __name__ == "__main__":
    main()
