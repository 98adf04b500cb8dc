"""Bad input reaches the user as one clear message, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def flywheel(*args: str, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    full_env["FLYWHEEL_HOME"] = os.environ["FLYWHEEL_HOME"]
    full_env["COLUMNS"] = "250"  # keep Rich from wrapping the messages we look for
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "flywheel", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    for needle in needles:
        assert needle in output, output


def test_help_works() -> None:
    result = flywheel("--help")
    assert result.returncode == 0
    assert "doctor" in result.stdout


def test_unknown_config_key_from_any_command(flywheel_home: Path) -> None:
    (flywheel_home / "flywheel.toml").write_text("[lm]\ntemprature = 0.2\n")
    for command in (["config"], ["lm", "ask", "hi"], ["doctor"]):
        assert_clean_error(flywheel(*command), "unknown setting 'lm.temprature'", "How to fix")


@pytest.fixture
def corrupt_model(tmp_path: Path) -> str:
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(b"GGUF" + os.urandom(2 * 1024 * 1024))  # right magic, garbage body
    return str(path)


def test_corrupt_model_file_from_lm_ask(corrupt_model: str) -> None:
    result = flywheel("lm", "ask", "hi", env={"FLYWHEEL_LM__MODEL_PATH": corrupt_model})
    assert_clean_error(result, "could not load the model", "How to fix")


def test_missing_model_file_from_doctor(tmp_path: Path) -> None:
    result = flywheel("doctor", env={"FLYWHEEL_LM__MODEL_PATH": str(tmp_path / "missing.gguf")})
    assert_clean_error(result, "does not exist", "FLYWHEEL_LM__MODEL_PATH")


def test_unreachable_endpoint_from_doctor_and_ask() -> None:
    env = {
        "FLYWHEEL_LM__PROVIDER": "openai",
        "FLYWHEEL_LM__API_BASE": "http://127.0.0.1:9/v1",  # discard port: nothing listens
        "FLYWHEEL_LM__MAX_RETRIES": "0",
        "FLYWHEEL_LM__TIMEOUT_S": "5",
    }
    assert_clean_error(flywheel("doctor", env=env), "Cannot reach http://127.0.0.1:9/v1/models", "flywheel lm serve")
    assert_clean_error(flywheel("lm", "ask", "hi", env=env), "Cannot reach the LM endpoint", "How to fix")
