from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from flywheel.config import load_settings
from flywheel.errors import ConfigError


def test_defaults_use_the_embedded_lm_and_home(flywheel_home: Path) -> None:
    settings = load_settings()
    assert settings.lm.provider == "embedded"
    assert settings.home == flywheel_home.resolve()
    assert settings.dspy_cache_dir == flywheel_home.resolve() / "dspy_cache"


def test_nested_env_vars_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_LM__PROVIDER", "openai")
    monkeypatch.setenv("FLYWHEEL_LM__API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("FLYWHEEL_LM__TIMEOUT_S", "2.5")
    settings = load_settings()
    assert settings.lm.provider == "openai"
    assert settings.lm.timeout_s == 2.5


def test_toml_file_is_read_and_env_wins(flywheel_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (flywheel_home / "flywheel.toml").write_text("[lm]\nmax_tokens = 256\ntemperature = 0.7\n")
    monkeypatch.setenv("FLYWHEEL_LM__TEMPERATURE", "0.1")
    settings = load_settings()
    assert settings.lm.max_tokens == 256
    assert settings.lm.temperature == 0.1


def test_unknown_toml_key_names_the_key(flywheel_home: Path) -> None:
    (flywheel_home / "flywheel.toml").write_text("[lm]\nmodle = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "unknown setting 'lm.modle'" in info.value.message
    assert info.value.hint


def test_unknown_env_var_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_LM_PROVIDER", "openai")  # single underscore: a typo
    with pytest.raises(ConfigError, match="FLYWHEEL_LM_PROVIDER"):
        load_settings()


def test_bad_value_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_LM__PROVIDER", "gpt")
    with pytest.raises(ConfigError, match=r"'lm.provider'"):
        load_settings()


def test_malformed_toml_is_explained(flywheel_home: Path) -> None:
    (flywheel_home / "flywheel.toml").write_text("[lm\n")
    with pytest.raises(ConfigError, match="Cannot read the configuration file"):
        load_settings()


def test_named_config_file_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLYWHEEL_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_api_key_comes_from_the_named_variable_and_is_never_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_LM__PROVIDER", "openai")
    monkeypatch.setenv("FLYWHEEL_LM__API_KEY_ENV", "MY_ENDPOINT_KEY")
    monkeypatch.setenv("MY_ENDPOINT_KEY", "sk-secret-123")
    settings = load_settings()
    assert settings.lm.api_key() == "sk-secret-123"
    assert "sk-secret-123" not in settings.model_dump_json()
    assert b"sk-secret-123" not in pickle.dumps(settings)


def test_missing_api_key_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_LM__API_KEY_ENV", "ABSENT_KEY_VAR")
    with pytest.raises(ConfigError, match=r"\$ABSENT_KEY_VAR is not set"):
        load_settings().lm.api_key()


def test_a_key_pasted_into_api_key_env_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_LM__API_KEY_ENV", "sk-proj.abc-123")
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        load_settings()
