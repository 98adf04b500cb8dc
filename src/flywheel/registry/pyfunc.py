"""The MLflow pyfunc model: a Flywheel program behind a DataFrame-in, DataFrame-out interface.

Input columns (chatbots): ``question`` or ``messages`` (OpenAI-style list, or its JSON), ``user``,
``conversation_id``. Output: ``answer``, ``citations`` (JSON), ``trace_id``, ``conversation_id``,
``error``. For the ``classifier`` program: ``text`` in; ``sentiment``, ``reason``, ``justification``,
``trace_id``, ``error`` out. Rows run in parallel; one bad row gets an ``error`` and the others
still answer.

The model artifact holds the program's DSPy state and its structural configuration (retrieval k,
agent steps, label set); the LM endpoint, stores and secrets come from the serving process's own
Flywheel settings (FLYWHEEL_* variables / flywheel.toml), so no key is ever inside the model.
Served with ``mlflow models serve -m models:/flywheel-rag@champion --env-manager local``, the
``user`` column decides the principal: put that endpoint behind your application's
authentication (Flywheel's own service sets it from the API key and ignores the column).
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from flywheel import __version__
from flywheel.access import Principal
from flywheel.answers import question_and_history
from flywheel.assistant import Assistant, NoKnowledge
from flywheel.config import Settings, load_settings
from flywheel.errors import FlywheelError, InvalidInputError
from flywheel.lm.factory import configure_dspy
from flywheel.programs.kinds import ProgramKind
from flywheel.registry.tracking import use_tracking

STATE_FILE = "program_state.json"
CHAT_OUTPUTS = ["answer", "citations", "trace_id", "conversation_id", "error"]
CLASSIFIER_OUTPUTS = ["sentiment", "reason", "justification", "trace_id", "error"]
ANONYMOUS = "anonymous"


def structural_config(name: str, settings: Settings, program: Any = None) -> dict[str, Any]:
    """The knobs that are part of the program itself (kept with the version)."""
    config: dict[str, Any] = {
        "retrieval_k": settings.programs.retrieval_k,
        "agent_max_steps": settings.programs.agent_max_steps,
    }
    labels = getattr(program, "labels", None)
    if ProgramKind.of(name) == ProgramKind.CLASSIFIER and labels is not None:
        config["labels"] = labels.model_dump()
    return config


def apply_structural_config(settings: Settings, config: dict[str, Any]) -> Settings:
    updates = {k: config[k] for k in ("retrieval_k", "agent_max_steps") if k in config}
    if updates:
        settings.programs = settings.programs.model_copy(update=updates)
    return settings


def _signature(kind: str) -> Any:
    # Lazy (start-up time): only this path needs MLflow.
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    if kind == ProgramKind.CLASSIFIER:
        inputs = Schema([ColSpec("string", "text")])
        outputs = Schema([ColSpec("string", c, required=False) for c in CLASSIFIER_OUTPUTS])
    else:
        inputs = Schema(
            [ColSpec("string", c, required=False) for c in ("question", "messages", "user", "conversation_id")]
        )
        outputs = Schema([ColSpec("string", c, required=False) for c in CHAT_OUTPUTS])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _input_example(kind: str) -> pd.DataFrame:
    if kind == ProgramKind.CLASSIFIER:
        return pd.DataFrame([{"text": "My flight was delayed three hours and nobody told us why."}])
    return pd.DataFrame(
        [
            {
                "question": "What is the checked baggage allowance?",
                "user": ANONYMOUS,
                "messages": None,
                "conversation_id": None,
            }
        ]
    )


def save_program_model(
    path: Path, name: str, program: Any, settings: Settings, *, config: dict[str, Any] | None = None
) -> None:
    """Write the pyfunc model directory for ``program`` (state + config + signature + example)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state_path = path.parent / STATE_FILE
    program.save(str(state_path))
    kind = ProgramKind.of(name)
    model_config = {"program": name, "kind": kind.value, "config": config or structural_config(name, settings, program)}

    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(Path(__file__).with_name("pyfunc_code.py")),  # code, not a pickle
        artifacts={"program_state": str(state_path)},
        model_config=model_config,
        signature=_signature(kind),
        input_example=_input_example(kind),
        pip_requirements=[f"flywheel=={__version__}", "dspy==3.4.1", f"mlflow=={mlflow.__version__}"],
    )


_PROCESS_MODELS: dict[str, tuple[Any, Any, bool]] = {}
_PROCESS_MODELS_LOCK = threading.Lock()
PROCESS_LOADS = 0
"""How many times this process really built a program from a model (a cached classifier is built once)."""


class ProgramModel(mlflow.pyfunc.PythonModel):
    """Loads the program with the serving process's settings, then answers DataFrames."""

    def load_context(self, context: Any) -> None:
        config = dict(context.model_config or {})
        self.name = config.get("program", "rag")
        if ProgramKind.of(self.name) != ProgramKind.CLASSIFIER:
            self._load(context, config)
            return
        # Spark's local mode loads the model once per task, not once per Python worker: keep the loaded
        # classifier (its embedder, head and LM) per process, keyed by its exact state, config and settings.
        import hashlib

        state = Path(context.artifacts["program_state"]).read_bytes()
        environment = load_settings().model_dump_json()  # another LM or embedder configured: another program
        key = hashlib.sha256(
            state + json.dumps(config, sort_keys=True, default=str).encode() + environment.encode()
        ).hexdigest()
        with _PROCESS_MODELS_LOCK:
            if key not in _PROCESS_MODELS:
                self._load(context, config)
                _PROCESS_MODELS[key] = (self.settings, self.assistant, self.trace)
            self.settings, self.assistant, self.trace = _PROCESS_MODELS[key]

    def _load(self, context: Any, config: dict[str, Any]) -> None:
        global PROCESS_LOADS
        PROCESS_LOADS += 1
        settings = apply_structural_config(load_settings(), config.get("config", {}))
        configure_dspy(settings)
        self.settings = settings
        # The classifier reads no documents: spare every Spark worker opening the knowledge index.
        knowledge = NoKnowledge() if ProgramKind.of(self.name) == ProgramKind.CLASSIFIER else None
        self.assistant = Assistant(settings, knowledge=knowledge, labels=config.get("config", {}).get("labels"))
        program = self.assistant.program(self.name)
        program.load(context.artifacts["program_state"])
        self.assistant.set_program(self.name, program)
        try:
            use_tracking(settings)
            mlflow.dspy.autolog(log_traces=True)
            self.trace = True
        except FlywheelError:
            self.trace = False

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return predict_frame(self.assistant, model_input, program=self.name, trace=self.trace)


def _question_and_history(row: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    messages = row.get("messages")
    if isinstance(messages, str) and messages.strip():
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                "'messages' is not valid JSON.", hint='e.g. [{"role": "user", "content": "…"}]'
            ) from exc
    if messages is not None and not (isinstance(messages, float) and pd.isna(messages)) and len(messages):
        return history_from_messages(list(messages))
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise InvalidInputError(
            "Each row needs a non-empty 'question' (or 'messages').",
            hint='e.g. {"dataframe_records": [{"question": "…", "user": "alice"}]}',
        )
    return question, []


def history_from_messages(messages: list[Any]) -> tuple[str, list[dict[str, str]]]:
    """OpenAI-style messages → (latest user question, earlier turns as {question, answer})."""
    for message in messages:
        if not isinstance(message, dict) or "content" not in message:
            raise InvalidInputError(
                "Each message needs a 'role' and a 'content'.", hint='e.g. {"role": "user", "content": "…"}'
            )
    return question_and_history((str(m.get("role")), str(m.get("content") or "")) for m in messages)


def _resolve_principal(assistant: Any, user: Any) -> Principal:
    if user is None or (isinstance(user, float) and pd.isna(user)) or str(user) in {"", ANONYMOUS}:
        return Principal(ANONYMOUS)
    return assistant.knowledge.principal(str(user))


def answer_row(
    assistant: Any, row: dict[str, Any], *, program: str, principal: Principal | None = None
) -> dict[str, Any]:
    """One row through the program; errors become the row's ``error``."""
    kind = ProgramKind.of(program)
    try:
        if kind == ProgramKind.CLASSIFIER:
            text = row.get("text")
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError("Each row needs a non-empty 'text'.", hint='e.g. {"text": "…"}')
            out = assistant.program(program)(text=text)
            return {"sentiment": out.sentiment, "reason": out.reason, "justification": out.justification, "error": None}
        question, history = _question_and_history(row)
        who = principal or _resolve_principal(assistant, row.get("user"))
        conversation = row.get("conversation_id")
        conversation = conversation if isinstance(conversation, str) and conversation else None
        answer = assistant.answer(question, who, program=program, conversation_id=conversation, history=history or None)
        citations = [{k: c.get(k) for k in ("doc_id", "chunk_id", "citation", "text")} for c in answer.citations]
        return {
            "answer": answer.answer,
            "citations": json.dumps(citations),
            "conversation_id": answer.conversation_id,
            "error": None,
            "_chunk_ids": answer.chunk_ids(),
        }
    except FlywheelError as exc:
        return {"error": exc.message}
    except Exception as exc:  # one row's failure must not fail the batch
        return {"error": f"{type(exc).__name__}: {exc}"}


def traced_answer(
    assistant: Any, row: dict[str, Any], *, program: str, principal: Principal | None = None, trace: bool = True
) -> dict[str, Any]:
    """:func:`answer_row` inside an MLflow trace (steps, chunk ids, latency); adds ``trace_id``."""
    if not trace:
        out = answer_row(assistant, row, program=program, principal=principal)
        out.pop("_chunk_ids", None)
        return {**out, "trace_id": None}
    started = time.perf_counter()
    with mlflow.start_span(name=f"flywheel.{program}", span_type="CHAIN") as span:
        shown = {k: v for k, v in row.items() if k in {"question", "text", "conversation_id"}}
        span.set_inputs({**shown, "user": getattr(principal, "user", row.get("user"))})
        out = answer_row(assistant, row, program=program, principal=principal)
        chunk_ids = out.pop("_chunk_ids", None)
        span.set_attributes(
            {
                "flywheel.program": program,
                "flywheel.latency_ms": (time.perf_counter() - started) * 1e3,
                "flywheel.chunk_ids": json.dumps(chunk_ids or []),
            }
        )
        span.set_outputs({k: v for k, v in out.items() if k != "error"} | {"error": out.get("error")})
        return {**out, "trace_id": span.trace_id}


def predict_frame(
    assistant: Any,
    frame: pd.DataFrame,
    *,
    program: str | None = None,
    principal: Principal | None = None,
    trace: bool = True,
    workers: int | None = None,
) -> pd.DataFrame:
    """Every row of ``frame`` through the program, in parallel; the output keeps the row order."""
    program = program or assistant.settings.programs.default
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    rows = frame.to_dict(orient="records")
    columns = CLASSIFIER_OUTPUTS if ProgramKind.of(program) == ProgramKind.CLASSIFIER else CHAT_OUTPUTS
    if not rows:
        return pd.DataFrame(columns=columns)
    loaded = assistant.program(program) if ProgramKind.of(program) == ProgramKind.CLASSIFIER else None
    if getattr(loaded, "head", None) is not None and hasattr(loaded, "classify_many"):
        return _classify_batched(loaded, rows, workers=workers or assistant.settings.classify.threads, trace=trace)
    workers = max(1, min(workers or assistant.settings.serve.workers, len(rows)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(
                contextvars.copy_context().run,
                traced_answer,
                assistant,
                row,
                program=program,
                principal=principal,
                trace=trace,
            )
            for row in rows
        ]
        results = [f.result() for f in futures]
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in results], columns=columns)


def _classify_batched(program: Any, rows: list[dict[str, Any]], *, workers: int, trace: bool) -> pd.DataFrame:
    """A classifier with a distilled head: one embedding pass for all rows, the LM only for routed rows.

    Rows get no per-row MLflow trace (a trace costs more than the head's answer); with tracing on,
    one span records the batch (rows, rows routed to the LM, latency).
    """
    texts = [row.get("text") if isinstance(row.get("text"), str) else "" for row in rows]
    started = time.perf_counter()
    if trace:
        with mlflow.start_span(name="flywheel.classifier.batch", span_type="CHAIN") as span:
            results = program.classify_many(texts, threads=workers)
            span.set_attributes(
                {
                    "flywheel.rows": len(rows),
                    "flywheel.routed_to_lm": sum(r.get("routed") == "lm" for r in results),
                    "flywheel.latency_ms": (time.perf_counter() - started) * 1e3,
                }
            )
    else:
        results = program.classify_many(texts, threads=workers)
    for result in results:
        if result.get("error") == "The feedback text is empty.":
            result["error"] = "Each row needs a non-empty 'text'."
    return pd.DataFrame([{c: r.get(c) for c in CLASSIFIER_OUTPUTS} for r in results], columns=CLASSIFIER_OUTPUTS)
