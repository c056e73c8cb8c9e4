"""Alembic environment of the one database every store shares.

Only the online mode on a caller-provided connection is supported: :mod:`database.engine` opens
an async engine, starts a transaction and hands its synchronous connection over in
``config.attributes["connection"]``. There is no ``alembic.ini`` and no URL in here.
"""

from __future__ import annotations

from alembic import context

from database.audit_tables import AuditRow  # noqa: F401  (its table is on Base's metadata)
from database.tables import Base

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "the database's migrations run through database.upgrade_database(url), "
        "which passes a live connection; the alembic command line is not supported"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    compare_type=True,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
