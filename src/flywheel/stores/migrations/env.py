"""Alembic environment for Flywheel's stores: run by :func:`flywheel.stores.database.upgrade` with an
open connection (``config.attributes["connection"]``), or with ``sqlalchemy.url`` set to write a new
migration (see :mod:`flywheel.stores`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text

import flywheel.stores  # noqa: F401  (declares every table on Base.metadata)
from flywheel.stores.database import Base

POSTGRES_MIGRATION_LOCK = 724_158_301  # pg_advisory_xact_lock key: one migrating process at a time


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({POSTGRES_MIGRATION_LOCK})"))
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("Set sqlalchemy.url (the database to compare the models with) or pass a connection.")
    with create_engine(url).begin() as own:
        run_migrations(own)
