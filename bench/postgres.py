"""A throwaway PostgreSQL server: initdb + pg_ctl in a temporary directory, on a free port, listening only
on a unix socket in that directory, removed with its data afterwards. Used by the benchmarks
(``bench.workers --stores postgres``) and by the test suite's ``postgres`` fixture (tests/conftest.py).

:func:`unavailable` says why no server can be started here (Debian's ``postgresql`` package or the
``psycopg`` driver missing, root without a ``postgres`` user), or None; :func:`start` starts one and
raises :class:`PostgresError` with the server's own words when it cannot.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.services import free_port


class PostgresError(RuntimeError):
    """The server could not be started (or is unavailable here: the message says why)."""


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def unavailable() -> str | None:
    """Why a throwaway server cannot run here, or None when it can."""
    if binaries() is None:
        return (
            "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin): "
            "install Debian's postgresql package"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install 'flywheel[postgres]'"
    if os.geteuid() == 0 and (shutil.which("runuser") is None or _uid("postgres") is None):
        return "running as root without a 'postgres' user to run the server as"
    return None


class PostgresServer:
    """A running throwaway server; :meth:`stop` removes it with its data."""

    def __init__(self, binaries: Path, root: Path, port: int) -> None:
        self.binaries, self.socket_dir, self.port = binaries, root, port
        self.data = root / "data"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` (psycopg 3 driver, over the unix socket)."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def new_database(self, prefix: str = "flywheel") -> str:
        """A fresh, empty database's URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            _as_server_user([str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def start() -> PostgresServer:
    """Start a server (fsync off: throwaway data); raises :class:`PostgresError` when it cannot."""
    reason = unavailable()
    found = binaries()
    if reason is not None or found is None:
        raise PostgresError(reason or "PostgreSQL is not installed")
    root = Path(tempfile.mkdtemp(prefix="flywheel-pg-"))
    if os.geteuid() == 0:
        os.chown(root, _uid("postgres") or 0, -1)
    server = PostgresServer(found, root, free_port())
    options = f"-k {root} -p {server.port} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
    initdb = [str(found / "initdb"), "-D", str(server.data), "-U", "postgres", "--auth=trust", "--no-sync"]
    pg_ctl = [str(found / "pg_ctl"), "-D", str(server.data), "-l", str(root / "server.log"), "-o", options]
    try:
        subprocess.run(_as_server_user([*initdb, "-E", "UTF8"]), check=True, capture_output=True, timeout=120)
        subprocess.run(
            _as_server_user([*pg_ctl, "-w", "-t", "60", "start"]), check=True, capture_output=True, timeout=90
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace")[-500:]
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresError(f"Could not start a throwaway PostgreSQL server: {exc}: {detail}") from exc
    return server


@contextmanager
def running() -> Iterator[PostgresServer]:
    """A server for the duration of the block."""
    server = start()
    try:
        yield server
    finally:
        server.stop()


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _uid(user: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None
