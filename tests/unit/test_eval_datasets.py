from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.access import Principal
from flywheel.errors import InvalidInputError, NotFoundError
from flywheel.evaluate.datasets import load_dataset

USERS = {"alice": Principal("alice", frozenset({"mechanics"}))}


def principal_for(name: str) -> Principal:
    if name not in USERS:
        raise NotFoundError(f"No user {name!r}.")
    return USERS[name]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_qa_dataset_with_users_documents_and_optional_gold(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"question": "Oil?", "answer": "30 min", "document": "oil.md", "user": "alice"},
            {"question": "Unlabelled?", "user": "alice"},
        ],
    )
    ds = load_dataset(path, "qa", principal_for=principal_for, resolve_document={"oil.md": "d1"}.get)
    assert len(ds) == 2 and ds.labelled
    first = ds.examples[0]
    assert set(first.inputs().keys()) == {"question", "principal"}
    assert first.principal.user == "alice" and first.gold_doc_ids == ["d1"]
    assert ds.examples[1].answer is None


def test_unknown_users_and_documents_are_reported_together(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"question": "a", "user": "mallory"},
            {"question": "b", "user": "alice", "document": "nope.md"},
            {"question": "", "user": "alice"},
            {"question": "c"},
        ],
    )
    with pytest.raises(InvalidInputError) as err:
        load_dataset(path, "qa", principal_for=principal_for, resolve_document={}.get)
    message = err.value.message
    assert "4 invalid row(s)" in message and "unknown user 'mallory'" in message
    assert "unknown document 'nope.md'" in message and "row 3: no 'question'" in message
    assert "row 4: no 'user'" in message


def test_default_user_fills_missing_users(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "a"}])
    ds = load_dataset(path, "qa", principal_for=principal_for, default_user="alice")
    assert ds.examples[0].principal.user == "alice" and not ds.labelled


def test_missing_columns_empty_sets_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("tweet,sentiment\nhello,positive\n")
    with pytest.raises(InvalidInputError, match="no column 'text'"):
        load_dataset(tmp_path / "t.csv", "classifier")
    assert len(load_dataset(tmp_path / "t.csv", "classifier", text_column="tweet")) == 1
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(InvalidInputError, match="is empty"):
        load_dataset(tmp_path / "e.jsonl", "qa")
    (tmp_path / "b.jsonl").write_text('{"question": "a"}\n{oops\n')
    with pytest.raises(InvalidInputError, match="line 2: invalid JSON"):
        load_dataset(tmp_path / "b.jsonl", "qa")
    (tmp_path / "x.txt").write_text("q")
    with pytest.raises(InvalidInputError, match="Unsupported dataset format"):
        load_dataset(tmp_path / "x.txt", "qa")
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_dataset(tmp_path / "missing.jsonl", "qa")


def test_classifier_rows_and_split(tmp_path: Path) -> None:
    rows = "text,sentiment,reason\n" + "".join(f"msg {i},negative,Late Flight\n" for i in range(10))
    (tmp_path / "c.csv").write_text(rows)
    ds = load_dataset(tmp_path / "c.csv", "classifier")
    assert ds.labelled and set(ds.examples[0].inputs().keys()) == {"text"}
    train, dev = ds.split(0.3, seed=1)
    assert len(train) == 7 and len(dev) == 3
    assert {e.text for e in train.examples}.isdisjoint({e.text for e in dev.examples})
    assert [e.text for e in ds.split(0.3, seed=1)[1].examples] == [e.text for e in dev.examples]
    with pytest.raises(InvalidInputError, match="too few"):
        ds.head(1).split(0.5)


def test_unanswerable_rows_are_labelled_and_cannot_also_have_gold(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"question": "Capital of France?", "user": "alice", "unanswerable": True},
            {"question": "Oil?", "user": "alice", "answer": "30 min", "unanswerable": "false"},
        ],
    )
    ds = load_dataset(path, "qa", principal_for=principal_for)
    assert ds.labelled and [e.unanswerable for e in ds.examples] == [True, False]
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"question": "a", "user": "alice", "unanswerable": True, "answer": "x"},
            {"question": "b", "user": "alice", "unanswerable": "maybe"},
        ],
    )
    with pytest.raises(InvalidInputError) as err:
        load_dataset(bad, "qa", principal_for=principal_for)
    assert "row 1: an unanswerable row cannot also have a gold answer" in err.value.message
    assert "row 2: 'unanswerable' must be true or false" in err.value.message
