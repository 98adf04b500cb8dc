from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ModelFileError
from flywheel.lm.model_file import check_model_file, packaged_model_path, resolve_model_path


def test_packaged_model_is_found_without_downloading() -> None:
    path = resolve_model_path(None)
    assert path == packaged_model_path()
    assert path.name.endswith(".gguf")


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist") as info:
        check_model_file(tmp_path / "nope.gguf")
    assert "FLYWHEEL_LM__MODEL_PATH" in (info.value.hint or "")


def test_corrupt_file_is_detected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"\x00garbage" * 300_000)
    with pytest.raises(ModelFileError, match="corrupt or not a GGUF"):
        check_model_file(bad)


def test_truncated_gguf_is_detected(tmp_path: Path) -> None:
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(packaged_model_path().read_bytes()[:4096])
    with pytest.raises(ModelFileError, match="corrupt"):
        check_model_file(bad)


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not a file"):
        check_model_file(tmp_path)
