"""SQL functions that each backend spells differently, for stores that aggregate in SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, FunctionElement


class utc_day(FunctionElement[str]):
    """The UTC calendar day of a ``UTCDateTime`` column, as ``YYYY-MM-DD`` text.

    Grouping by it lets a store sum a large table per day in the database. SQLite keeps the
    UTC wall-clock text (``UTCDateTime`` converts on the way in), whose first ten characters
    are the day; PostgreSQL converts the instant to UTC first, whatever the session's zone.
    """

    type = String()
    inherit_cache = True

    def __init__(self, column: ColumnElement[Any] | InstrumentedAttribute[Any]) -> None:
        super().__init__(column)


@compiles(utc_day)
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
