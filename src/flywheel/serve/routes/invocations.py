"""``POST /invocations``: the MLflow scoring protocol, so clients of an MLflow/Databricks endpoint work unchanged.

Accepted bodies (JSON): ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``,
``{"dataframe_records": [{...}]}``, ``{"inputs": ...}`` or ``{"instances": ...}``, each with optional
``"params": {"program": "agent"}``; or a CSV body with ``Content-Type: text/csv``. Columns:
``question`` (or ``messages``, a list of chat messages), optional ``conversation_id``. Every row is
answered as the caller: a ``user`` column may only name the caller. The reply is
``{"predictions": [{"answer", "citations" (JSON text), "trace_id", "conversation_id", "error"}, …]}``.
"""

from __future__ import annotations

import io
import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from flywheel.access import Principal
from flywheel.errors import AccessDeniedError, FlywheelError, InvalidInputError, LMError, UnsupportedMediaError
from flywheel.lm.failures import is_lm_exception
from flywheel.serve.deps import Caller, ServiceDep
from flywheel.serve.tracing import new_trace_id

router = APIRouter(tags=["mlflow"])
MAX_ROWS = 100
FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")
OUTPUT_COLUMNS = ("answer", "citations", "trace_id", "conversation_id", "error")

REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One of dataframe_split, dataframe_records, inputs or instances; optional params.",
    "properties": {
        "dataframe_split": {
            "type": "object",
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "data": {"type": "array", "items": {"type": "array"}},
            },
            "required": ["columns", "data"],
        },
        "dataframe_records": {"type": "array", "items": {"type": "object"}},
        "inputs": {},
        "instances": {},
        "params": {"type": "object", "properties": {"program": {"type": "string"}}},
    },
}


class Predictions(BaseModel):
    predictions: list[dict[str, Any]]


def _bad(message: str) -> InvalidInputError:
    return InvalidInputError(
        message,
        hint='Send e.g. {"dataframe_records": [{"question": "…"}]} '
        'or {"dataframe_split": {"columns": ["question"], "data": [["…"]]}}.',
    )


def parse_scoring_request(body: Any) -> tuple[Any, dict[str, Any]]:
    """A pandas DataFrame and the params from an MLflow scoring-protocol JSON body."""
    # Lazy (start-up time): only this path needs pandas.
    import pandas as pd

    if not isinstance(body, dict):
        raise _bad("The body must be a JSON object.")
    formats = [key for key in FORMATS if key in body]
    unknown = sorted(set(body) - set(FORMATS) - {"params"})
    if len(formats) != 1 or unknown:
        raise _bad(f"Expected exactly one of {', '.join(FORMATS)} (got {', '.join(sorted(body)) or 'nothing'}).")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise _bad("params must be an object.")
    kind, payload = formats[0], body[formats[0]]
    try:
        if kind == "dataframe_split":
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                raise _bad("dataframe_split needs 'columns' and 'data' (a list of rows).")
            columns = payload.get("columns")
            if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
                raise _bad("dataframe_split.columns must be a list of column names.")
            frame = pd.DataFrame(data=payload["data"], columns=columns)
        elif kind == "dataframe_records" or isinstance(payload, list):
            if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
                if isinstance(payload, list) and all(isinstance(r, str) for r in payload):
                    payload = [{"question": r} for r in payload]  # a list of questions
                else:
                    raise _bad(f"{kind} must be a list of objects (one per row).")
            frame = pd.DataFrame.from_records(payload)
        elif isinstance(payload, dict):
            values = list(payload.values())
            frame = (
                pd.DataFrame(payload)
                if values and all(isinstance(v, list) for v in values)
                else pd.DataFrame([payload])
            )
        elif isinstance(payload, str):
            frame = pd.DataFrame({"question": [payload]})
        else:
            raise _bad(f"{kind} must be a list of rows, an object of columns, or a question.")
    except (ValueError, TypeError) as exc:
        raise _bad(f"Cannot build a table from {kind}: {exc}") from None
    return frame, params


def parse_csv(data: bytes) -> Any:
    # Lazy (start-up time): only this path needs pandas.
    import pandas as pd

    try:
        return pd.read_csv(io.BytesIO(data))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"The CSV body cannot be read: {str(exc)[:200]}") from None


def check_frame(frame: Any, principal: Principal) -> Any:
    if len(frame) == 0:
        raise _bad("The request has no rows.")
    if len(frame) > MAX_ROWS:
        raise _bad(f"{len(frame)} rows in one request; the limit is {MAX_ROWS}.")
    if not ({"question", "messages", "text"} & {str(c) for c in frame.columns}):
        raise _bad(f"No 'question' (or 'messages') column; got {', '.join(map(str, frame.columns)) or 'none'}.")
    if "user" in frame.columns:
        others = sorted({str(u) for u in frame["user"].dropna()} - {principal.user})
        if others:
            raise AccessDeniedError(
                f"Rows name other users ({', '.join(others[:3])}): every row is answered as {principal.user}.",
                hint="Drop the user column, or use each user's own API key.",
            )
    empty = [i for i, row in enumerate(frame.to_dict(orient="records")) if not question_of(row).strip()]
    if empty:
        raise _bad(f"Row(s) {', '.join(map(str, empty[:5]))} have no question.")
    return frame


def question_of(row: dict[str, Any]) -> str:
    """The question of one input row (the last user message when the row holds messages)."""
    if isinstance(row.get("question"), str):
        return row["question"]
    messages = row.get("messages")
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except ValueError:
            return messages
    if isinstance(messages, list):
        users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    return str(row.get("text") or "")


def predict(service: Any, frame: Any, program: str, principal: Principal) -> list[dict[str, Any]]:
    """Run the rows (in a worker thread) with the MLflow model's own row logic, as ``principal``."""
    # Lazy (start-up time): only this path needs MLflow and pandas.
    from flywheel.registry.pyfunc import predict_frame

    frame = frame.drop(columns=["user"], errors="ignore")
    with service.lm_context():
        try:
            out = predict_frame(
                service.assistant, frame, program=program, principal=principal, trace=service.tracer.enabled
            )
        except FlywheelError:
            raise
        except Exception as exc:
            if not is_lm_exception(exc):
                raise  # a bug, not an LM failure: the app logs it and answers 500
            raise service.explain(exc) from exc
    records = json.loads(out.to_json(orient="records", default_handler=str))
    failed = [r.get("error") for r in records if r.get("error")]
    if records and len(failed) == len(records):
        raise LMError(
            f"The {program} program failed on every row: {failed[0]}",
            hint="Check the LM endpoint (`flywheel doctor`) and the rows, then retry.",
        )
    for row_in, row_out in zip(frame.to_dict(orient="records"), records, strict=False):
        if row_out.get("error"):
            continue
        row_out["trace_id"] = row_out.get("trace_id") or new_trace_id()
        citations = row_out.get("citations") or "[]"
        try:
            cited = json.loads(citations) if isinstance(citations, str) else list(citations)
        except ValueError:
            cited = []
        service.feedback.record_interaction(
            row_out["trace_id"],
            principal.user,
            program,
            question_of(row_in),
            answer_text(row_out),
            [c for c in cited if isinstance(c, dict)],
            groups=sorted(principal.groups),
        )
    return records


def answer_text(row_out: dict[str, Any]) -> str:
    """What an interaction records as the answer: a chat answer, or a classifier's labels as JSON (so feedback
    on a classification — a thumbs-up or a correction such as ``negative: Late Flight`` — can train it)."""
    if row_out.get("answer") is None and "sentiment" in row_out:
        return json.dumps({"sentiment": row_out.get("sentiment"), "reason": row_out.get("reason")})
    return str(row_out.get("answer") or "")


@router.post(
    "/invocations",
    response_model=Predictions,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": REQUEST_SCHEMA}, "text/csv": {"schema": {"type": "string"}}},
        }
    },
    responses={404: {"description": "Unknown program"}, 502: {"description": "The LM failed"}},
)
async def invocations(request: Request, service: ServiceDep, caller: Caller) -> dict[str, Any]:
    """Answer a table of questions as the caller (MLflow scoring protocol)."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type == "text/csv":
        frame, params = parse_csv(raw), {}
    elif content_type in ("application/json", "") or content_type.endswith("+json"):
        try:
            body = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            raise InvalidInputError(
                "The request body is not valid JSON.", hint="Send a JSON object with Content-Type: application/json."
            ) from None
        frame, params = parse_scoring_request(body)
    else:
        raise UnsupportedMediaError(
            f"Unsupported content type {content_type!r}.",
            hint="Use application/json (MLflow scoring protocol) or text/csv.",
        )
    program_param = params.get("program")
    if program_param is not None and not isinstance(program_param, str):
        raise _bad("params.program must be a program name.")
    program = service.resolve_model(program_param)
    frame = check_frame(frame, caller)
    return {"predictions": await service.run(predict, service, frame, program, caller)}
