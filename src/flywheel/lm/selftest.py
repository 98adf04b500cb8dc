"""``python -m flywheel.lm.selftest``: the embedded model loads and decodes a multi-token prompt.

Run by ``scripts/setup.sh`` in a process of its own: a llama.cpp build for the wrong CPU crashes
(SIGSEGV/SIGILL) only once a prompt of several tokens is evaluated, so importing it is not enough.
Exit status 0 and one line of figures on success.
"""

from __future__ import annotations

import sys
import time

from flywheel.lm.model_file import resolve_model_path


def main() -> int:
    """Load the packaged (or configured) GGUF, complete a short prompt; 0 on success."""
    # Lazy (start-up time): only this path needs llama.cpp.
    from llama_cpp import Llama

    path = resolve_model_path(None)
    llm = Llama(model_path=str(path), n_ctx=512, n_threads=1, verbose=False)
    started = time.perf_counter()
    out = llm.create_completion("The three primary colours are red, yellow and", max_tokens=8, temperature=0.0)
    seconds = time.perf_counter() - started
    tokens = out["usage"]["completion_tokens"]
    print(f"embedded LM ok: {path.name}, {tokens} tokens in {seconds:.2f} s")
    llm.close()
    return 0 if tokens > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
