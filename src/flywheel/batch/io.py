"""Reading batch inputs (CSV, Parquet, JSON Lines: :mod:`flywheel.tables`) and writing Parquet outputs atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.errors import StorageError
from flywheel.tables import FORMAT_HINT, FORMATS, check_text_column, input_format, read_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMATS", "FORMAT_HINT", "check_text_column", "input_format", "read_table", "write_parquet"]


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
        raise StorageError(
            f"Cannot write {path}: {exc.strerror or exc}.", hint="Choose a writable output directory with free space."
        ) from exc
