"""Reading batch inputs (CSV, Parquet, JSON Lines) and writing Parquet outputs atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.errors import InvalidInputError, StorageError

if TYPE_CHECKING:
    import pandas as pd

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".json": "jsonl"}
FORMAT_HINT = "Give a .csv (with a header row), .parquet or .jsonl (one JSON object per line) file."


def input_format(path: Path) -> str:
    """'csv', 'parquet' or 'jsonl' from the file name (a directory of Parquet files is 'parquet')."""
    if path.is_dir() and any(path.glob("*.parquet")):
        return "parquet"
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInputError(f"Cannot read {path}: unsupported file type {path.suffix or '(none)'!r}.",
                                hint=FORMAT_HINT)
    return fmt


def read_table(path: Path, text_column: str = "text") -> pd.DataFrame:
    """The input table with a ``text_column``; CSV cells are read as text (no NaN, no type guessing)."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.exists():
        raise InvalidInputError(f"The input {path} does not exist.", hint="Check the path.")
    fmt = input_format(path)
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=True, dtype=False)
    except pd.errors.EmptyDataError:
        raise InvalidInputError(f"The input {path} is empty.", hint=FORMAT_HINT) from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InvalidInputError(f"Cannot read {path} as {fmt}: {str(exc).splitlines()[0][:300]}",
                                hint=FORMAT_HINT) from None
    check_text_column(frame, text_column, path)
    return frame.reset_index(drop=True)


def check_text_column(frame: pd.DataFrame, text_column: str, source: Path | str) -> None:
    if text_column not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:20])) or "(none)"
        raise InvalidInputError(f"{source} has no column {text_column!r}.",
                                hint=f"Pass --text-column with one of its columns: {columns}.")
    if len(frame) == 0:
        raise InvalidInputError(f"{source} has no rows.", hint="Give a file with at least one row.")


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` atomically: readers see the old file or the complete new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            frame.to_parquet(tmp, index=False)
        except (TypeError, ValueError):  # pyarrow refuses object columns mixing types (JSON Lines input)
            mixed = {c: "string" for c in frame.columns if frame[c].dtype == object}
            frame.astype(mixed).to_parquet(tmp, index=False)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"Cannot write {path}: {exc.strerror or exc}.",
                           hint="Choose a writable output directory with free space.") from exc
