"""Flywheel's configuration: one pydantic-settings object.

Sources, highest priority first: keyword arguments, ``FLYWHEEL_*`` environment variables
(nested with ``__``, e.g. ``FLYWHEEL_LM__PROVIDER=openai``), then a TOML file: the one named
by ``FLYWHEEL_CONFIG``, else ``./flywheel.toml``, else ``$FLYWHEEL_HOME/flywheel.toml``.

All state lives under ``FLYWHEEL_HOME`` (default ``~/.flywheel``). Secrets never live here:
a remote endpoint names the *environment variable* that holds its key (``api_key_env``), and
the key is read from the environment only when a client is built.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from flywheel.errors import ConfigError

ENV_PREFIX = "FLYWHEEL_"
CONFIG_FILE_ENV = "FLYWHEEL_CONFIG"
CONFIG_FILE_NAME = "flywheel.toml"


def read_api_key(env_name: str | None, endpoint: str) -> str | None:
    """The key held by the environment variable ``env_name`` (None when no variable is named)."""
    if not env_name:
        return None
    key = os.environ.get(env_name)
    if not key:
        raise ConfigError(
            f"{endpoint} needs an API key, but ${env_name} is not set.",
            hint=f"export {env_name}=<your key> (Flywheel never stores keys in files).",
        )
    return key


class LMSettings(BaseModel):
    """One language model: the embedded llama.cpp model or an OpenAI-compatible endpoint."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["embedded", "openai"] = Field(
        "embedded",
        description="'embedded' runs SmolLM2 in-process; 'openai' is any OpenAI-compatible server "
        "(Databricks serving endpoints, OpenAI, vLLM, Ollama, llama.cpp server, `flywheel lm serve`).",
    )
    model: str = Field("smollm2-135m-instruct", description="Model name the endpoint serves.")
    api_base: str | None = Field(None, description="Base URL of the endpoint, e.g. http://127.0.0.1:8081/v1.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable that holds the API key (never the key itself)."
    )
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout for remote endpoints, in seconds.")
    max_retries: int = Field(3, ge=0, le=10, description="Retries with backoff on 429/5xx/timeouts.")
    max_retry_wait_s: float = Field(
        10.0,
        ge=0,
        description="Longest pause before a retry in a served request; a 429 "
        "asking for a longer Retry-After fails at once (503 + Retry-After) instead of "
        "holding a worker. Batch jobs and optimization wait up to 120 s.",
    )
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(768, gt=0, le=32768)
    structured_outputs: bool = Field(
        True,
        description="The endpoint honours JSON-schema response_format (vLLM, Ollama, llama.cpp, OpenAI, "
        "Databricks, `flywheel lm serve` do). Flywheel then asks for schema-constrained answers.",
    )
    cache: bool = Field(True, description="Use DSPy's response cache (under FLYWHEEL_HOME/dspy_cache).")
    # Embedded-only knobs.
    model_path: Path | None = Field(None, description="Use this GGUF file instead of the packaged SmolLM2.")
    n_ctx: int = Field(4096, ge=512, le=32768, description="Context window of the embedded model.")
    n_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads per embedded context (default: the cores less one, shared by the pool's contexts).",
    )
    repeat_penalty: float = Field(
        1.0, ge=1.0, le=2.0, description="Embedded decoding: penalty on repeated tokens (1.0 = off)."
    )
    pool_size: int = Field(1, ge=1, le=16, description="Embedded contexts that answer concurrently.")

    @field_validator("api_key_env")
    @classmethod
    def _looks_like_a_variable_name(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("_", "").isalnum():
            raise ValueError(
                "api_key_env must be the NAME of an environment variable (like OPENAI_API_KEY), not the key itself"
            )
        return value

    def api_key(self) -> str | None:
        """Read the key from the environment at call time; it is never stored in settings."""
        return read_api_key(self.api_key_env, f"The LM endpoint {self.api_base}")

    def reasons_well(self) -> bool:
        """Whether programs should add a reasoning step for this LM by default (not the embedded one)."""
        return self.provider != "embedded"


class EmbedderSettings(BaseModel):
    """The text embedder: local sentence-transformers model or an OpenAI-compatible endpoint."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["local", "openai"] = "local"
    model: str = Field(
        "all-MiniLM-L6-v2",
        description="The endpoint's model, or the local model: all-MiniLM-L6-v2 (English, default), "
        "use-multilingual-v3 or multilingual-e5-small (Japanese and 15 other languages; the 'multilingual' extra). "
        "Changing it needs `flywheel docs reindex`.",
    )
    api_base: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    batch_size: int = Field(64, ge=1, le=4096)
    dimensions: int | None = Field(None, ge=1, description="Vector size; detected when not given.")
    runtime: Literal["onnx", "torch"] = Field(
        "onnx",
        description="Engine of the local all-MiniLM-L6-v2: ONNX Runtime (about half torch's CPU per search "
        "query; same vectors to ~1e-7) or torch (sentence-transformers).",
    )

    def api_key(self) -> str | None:
        """Read the key from the environment at call time."""
        return read_api_key(self.api_key_env, f"The embeddings endpoint {self.api_base}")


class KnowledgeSettings(BaseModel):
    """Where documents are indexed and how they are cut into chunks."""

    model_config = ConfigDict(extra="forbid")

    index_uri: str | None = Field(
        None, description="LanceDB URI: a local path (default FLYWHEEL_HOME/lancedb) or object storage (s3://…)."
    )
    catalog_url: str | None = Field(
        None, description="SQLAlchemy URL of the catalog (default sqlite under FLYWHEEL_HOME; Postgres works)."
    )
    chunk_max_tokens: int = Field(200, ge=32, le=2048, description="Chunk size in embedder word pieces.")
    chunk_overlap_tokens: int = Field(30, ge=0, le=512, description="Overlap between chunks of one section.")
    max_file_mb: float = Field(50.0, gt=0, description="Uploads larger than this are refused.")
    ann_min_rows: int = Field(50_000, ge=1, description="Build an ANN vector index once the table has this many rows.")
    batch_chunks: int = Field(256, ge=1, le=10_000, description="Chunks embedded and committed together.")


class ProgramSettings(BaseModel):
    """Which DSPy programs answer questions, and their knobs."""

    model_config = ConfigDict(extra="forbid")

    default: str = Field("rag", description="Program used when none is named: rag, agent, or a custom name.")
    custom: dict[str, str] = Field(
        default_factory=dict,
        description="Extra programs by name: 'package.module:Class' (a dspy.Module whose forward takes "
        "question, principal, history).",
    )
    retrieval_k: int = Field(4, ge=1, le=50, description="Passages retrieved per question.")
    reasoning: Literal["auto", "on", "off"] = Field(
        "auto",
        description="A reasoning step (ChainOfThought) before answers: 'auto' = on for endpoints, off for "
        "the embedded 135M model (its reasoning crowds out its answer). Optimized versions record their choice.",
    )
    answer_style: Literal["auto", "quote", "generate"] = Field(
        "auto",
        description="Answers to questions that are not yes/no: 'quote' the passage sentence most similar "
        "to the question, or 'generate' a short phrase; 'auto' = generate for endpoints, quote for the embedded "
        "135M model (its phrases mostly restate the question). Optimized versions record their choice.",
    )
    agent_max_steps: int = Field(3, ge=1, le=10, description="Tool calls the agent may make per question.")
    maintenance_db: Path | None = Field(None, description="Maintenance log (default FLYWHEEL_HOME/maintenance.db).")


class TrackingSettings(BaseModel):
    """MLflow tracking and model registry (runs, traces, registered program versions)."""

    model_config = ConfigDict(extra="forbid")

    uri: str | None = Field(None, description="MLflow tracking URI (default sqlite:///FLYWHEEL_HOME/mlflow.db).")
    artifact_root: str | None = Field(None, description="Where run artifacts go (default FLYWHEEL_HOME/mlartifacts).")
    experiment: str = Field("flywheel", description="MLflow experiment for eval/optimize runs.")
    model_prefix: str = Field("flywheel-", description="Registered model name = prefix + program name.")


class OptimizeSettings(BaseModel):
    """Optimization defaults and the promotion gate."""

    model_config = ConfigDict(extra="forbid")

    margin: float = Field(0.01, ge=0, le=1, description="A candidate must beat the champion's score by this much.")
    guards: dict[str, float] = Field(
        default_factory=lambda: {"faithfulness": 0.02, "safety": 0.0},
        description="Guard metrics and the largest drop allowed against the champion, e.g. {faithfulness = 0.02}.",
    )
    composites: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {
            "rag_quality": {"answer_f1": 0.6, "recall": 0.4},
            "classifier_quality": {"accuracy": 0.5, "macro_f1": 0.5},
        },
        description="Weighted composite metrics by name: {name = {metric = weight, …}}.",
    )
    threads: int = Field(2, ge=1, le=64, description="Parallel program calls during evaluation.")
    max_lm_calls: int | None = Field(None, ge=1, description="Default budget: LM calls while compiling.")
    max_minutes: float | None = Field(None, gt=0, description="Default budget: minutes while compiling.")
    dev_fraction: float = Field(0.3, gt=0, lt=1, description="Held-out share when no dev split is given.")
    seed: int = 0


class ServeSettings(BaseModel):
    """The REST service and web chat page."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 to expose it).")
    port: int = Field(8000, ge=1, le=65535)
    alias: str = Field("champion", description="Registry alias whose program version is served.")
    reload_interval_s: float = Field(5.0, ge=0, description="How often to look for a newly promoted champion.")
    workers: int = Field(32, ge=1, le=256, description="Program calls that run at once (threads off the event loop).")
    request_timeout_s: float = Field(120.0, gt=0, description="A program call running longer than this is a 504.")
    trace_sample: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of requests recorded as MLflow traces (answers are kept for feedback either way).",
    )
    trace_export: Literal["process", "inline"] = Field(
        "process",
        description="Where traces are written: 'process' = a child trace sink started by `flywheel serve` "
        "writes them into the local tracking store (one for all --workers; the serving processes only "
        "post trace infos and spans over loopback HTTP); 'inline' = the serving process writes the store "
        "itself. A remote "
        "tracking.uri (http/https/databricks) is always written directly.",
    )
    trace_sink: str = Field(
        "",
        description="URL of the trace sink the serving process posts its traces to (set by `flywheel serve` "
        "for the child it starts with trace_export = 'process'; empty: MLflow writes them to tracking.uri).",
    )
    breaker_failures: int = Field(
        5,
        ge=1,
        le=1000,
        description="LM endpoint faults in a row (timeouts, "
        "connection errors, 5xx, 429 after retries) that open the circuit breaker.",
    )
    breaker_open_s: float = Field(
        15.0,
        gt=0,
        description="How long an open breaker refuses LM calls (503 + Retry-After) before one trial call may close it.",
    )


class LimitsSettings(BaseModel):
    """Abuse limits of the REST service, all in one place (0 turns a limit off)."""

    model_config = ConfigDict(extra="forbid")

    rate_per_minute: float = Field(600.0, ge=0, description="Requests per minute per API key (429 + Retry-After).")
    burst: int = Field(100, ge=1, description="Requests one key may send at once before the rate applies.")
    max_concurrent: int = Field(16, ge=0, description="Requests of one API key in flight at once (429 beyond).")
    upload_quota_mb: float = Field(1024.0, ge=0, description="Document bytes one user may own (413 beyond).")
    max_body_mb: float = Field(2.0, ge=0, description="Largest request body except uploads (413 beyond).")
    max_upload_mb: float = Field(200.0, ge=0, description="Largest POST /documents request, all files together.")
    max_question_chars: int = Field(8000, ge=1, description="Longest question a program is asked (422 beyond).")


class ClassifySettings(BaseModel):
    """The customer-feedback classifier."""

    model_config = ConfigDict(extra="forbid")

    labels: Path | None = Field(None, description="Label set YAML (default: the airline feedback taxonomy).")
    threads: int = Field(2, ge=1, le=64, description="Parallel LM calls in batch runs.")
    checkpoint_rows: int = Field(50, ge=1, description="Rows per checkpoint in batch runs.")
    cascade_lm_share: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Cascade: the largest share of rows the distilled "
        "head may hand to the LM program (its threshold is chosen within this budget).",
    )
    search_lm_rows: int = Field(
        60,
        ge=0,
        description="`optimize classifier` (auto): validation rows each LM-program "
        "candidate is scored on (0: head candidates only, no LM calls).",
    )
    embedding_cache_rows: int = Field(
        200_000,
        ge=0,
        description="Distilled head: texts whose vectors each process "
        "keeps (repeated texts skip the embedder; 0 turns the cache off).",
    )
    spark_chunk_rows: int = Field(
        100_000, ge=0, description="Spark runs to a local folder: rows per resumable chunk (0: one job, not resumable)."
    )


class Settings(BaseSettings):
    """Everything Flywheel reads from the environment and flywheel.toml."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(default_factory=lambda: Path("~/.flywheel"), description="Where all state lives.")
    lm: LMSettings = Field(default_factory=LMSettings)
    judge_lm: LMSettings | None = Field(None, description="LM for LLM-as-a-judge metrics (default: lm).")
    teacher_lm: LMSettings | None = Field(
        None, description="Stronger LM that bootstraps demos / labels unlabelled data while optimizing (default: lm)."
    )
    reflection_lm: LMSettings | None = Field(None, description="LM that GEPA uses to reflect and rewrite instructions.")
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    programs: ProgramSettings = Field(default_factory=ProgramSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    optimize: OptimizeSettings = Field(default_factory=OptimizeSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    classify: ClassifySettings = Field(default_factory=ClassifySettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = config_file_path()
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    def reasons_by_default(self) -> bool:
        """Whether programs add a reasoning step before answering (``programs.reasoning``; ``auto``: when
        the LM reasons well, i.e. an endpoint LM, not the embedded one)."""
        choice = self.programs.reasoning
        return self.lm.reasons_well() if choice == "auto" else choice == "on"

    @cached_property
    def dspy_cache_dir(self) -> Path:
        return self.home / "dspy_cache"

    @cached_property
    def data_dir(self) -> Path:
        return self.home / "data"

    @cached_property
    def index_uri(self) -> str:
        return self.knowledge.index_uri or str(self.home / "lancedb")

    @cached_property
    def catalog_url(self) -> str:
        return self.knowledge.catalog_url or f"sqlite:///{self.home / 'catalog.db'}"

    @cached_property
    def maintenance_db(self) -> Path:
        return self.programs.maintenance_db or self.home / "maintenance.db"

    @cached_property
    def tracking_uri(self) -> str:
        return self.tracking.uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @cached_property
    def artifact_root(self) -> str:
        return self.tracking.artifact_root or (self.home / "mlartifacts").as_uri()

    def ensure_dirs(self) -> None:
        """Create the state directories, with a clear error when that is impossible."""
        for path in (self.home, self.dspy_cache_dir, self.data_dir):
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"Cannot create the Flywheel data directory {path}: {exc.strerror}.",
                    hint="Set FLYWHEEL_HOME to a writable directory.",
                ) from exc


def config_file_path() -> Path | None:
    """The TOML file in force, or None. An explicitly named file must exist."""
    named = os.environ.get(CONFIG_FILE_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"{CONFIG_FILE_ENV} names {path}, which does not exist.",
                hint=f"Create the file or unset {CONFIG_FILE_ENV}.",
            )
        return path
    local = Path.cwd() / CONFIG_FILE_NAME
    if local.is_file():
        return local
    home = Path(os.environ.get(f"{ENV_PREFIX}HOME", "~/.flywheel")).expanduser() / CONFIG_FILE_NAME
    return home if home.is_file() else None


def _known_env_names(settings_cls: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> set[str]:
    """Every FLYWHEEL_* variable name the settings understand (nested ones included)."""
    names = {CONFIG_FILE_ENV}
    for name, field in settings_cls.model_fields.items():
        full = f"{prefix}{name.upper()}"
        names.add(full)
        for candidate in _model_types(field.annotation):
            names |= _known_env_names(candidate, f"{full}__")
    return names


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [arg for arg in getattr(annotation, "__args__", ()) if isinstance(arg, type) and issubclass(arg, BaseModel)]


def _check_env_names() -> None:
    known = _known_env_names()
    unknown = sorted(n for n in os.environ if n.startswith(ENV_PREFIX) and n not in known)
    if unknown:
        raise ConfigError(
            f"Unknown configuration variable(s): {', '.join(unknown)}.",
            hint="Check the spelling; nested settings use a double underscore, e.g. FLYWHEEL_LM__PROVIDER. "
            "`flywheel config` lists every setting.",
        )


def _describe(error: ValidationError, source: Path | None) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown setting '{where}'")
        else:
            lines.append(f"'{where}': {item['msg']}")
    origin = f" (from the environment or {source})" if source else " (from the environment)"
    return "Invalid configuration" + origin + ": " + "; ".join(lines) + "."


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning every problem into one clear ConfigError."""
    _check_env_names()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(
            _describe(exc, config_file_path()),
            hint="Fix or remove the setting; `flywheel config` shows every setting with its default.",
        ) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(
            f"Cannot read the configuration file {config_file_path()}: {exc}",
            hint="Fix the TOML syntax or point FLYWHEEL_CONFIG at another file.",
        ) from None
