"""Installation checks behind `flywheel doctor`: each says what is wrong and how to fix it."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from flywheel.config import LMSettings, Settings, config_file_path
from flywheel.errors import FlywheelError
from flywheel.knowledge.snapshot import check_index


@dataclass(frozen=True)
class Check:
    name: str
    status: Literal["ok", "fail", "skip"]
    detail: str
    hint: str | None = None


def _run(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, "ok", probe())
    except FlywheelError as exc:
        return Check(name, "fail", exc.message, exc.hint)
    except Exception as exc:  # a doctor reports every failure instead of crashing on it
        return Check(name, "fail", f"{type(exc).__name__}: {exc}", "Please report this with `flywheel doctor` output.")


def check_home(settings: Settings) -> str:
    settings.ensure_dirs()
    probe = settings.home / f".doctor-{uuid.uuid4().hex}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        from flywheel.errors import StorageError

        raise StorageError(
            f"{settings.home} is not writable: {exc.strerror}.", hint="Set FLYWHEEL_HOME to a writable directory."
        ) from exc
    return str(settings.home)


def check_endpoint_reachable(lm: LMSettings) -> str:
    """GET {api_base}/models: proves the server answers before any generation is tried."""
    import httpx

    from flywheel.errors import EndpointUnreachableError

    url = (lm.api_base or "").rstrip("/") + "/models"
    key = lm.api_key()
    try:
        reply = httpx.get(url, timeout=min(lm.timeout_s, 10), headers={"Authorization": f"Bearer {key}"} if key else {})
    except httpx.HTTPError as exc:
        raise EndpointUnreachableError(
            f"Cannot reach {url}: {exc or type(exc).__name__}.",
            hint="Start the server (e.g. `flywheel lm serve`) or fix lm.api_base / FLYWHEEL_LM__API_BASE.",
        ) from exc
    if reply.status_code in (401, 403):
        raise EndpointUnreachableError(
            f"{url} refused the API key (HTTP {reply.status_code}).",
            hint=f"Set a valid key in ${lm.api_key_env}.",
        )
    return f"{url} answered HTTP {reply.status_code}"


def check_lm_answers(lm_settings: LMSettings) -> str:
    """One real structured answer, through DSPy and the JSON adapter, as programs will use it."""
    import dspy

    from flywheel.lm import build_lm, lm_failure

    lm = build_lm(lm_settings.model_copy(update={"cache": False}))
    started = time.perf_counter()
    try:
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            answer = dspy.Predict("question -> answer")(question="What is 2 + 2? Answer with a number.").answer
    except Exception as exc:
        raise lm_failure(exc, lm_settings) from exc
    elapsed = time.perf_counter() - started
    return f"{lm.model} answered {answer!r} in {elapsed:.1f} s"


def check_model_file(lm_settings: LMSettings) -> str:
    from flywheel.lm.model_file import resolve_model_path

    path = resolve_model_path(lm_settings.model_path)
    return f"{path.name} ({path.stat().st_size / 1e6:.0f} MB)"


def check_embedder(settings: Settings) -> str:
    from flywheel.knowledge.embed import get_embedder

    embedder = get_embedder(settings.embedder)
    vectors = embedder.embed(["Check the oil level after engine shutdown."])
    return f"{embedder.name}: {vectors.shape[1]}-d vectors"


def check_databases(settings: Settings) -> str:
    """``PRAGMA quick_check`` on every SQLite database Flywheel keeps (catalog, tracking, maintenance log)."""
    import sqlite3

    from flywheel.errors import StorageError

    urls = {
        "catalog": settings.catalog_url,
        "tracking": settings.tracking_uri,
        "maintenance log": f"sqlite:///{settings.maintenance_db}",
    }
    found = []
    for what, url in urls.items():
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
        if path is None or not os.path.exists(path):
            continue
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
                result = db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            result = str(exc)
        if result != "ok":
            raise StorageError(
                f"The {what} database {path} is damaged: {result}.",
                hint="Stop the service and restore the last backup (`flywheel restore BACKUP "
                "--force`); `sqlite3 FILE .recover` can salvage rows from a damaged file.",
            )
        found.append(what)
    return f"{', '.join(found)}: ok" if found else "no SQLite databases yet"


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order a user should fix them."""
    source = config_file_path()
    checks = [Check("configuration", "ok", f"loaded ({source or 'environment and defaults'})")]
    checks.append(_run("data directory", lambda: check_home(settings)))
    checks.append(_run("databases", lambda: check_databases(settings)))
    checks.append(_run("knowledge index", lambda: check_index(settings.index_uri)))
    for label, lm in (("LM", settings.lm), ("judge LM", settings.judge_lm)):
        if lm is None:
            continue
        if lm.provider == "embedded":
            model_check = _run(f"{label} model file", lambda lm=lm: check_model_file(lm))
        else:
            model_check = _run(f"{label} endpoint", lambda lm=lm: check_endpoint_reachable(lm))
        checks.append(model_check)
        if model_check.status == "ok":
            checks.append(_run(f"{label} answers", lambda lm=lm: check_lm_answers(lm)))
        else:
            checks.append(Check(f"{label} answers", "skip", f"skipped: the {label} is not available"))
    checks.append(_run("embedder", lambda: check_embedder(settings)))
    return checks
