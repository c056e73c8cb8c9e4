"""The database's tables, as SQLAlchemy 2 typed ORM classes, one module per owner.

These rows never leave the stores built on them; callers get the stores' dataclasses (e.g.
:mod:`orchestrator.transcripts.records`). The hand-written migrations in ``migrations/versions``
create exactly these tables, and ``tests/database/test_database.py`` checks that autogenerate
finds no difference. Constraint and index names are spelled out so the migrations and the
metadata cannot drift apart through a naming convention. Importing this package registers every
table on ``Base.metadata``, which the Alembic environment compares against.
"""

from database.tables.audits import AuditRow
from database.tables.base import (
    KEY_ID_LENGTH,
    MODE_LENGTH,
    RUN_ID_LENGTH,
    WORKER_ID_LENGTH,
    Base,
    table_of,
)
from database.tables.batches import (
    CUSTOM_ID_LENGTH,
    ITEM_STATUSES,
    BatchItemRow,
    BatchJobRow,
    FileRow,
    WorkerRow,
)
from database.tables.console import ConsoleSessionRow
from database.tables.keys import (
    KEY_NAME_LENGTH,
    KEY_PREFIX_LENGTH,
    MAX_REQUESTS_PER_MINUTE,
    MAX_TOKENS_PER_DAY,
    ApiKeyRow,
    ApiKeyUsageRow,
    WriteProbeRow,
)
from database.tables.registry import (
    SPECIALIST_NAME_LENGTH,
    DistillJobRow,
    PausedSpecialistRow,
    ProposalRow,
    RegisteredSpecialistRow,
    RegistryStateRow,
    SpecialistEventRow,
    SpecialistVersionRow,
)
from database.tables.responses import StoredResponseRow
from database.tables.rollups import RunFigures, add_rollups, rollup_rows, run_rollups
from database.tables.runs import FeedbackRow, HandedOverCallRow, LeadCallRow, RunRow, ToolCallRow

__all__ = [
    "CUSTOM_ID_LENGTH",
    "ITEM_STATUSES",
    "KEY_ID_LENGTH",
    "KEY_NAME_LENGTH",
    "KEY_PREFIX_LENGTH",
    "MAX_REQUESTS_PER_MINUTE",
    "MAX_TOKENS_PER_DAY",
    "MODE_LENGTH",
    "RUN_ID_LENGTH",
    "SPECIALIST_NAME_LENGTH",
    "WORKER_ID_LENGTH",
    "ApiKeyRow",
    "ApiKeyUsageRow",
    "AuditRow",
    "Base",
    "BatchItemRow",
    "BatchJobRow",
    "ConsoleSessionRow",
    "DistillJobRow",
    "FeedbackRow",
    "FileRow",
    "HandedOverCallRow",
    "LeadCallRow",
    "PausedSpecialistRow",
    "ProposalRow",
    "RegisteredSpecialistRow",
    "RegistryStateRow",
    "RunFigures",
    "RunRow",
    "SpecialistEventRow",
    "SpecialistVersionRow",
    "StoredResponseRow",
    "ToolCallRow",
    "WorkerRow",
    "WriteProbeRow",
    "add_rollups",
    "rollup_rows",
    "run_rollups",
    "table_of",
]
