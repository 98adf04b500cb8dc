"""Processes opening the same new stores at once (`flywheel serve --workers N` on a fresh home): the one
that loses a creation race uses what the other created instead of failing."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from flywheel.config import load_settings
from flywheel.errors import EmbedderMismatchError
from flywheel.knowledge.index import ChunkIndex
from flywheel.registry import tracking


def test_a_second_writer_recording_the_same_embedder_on_a_new_index_succeeds(tmp_path: Path) -> None:
    # Both opened the empty index before either recorded: the second commit is a LanceDB conflict.
    first, second = ChunkIndex(str(tmp_path / "idx"), 8), ChunkIndex(str(tmp_path / "idx"), 8)
    first.record_embedder("all-MiniLM-L6-v2")
    second.record_embedder("all-MiniLM-L6-v2")
    assert second.built_with() == "all-MiniLM-L6-v2"


def test_a_second_writer_with_another_embedder_is_refused(tmp_path: Path) -> None:
    first, second = ChunkIndex(str(tmp_path / "idx"), 8), ChunkIndex(str(tmp_path / "idx"), 8)
    first.record_embedder("all-MiniLM-L6-v2")
    with pytest.raises(EmbedderMismatchError):
        second.record_embedder("multilingual-e5-small")


def test_an_experiment_another_process_just_created_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    tracking.use_tracking(settings)  # the other process: creates the experiment
    monkeypatch.setattr(tracking, "_READY", set())  # this process has not opened the store yet
    monkeypatch.setattr(tracking, "_ACTIVE", None)
    # ... and looked for the experiment just before the other one created it.
    monkeypatch.setattr(mlflow, "get_experiment_by_name", lambda name: None)
    client = tracking.use_tracking(settings)
    assert client.get_experiment_by_name(settings.tracking.experiment) is not None
