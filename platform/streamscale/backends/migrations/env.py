"""Alembic environment: runs on the connection `storage.migrate` hands over.

`streamscale.backends.storage.migrate(url)` configures Alembic from code and passes an
open connection (already inside the migration transaction) in `config.attributes`.
Run standalone (e.g. `alembic revision --autogenerate` with `-x url=...`) it opens its
own engine from that url.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from streamscale.backends.storage._engine import make_engine
from streamscale.backends.storage._sql_search import is_search_index
from streamscale.backends.storage._tables import metadata

config = context.config


def _not_search_index(name: str | None, kind: str, _parents: object) -> bool:
    """Autogenerate leaves 0005's search index alone: it is not in the metadata."""
    return not (kind == "table" and name is not None and is_search_index(name))


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True,
                      include_name=_not_search_index)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database with -x url=postgresql+psycopg://... or sqlite:///...")
    engine = make_engine(url, threads=1)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url", "postgresql+psycopg://")
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
