"""The one table reader of the project: CSV, Parquet and JSON Lines files as pandas DataFrames.

Evaluation datasets, training sets and batch inputs all go through :func:`read_table`, so a
text is the same text everywhere. CSV is parsed by pandas' CSV parser (RFC 4180 quoting: a
quoted cell may hold commas, doubled quotes and line breaks, kept as written) with every cell
read as text: no NaN, no number guessing (``"0012"`` stays ``"0012"``), empty cells are ``""``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
FORMAT_HINT = "Give a .csv (with a header row), .parquet or .jsonl (one JSON object per line) file."


def input_format(path: Path) -> str:
    """'csv', 'parquet' or 'jsonl' from the file name (a directory of Parquet files is 'parquet')."""
    if path.is_dir() and any(path.glob("*.parquet")):
        return "parquet"
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"Cannot read {path}: unsupported file type {path.suffix or '(none)'!r}.", hint=FORMAT_HINT
        )
    return fmt


def read_table(path: Path, text_column: str | None = "text") -> pd.DataFrame:
    """The table in ``path``; with ``text_column``, check that the column exists and there are rows."""
    # Lazy (start-up time): only this path needs pandas.
    import pandas as pd

    path = Path(path).expanduser()
    if not path.exists():
        raise InvalidInputError(f"The input {path} does not exist.", hint="Check the path.")
    fmt = input_format(path)
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=True, dtype=False)
    except pd.errors.EmptyDataError:
        raise InvalidInputError(f"The input {path} is empty.", hint=FORMAT_HINT) from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InvalidInputError(
            f"Cannot read {path} as {fmt}: {str(exc).splitlines()[0][:300]}", hint=FORMAT_HINT
        ) from None
    if text_column is not None:
        check_text_column(frame, text_column, path)
    return frame.reset_index(drop=True)


def check_text_column(frame: pd.DataFrame, text_column: str, source: Path | str) -> None:
    if text_column not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:20])) or "(none)"
        raise InvalidInputError(
            f"{source} has no column {text_column!r}.", hint=f"Pass --text-column with one of its columns: {columns}."
        )
    if len(frame) == 0:
        raise InvalidInputError(f"{source} has no rows.", hint="Give a file with at least one row.")
