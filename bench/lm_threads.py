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

from bench.report import markdown_table, median
from flywheel import threads
from flywheel.knowledge.embed import LocalEmbedder
from flywheel.lm.embedded import LlamaCppEngine, thread_budget

PROMPT = ("Write a short maintenance note about checking the oil level of a turboprop engine after a flight, "
          "listing the steps in order.")
CHUNK = ("The oil level is checked within thirty minutes of engine shutdown; the sight gauge must read between "
         "the add and full marks, and any drop of more than a quart per hour is recorded in the logbook. ") * 3


def decode_rate(engine: LlamaCppEngine, tokens: int) -> float:
    """Decode tokens/s of one greedy generation of up to ``tokens`` tokens (prompt evaluated first)."""
    with engine.context() as llm:
        llm.reset()
        llm.eval(llm.tokenize(PROMPT.encode()))
        generated, started = 0, time.perf_counter()
        for token in llm.generate([], temp=0.0, reset=False):
            generated += 1
            if generated >= tokens or token == llm.token_eos():
                break
        return generated / (time.perf_counter() - started)


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


def thread_budget_rows(rounds: int = 2, tokens: int = 96) -> tuple[list[list[object]], dict[str, float]]:
    cores = threads.cores()
    engines = {"budget (default)": LlamaCppEngine(n_threads=thread_budget(1)),
               "naive": LlamaCppEngine(n_threads=os.cpu_count() or 1)}
    torch_threads = {"budget (default)": None, "naive": os.cpu_count() or 1}
    embedder = LocalEmbedder()
    embedder.embed([CHUNK] * 16)  # model loaded, torch warmed
    alone: dict[str, list[float]] = {name: [] for name in engines}
    loaded: dict[str, list[float]] = {name: [] for name in engines}
    embed_rate: dict[str, list[float]] = {name: [] for name in engines}
    for engine in engines.values():
        decode_rate(engine, 16)  # contexts created (threads reserved), warm
    for _ in range(rounds):
        for name, engine in engines.items():
            embedder.threads = torch_threads[name]  # None: the budget's share
            alone[name].append(decode_rate(engine, tokens))
            rate, chunks = with_embedder_load(embedder, lambda engine=engine: decode_rate(engine, tokens))
            loaded[name].append(rate)
            embed_rate[name].append(chunks)
    # Both contexts are loaded in this process, so the budget's torch share here is cores − both
    # contexts' threads (at least 1); with one engine, as in serving, it is cores − its threads.
    rows = []
    for name, engine in engines.items():
        torch_n = torch_threads[name] or max(1, cores - engine.n_threads)
        rows.append([name, f"{engine.n_threads} / {engine.n_threads}", str(torch_n), f"{median(alone[name]):.0f}",
                     f"{median(loaded[name]):.0f}", f"{median(loaded[name]) / median(alone[name]):.2f}",
                     f"{median(embed_rate[name]):.1f}"])
    budget, naive = (median(loaded[n]) for n in engines)
    for engine in engines.values():
        engine.close()
    return rows, {"loaded_ratio": budget / naive, "cores": float(cores)}


def table(rows: list[list[object]]) -> str:
    return markdown_table(["threads", "llama.cpp decode / prompt threads", "torch threads", "decode tok/s alone",
                           "decode tok/s beside the embedder", "beside / alone", "embedder chunks/s meanwhile"],
                          rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()
    rows, summary = thread_budget_rows(args.rounds, args.tokens)
    print(table(rows))
    print(f"decode beside the embedder, budget / naive: {summary['loaded_ratio']:.2f}")


if __name__ == "__main__":
    main()
