"""Two processes creating the catalog tables at once: the one that loses the race still opens the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table
from sqlalchemy.exc import OperationalError

from flywheel.storage import open_store


def test_a_table_created_meanwhile_by_another_process_is_not_an_error(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = MetaData()
    Table("users", metadata, Column("id", Integer, primary_key=True))
    real = MetaData.create_all
    calls = []

    def racing(self: MetaData, bind: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:  # as if another process created the table between our check and our CREATE
            real(self, bind, **kwargs)
            raise OperationalError("CREATE TABLE users", {}, Exception("table users already exists"))
        real(self, bind, **kwargs)

    monkeypatch.setattr(MetaData, "create_all", racing)
    engine, _sessions = open_store(f"sqlite:///{tmp_path / 'catalog.db'}", metadata, "the catalog")
    assert len(calls) == 2
    engine.dispose()
