"""The database every room shares: one engine per process, its write path, the tables and their
one Alembic history, and the error a failing database raises.

Stores live with the room whose data they hold (transcripts in :mod:`orchestrator.transcripts`,
keys and batches in :mod:`serving`, the registry in :mod:`distill`); each is built on the
:class:`Database` its process opened once.
"""

import database.audit_tables  # noqa: F401  (puts the audit queue's table on the metadata)
from database.engine import Database, Store, parse_database_url, upgrade_database
from database.errors import StoreError, mask_url

__all__ = ["Database", "Store", "StoreError", "mask_url", "parse_database_url", "upgrade_database"]
