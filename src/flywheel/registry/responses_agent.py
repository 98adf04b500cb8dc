"""A program as an MLflow ``ResponsesAgent``: ``mlflow models serve`` then speaks the Responses shape.

The registered pyfunc model (:mod:`flywheel.registry.pyfunc`) keeps the DataFrame scoring protocol that
``/invocations``, Spark's ``spark_udf`` and batch jobs use. ``save_responses_agent`` writes the same
program state (and loads it the same way, with the serving process's Flywheel settings) behind MLflow's
``ResponsesAgent`` interface instead: ``{"input": [messages], "custom_inputs": {"user": …}}`` in, a
Responses output message out (``custom_outputs``: citations, trace_id, conversation_id), and a stream
of text deltas from ``predict_stream``. As with the pyfunc model, the ``user`` decides whose groups
apply, so put such an endpoint behind your own authentication (``flywheel serve`` takes the user from
the API key).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse, ResponsesAgentStreamEvent

from flywheel import __version__
from flywheel.answers import stream_pieces
from flywheel.config import Settings
from flywheel.errors import InvalidInputError, LMError
from flywheel.programs.kinds import ProgramKind
from flywheel.registry.pyfunc import STATE_FILE, ProgramModel, structural_config, traced_answer


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


class ProgramResponsesAgent(ResponsesAgent):
    """A question-answering program behind MLflow's ResponsesAgent interface."""

    def load_context(self, context: Any) -> None:
        self.model = ProgramModel()
        self.model.load_context(context)  # the same loader as the pyfunc model: settings, state, tracing

    def _answer(self, request: ResponsesAgentRequest) -> dict[str, Any]:
        messages = []
        for item in request.input:
            data = item.model_dump() if hasattr(item, "model_dump") else dict(item)
            if data.get("role") in ("user", "assistant"):
                messages.append({"role": data["role"], "content": _text(data.get("content"))})
        custom = request.custom_inputs or {}
        row = {"messages": messages, "user": custom.get("user"), "conversation_id": custom.get("conversation_id")}
        out = traced_answer(self.model.assistant, row, program=self.model.name, trace=self.model.trace)
        if out.get("error"):
            raise LMError(
                f"The {self.model.name} program could not answer: {out['error']}",
                hint="Check the request's messages and the LM endpoint (`flywheel doctor`).",
            )
        return out

    def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:
        out = self._answer(request)
        return ResponsesAgentResponse(
            output=[self.create_text_output_item(text=out["answer"], id=f"msg_{uuid.uuid4().hex}")],
            custom_outputs=_custom_outputs(out),
        )

    def predict_stream(self, request: ResponsesAgentRequest) -> Generator[ResponsesAgentStreamEvent, None, None]:

        out = self._answer(request)
        item_id = f"msg_{uuid.uuid4().hex}"
        for piece in stream_pieces(out["answer"]):
            yield ResponsesAgentStreamEvent(**self.create_text_delta(delta=piece, item_id=item_id))
        yield ResponsesAgentStreamEvent(
            type="response.output_item.done",
            custom_outputs=_custom_outputs(out),
            item=self.create_text_output_item(text=out["answer"], id=item_id),
        )


def _custom_outputs(out: dict[str, Any]) -> dict[str, Any]:
    return {
        "citations": json.loads(out.get("citations") or "[]"),
        "trace_id": out.get("trace_id"),
        "conversation_id": out.get("conversation_id"),
    }


def save_responses_agent(path: Path, name: str, program: Any, settings: Settings) -> None:
    """Write ``program`` (with its current state) as a ResponsesAgent model directory at ``path``."""
    if ProgramKind.of(name) == ProgramKind.CLASSIFIER:
        raise InvalidInputError(
            "The classifier is not a chat program: it has no ResponsesAgent form.",
            hint="Deploy rag, agent or a custom chat program with --responses-agent.",
        )

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state_path = path.parent / f"{path.name}-{STATE_FILE}"
    program.save(str(state_path))
    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(Path(__file__).with_name("responses_agent_code.py")),  # code, not a pickle
        artifacts={"program_state": str(state_path)},
        model_config={"program": name, "kind": "qa", "config": structural_config(name, settings, program)},
        pip_requirements=[f"flywheel=={__version__}", "dspy==3.4.1", f"mlflow=={mlflow.__version__}"],
    )
