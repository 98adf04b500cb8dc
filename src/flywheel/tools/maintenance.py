"""The maintenance-records tool: read-only, parameterized queries over the maintenance log.

The log (aircraft, inspections, deferred defects, components) lives in SQLite, built from CSV
files (``samples/maintenance``). The model never writes SQL: the tool reads tail numbers and a few
intents (deferred defects, inspections due, components) from the request and runs fixed queries
with bound parameters on a read-only connection.
"""

from __future__ import annotations

import csv
import re
import sqlite3
from pathlib import Path
from typing import Any

from flywheel.errors import InvalidInputError, NotFoundError
from flywheel.tools.registry import ToolContext, ToolResult

TABLES = {
    "aircraft": ["tail_number", "type", "msn", "home_base", "flight_hours", "cycles", "status"],
    "inspections": ["inspection_id", "tail_number", "task", "interval_fh", "last_done", "next_due", "status"],
    "deferred_defects": ["defect_id", "tail_number", "description", "mel_category", "deferred_on", "due_by", "status"],
    "components": [
        "tail_number",
        "position",
        "component",
        "part_number",
        "serial_number",
        "installed_on",
        "hours_since_install",
        "life_limit_hours",
    ],
}
TAIL = re.compile(r"\bN\d{3}[A-Z]{2}\b", re.IGNORECASE)
MAX_ROWS = 25


def build_database(csv_dir: Path, db_path: Path) -> Path:
    """(Re)create the SQLite maintenance log from ``<table>.csv`` files; returns the database path."""
    missing = [name for name in TABLES if not (csv_dir / f"{name}.csv").is_file()]
    if missing:
        raise NotFoundError(
            f"{csv_dir} lacks {', '.join(m + '.csv' for m in missing)}.",
            hint="Point at the samples/maintenance folder or a folder with the same files.",
        )
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        for table, columns in TABLES.items():
            db.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
            with (csv_dir / f"{table}.csv").open(newline="", encoding="utf-8") as handle:
                rows = [[row[c] for c in columns] for row in csv.DictReader(handle)]
            db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)
        db.execute("CREATE INDEX ix_insp_tail ON inspections(tail_number)")
        db.execute("CREATE INDEX ix_dd_tail ON deferred_defects(tail_number)")
    tmp.replace(db_path)  # atomic: readers see the old log or the new one
    return db_path


class MaintenanceRecords:
    """Fixed, parameterized queries over a read-only connection to the maintenance log."""

    def __init__(self, db_path: Path) -> None:
        if not db_path.is_file():
            raise NotFoundError(
                f"No maintenance log at {db_path}.",
                hint="Build it with `flywheel maintenance load samples/maintenance`.",
            )
        self.db_path = db_path

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(sql + f" LIMIT {MAX_ROWS}", params)]

    def aircraft(self, tail: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM aircraft WHERE tail_number = ?", (tail,))

    def deferred_defects(self, tail: str | None, open_only: bool = True) -> list[dict[str, Any]]:
        statuses = ("open",) if open_only else ("open", "closed")
        marks = ", ".join("?" * len(statuses))
        if tail:
            return self._rows(
                f"SELECT * FROM deferred_defects WHERE tail_number = ? AND status IN ({marks}) ORDER BY due_by",
                (tail, *statuses),
            )
        return self._rows(f"SELECT * FROM deferred_defects WHERE status IN ({marks}) ORDER BY due_by", statuses)

    def inspections(
        self, tail: str | None, statuses: tuple[str, ...], task_words: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Inspections by status, optionally for one aircraft and tasks containing any of ``task_words``."""
        where = [f"status IN ({', '.join('?' * len(statuses))})"]
        params: list[Any] = list(statuses)
        if tail:
            where.append("tail_number = ?")
            params.append(tail)
        if task_words:
            where.append("(" + " OR ".join("lower(task) LIKE ?" for _ in task_words) + ")")
            params += [f"%{w}%" for w in task_words]
        return self._rows(f"SELECT * FROM inspections WHERE {' AND '.join(where)} ORDER BY next_due", tuple(params))

    def task_words(self, text: str) -> tuple[str, ...]:
        """Words of ``text`` that name inspection tasks in the log (e.g. 'borescope', 'brake')."""
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as db:
            vocabulary = {
                w
                for (task,) in db.execute("SELECT DISTINCT lower(task) FROM inspections")
                for w in re.findall(r"[a-z0-9-]{4,}", task)
            } - {"check", "test", "inspection", "change"}
        return tuple(sorted(set(re.findall(r"[a-z0-9-]{4,}", text)) & vocabulary))

    def components(self, tail: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM components WHERE tail_number = ? ORDER BY position", (tail,))

    def answer(self, request: str) -> ToolResult:
        """Pick the queries a request asks for and render their rows as text with record sources."""
        if not request or len(request) > 2000:
            raise InvalidInputError("The maintenance request is empty or too long.")
        text = request.lower()
        tails = sorted({t.upper() for t in TAIL.findall(request)}) or [None]
        wants_defects = any(w in text for w in ("defer", "defect", "mel", "inoperative", "open item"))
        wants_inspections = any(w in text for w in ("inspect", "due", "overdue", "check", "task"))
        wants_components = any(w in text for w in ("component", "part", "serial", "engine", "apu", "propeller"))
        sections: list[str] = []
        sources: list[dict[str, Any]] = []
        for tail in tails:
            if tail and not (wants_defects or wants_inspections or wants_components):
                wants_defects = wants_inspections = True
            if tail:
                found = self.aircraft(tail)
                if not found:
                    sections.append(f"No aircraft with tail number {tail} in the maintenance log.")
                    continue
                a = found[0]
                sections.append(
                    f"{tail}: {a['type']}, base {a['home_base']}, {a['flight_hours']} FH, "
                    f"{a['cycles']} cycles, status {a['status']}."
                )
            if wants_defects:
                rows = self.deferred_defects(tail)
                sections += [
                    f"Deferred defect {r['defect_id']} on {r['tail_number']}: {r['description']} "
                    f"(MEL cat {r['mel_category']}, deferred {r['deferred_on']}, due {r['due_by']})"
                    for r in rows
                ] or [f"No open deferred defects{' on ' + tail if tail else ''}."]
                sources += [{"record": r["defect_id"], "table": "deferred_defects"} for r in rows]
            if wants_inspections:
                statuses = ("overdue",) if "overdue" in text else ("overdue", "due soon", "scheduled")
                rows = self.inspections(tail, statuses, self.task_words(text))
                sections += [
                    f"Inspection {r['inspection_id']} on {r['tail_number']}: {r['task']} "
                    f"next due {r['next_due']} ({r['status']})"
                    for r in rows
                ] or ["No such inspections."]
                sources += [{"record": r["inspection_id"], "table": "inspections"} for r in rows]
            if wants_components and tail:
                rows = self.components(tail)
                sections += [
                    f"{r['position']} on {tail}: P/N {r['part_number']} S/N {r['serial_number']}, "
                    f"{r['hours_since_install']} h since install (limit {r['life_limit_hours']} h)"
                    for r in rows
                ]
                sources += [{"record": f"{tail}/{r['position']}", "table": "components"} for r in rows]
        if tails == [None] and not (wants_defects or wants_inspections):
            sections.append("Name a tail number (e.g. N401SK) or ask about deferred defects or inspections due.")
        return ToolResult("\n".join(sections), tuple(sources))


def maintenance_records(tool_input: str, context: ToolContext) -> ToolResult:
    """Look up the maintenance log: aircraft by tail number (e.g. N401SK), open deferred defects (MEL
    items), inspections due or overdue, installed components. Input: a tail number and/or what to look up."""
    return context.service("maintenance").answer(tool_input)
