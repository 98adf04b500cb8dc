"""Flywheel's SQL stores, in one database: the catalog's tables, conversations, interactions and
feedback, API keys, and stored Responses-API responses.

One declarative base and metadata (:mod:`flywheel.stores.database`), one engine per URL and process,
and Alembic migrations (``migrations/``) that create and upgrade the schema when a URL is first
opened. SQLite by default; PostgreSQL by a ``postgresql+psycopg://user@host/db`` catalog URL.
Importing this package declares every table (what the migrations' autogenerate compares against).

A new migration after changing a table (the database at URL upgraded to the current head first)::

    from alembic import command
    from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", "src/flywheel/stores/migrations")
    config.set_main_option("sqlalchemy.url", URL)
    command.revision(config, "what changed", autogenerate=True)
"""

from flywheel.stores import catalog, conversations, feedback, keys, responses
from flywheel.stores.database import Base, Database, open_database

__all__ = ["Base", "Database", "catalog", "conversations", "feedback", "keys", "open_database", "responses"]
