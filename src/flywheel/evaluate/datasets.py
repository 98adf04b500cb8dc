"""Evaluation and training datasets: JSONL or CSV rows turned into validated ``dspy.Example`` lists.

Two shapes, by program kind:

- ``qa`` (rag, agent, custom chatbots): ``question`` (required), and optionally ``answer`` (gold;
  a list is allowed), ``gold_doc_ids`` / ``gold_chunk_ids`` (or ``document``: a document's source
  name, resolved to its id through the catalog), ``user`` (the principal the question is asked as), and
  ``unanswerable`` (true for a question the documents do not answer: answer metrics score 1 when the
  program refuses it and 0 when it answers, as SQuAD 2.0 does, so a better refusal can win the gate).
- ``classifier``: a text column (``text`` by default), optionally the gold ``sentiment`` and ``reason``.

A set without gold answers is allowed (judge-only metrics). Problems are reported all at once with
row numbers: missing columns, an empty set, unknown users, unknown documents, bad JSON.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dspy

from flywheel.errors import InvalidInputError

Kind = Literal["qa", "classifier"]
MAX_REPORTED_PROBLEMS = 8


@dataclass
class Dataset:
    """Validated examples; ``inputs`` are the program's keyword arguments (``user`` becomes a principal)."""

    name: str
    kind: Kind
    examples: list[dspy.Example]
    labelled: bool
    columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.examples)

    def split(self, dev_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
        """A reproducible shuffled train/dev split (each side keeps at least one example)."""
        if len(self.examples) < 2:
            raise InvalidInputError(
                f"Dataset {self.name!r} has {len(self.examples)} example(s): too few to split.",
                hint="Give at least 2 examples, or pass a separate --dev set.",
            )
        shuffled = list(self.examples)
        random.Random(seed).shuffle(shuffled)
        n_dev = min(max(1, round(len(shuffled) * dev_fraction)), len(shuffled) - 1)
        return (
            Dataset(f"{self.name}[train]", self.kind, shuffled[n_dev:], self.labelled, self.columns),
            Dataset(f"{self.name}[dev]", self.kind, shuffled[:n_dev], self.labelled, self.columns),
        )

    def head(self, n: int | None) -> Dataset:
        if n is None:
            return self
        return Dataset(self.name, self.kind, self.examples[:n], self.labelled, self.columns)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl/.json/.csv/.parquet file, with a clear error for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"Dataset file {path} does not exist.", hint="Check the path.")
    suffix = path.suffix.lower()
    if suffix in {".csv", ".parquet", ".pq"}:
        # The project's one table reader: quoted cells keep their commas, quotes and line breaks.
        from flywheel.tables import read_table

        return [{str(k): v for k, v in row.items()} for row in read_table(path, None).to_dict(orient="records")]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"Cannot read dataset {path}: {exc}.", hint="Save it as UTF-8 JSONL or CSV.") from exc
    if suffix == ".json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise InvalidInputError(f"{path} must hold a JSON list of objects.", hint="Or use JSONL: one per line.")
        return data
    if suffix != ".jsonl":
        raise InvalidInputError(
            f"Unsupported dataset format {suffix or '(none)'} for {path}.",
            hint="Use .jsonl (one JSON object per line), .csv with a header row, or .parquet.",
        )
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"{path}, line {number}: invalid JSON ({exc.msg}).", hint="Each line must be one JSON object."
            ) from exc
        if not isinstance(row, dict):
            raise InvalidInputError(f"{path}, line {number}: expected a JSON object.", hint='e.g. {"question": "…"}')
        rows.append(row)
    return rows


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _flag(value: Any) -> bool | None:
    """A boolean cell from JSON (true/false) or CSV ("true", "yes", "1", …); None when unreadable."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "y"):
        return True
    if text in ("false", "no", "0", "n", ""):
        return False
    return None


def _as_list(value: Any) -> list[str]:
    if not _present(value):
        return []
    if isinstance(value, str) and value.strip().startswith("["):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if isinstance(value, str):
        return [v.strip() for v in value.split("|") if v.strip()]
    return [str(v) for v in value]


def qa_examples(
    rows: Sequence[dict[str, Any]],
    *,
    principal_for: Callable[[str], Any] | None = None,
    resolve_document: Callable[[str], str | None] | None = None,
    default_user: str | None = None,
    source: str = "dataset",
) -> list[dspy.Example]:
    """Validate question rows and build examples whose inputs are ``question`` and ``principal``."""
    problems: list[str] = []
    examples = []
    for number, row in enumerate(rows, 1):
        question = row.get("question")
        if not _present(question):
            problems.append(f"row {number}: no 'question'")
            continue
        user = row.get("user") if _present(row.get("user")) else default_user
        principal = None
        if principal_for is not None and user is None:
            problems.append(f"row {number}: no 'user' to ask as (add a user column, or pass --as USER)")
            continue
        if principal_for is not None:
            try:
                principal = principal_for(str(user))
            except Exception as exc:  # unknown user: collected, reported together
                problems.append(f"row {number}: unknown user {user!r} ({getattr(exc, 'message', exc)})")
                continue
        gold_docs = _as_list(row.get("gold_doc_ids"))
        for name in _as_list(row.get("document")):
            doc_id = resolve_document(name) if resolve_document else None
            if doc_id is None:
                problems.append(f"row {number}: unknown document {name!r}")
            else:
                gold_docs.append(doc_id)
        answer = row.get("answer")
        unanswerable = _flag(row.get("unanswerable"))
        if unanswerable is None:
            problems.append(f"row {number}: 'unanswerable' must be true or false, not {row.get('unanswerable')!r}")
            continue
        if unanswerable and (_present(answer) or gold_docs or _as_list(row.get("gold_chunk_ids"))):
            problems.append(f"row {number}: an unanswerable row cannot also have a gold answer or gold documents")
            continue
        fields: dict[str, Any] = {
            "question": str(question).strip(),
            "principal": principal,
            "user": user,
            "answer": answer if _present(answer) else None,
            "gold_doc_ids": gold_docs or None,
            "gold_chunk_ids": _as_list(row.get("gold_chunk_ids")) or None,
            "tool": str(row["tool"]).strip() if _present(row.get("tool")) else None,
            "unanswerable": unanswerable,
        }
        examples.append(dspy.Example(**fields).with_inputs("question", "principal"))
    _raise_problems(problems, source, hint="Fix the rows, or add the users/documents first (`flywheel users add`).")
    return examples


def classifier_examples(
    rows: Sequence[dict[str, Any]], *, text_column: str = "text", source: str = "dataset"
) -> list[dspy.Example]:
    """Validate feedback rows; gold ``sentiment``/``reason`` are kept when present."""
    problems = []
    examples = []
    for number, row in enumerate(rows, 1):
        text = row.get(text_column)
        if not _present(text):
            problems.append(f"row {number}: empty '{text_column}'")
            continue
        fields = {"text": str(text), "sentiment": row.get("sentiment") or None, "reason": row.get("reason") or None}
        if row.get("label_source"):  # gold / teacher / feedback: which labels a distilled head trusts most
            fields["label_source"] = str(row["label_source"])
        examples.append(dspy.Example(**fields).with_inputs("text"))
    _raise_problems(problems, source, hint=f"Every row needs a non-empty '{text_column}'.")
    return examples


def _raise_problems(problems: list[str], source: str, *, hint: str) -> None:
    if not problems:
        return
    shown = "; ".join(problems[:MAX_REPORTED_PROBLEMS])
    more = f" (and {len(problems) - MAX_REPORTED_PROBLEMS} more)" if len(problems) > MAX_REPORTED_PROBLEMS else ""
    raise InvalidInputError(f"{source}: {len(problems)} invalid row(s): {shown}{more}.", hint=hint)


def _check_columns(rows: Sequence[dict[str, Any]], required: Iterable[str], source: str) -> list[str]:
    if not rows:
        raise InvalidInputError(f"Dataset {source} is empty.", hint="Add at least one row.")
    columns = sorted({key for row in rows for key in row})
    missing = [c for c in required if c not in columns]
    if missing:
        raise InvalidInputError(
            f"Dataset {source} has no column {', '.join(repr(m) for m in missing)} (columns: {', '.join(columns)}).",
            hint="Rename the column, or pass --text-column for classifier data.",
        )
    return columns


def load_dataset(
    path: Path,
    kind: Kind,
    *,
    text_column: str = "text",
    principal_for: Callable[[str], Any] | None = None,
    resolve_document: Callable[[str], str | None] | None = None,
    default_user: str | None = None,
    limit: int | None = None,
) -> Dataset:
    """Read and validate a dataset file for a program of the given kind."""
    rows = read_rows(path)
    return dataset_from_rows(
        rows,
        kind,
        name=Path(path).name,
        text_column=text_column,
        principal_for=principal_for,
        resolve_document=resolve_document,
        default_user=default_user,
        limit=limit,
    )


def dataset_from_rows(
    rows: Sequence[dict[str, Any]],
    kind: Kind,
    *,
    name: str,
    text_column: str = "text",
    principal_for: Callable[[str], Any] | None = None,
    resolve_document: Callable[[str], str | None] | None = None,
    default_user: str | None = None,
    limit: int | None = None,
) -> Dataset:
    """Validate in-memory rows (e.g. exported feedback) as a dataset."""
    rows = list(rows)[:limit] if limit else list(rows)
    if kind == "classifier":
        columns = _check_columns(rows, [text_column], name)
        examples = classifier_examples(rows, text_column=text_column, source=name)
        labelled = any(_present(e.sentiment) for e in examples)
    else:
        columns = _check_columns(rows, ["question"], name)
        examples = qa_examples(
            rows, principal_for=principal_for, resolve_document=resolve_document, default_user=default_user, source=name
        )
        labelled = any(e.answer is not None or e.gold_doc_ids or e.unanswerable for e in examples)
    return Dataset(name, kind, examples, labelled, columns)
