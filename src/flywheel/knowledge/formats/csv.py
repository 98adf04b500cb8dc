"""CSV: table blocks of CSV_ROWS_PER_BLOCK rows, each repeating the header row."""

from __future__ import annotations

import csv
import io
from typing import Any

from flywheel.errors import InvalidInputError
from flywheel.knowledge.blocks import Block, table_text

CSV_ROWS_PER_BLOCK = 20


def parse_csv(name: str, text: str) -> list[Block]:
    """One table block per CSV_ROWS_PER_BLOCK rows, each repeating the header row."""
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise InvalidInputError(
            f"{name} is not valid CSV: {exc}.", hint="Re-export it as comma-separated UTF-8 text."
        ) from exc
    if not rows:
        raise InvalidInputError(f"{name} has no rows.", hint="Upload a CSV with a header row and data.")
    header, body = rows[0], rows[1:]
    return [
        Block(table_text([header, *body[i : i + CSV_ROWS_PER_BLOCK]]), "table")
        for i in range(0, max(len(body), 1), CSV_ROWS_PER_BLOCK)
    ]
