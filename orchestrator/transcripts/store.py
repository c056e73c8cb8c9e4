"""The transcript store: every run, its lead calls and tool calls, and the feedback it got.

Runs are written once, whole, in one transaction, and never overwritten; that is what lets batch
jobs resume after a crash without storing an answer twice, and what makes the store a trustworthy
source for distillation. Readers get plain dataclasses (:mod:`orchestrator.transcripts.records`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from database.engine import Database, Store, wrap_errors
from database.tables import (
    MODE_LENGTH,
    RUN_ID_LENGTH,
    FeedbackRow,
    HandedOverCallRow,
    LeadCallRow,
    RunFigures,
    RunRow,
    ToolCallRow,
    add_rollups,
    rollup_rows,
)
from orchestrator.difficulty import DifficultyDecision
from orchestrator.handover import Handover
from orchestrator.outcome import FINISH_REASONS, Failure, FailureKind, FinishReason
from orchestrator.transcripts.errors import RunAlreadyRecorded, RunNotFound
from orchestrator.transcripts.records import FeedbackRecord, LeadCallRecord, RunRecord
from specialists.backend import FunctionCall
from tools.context import ToolCall

MAX_COMMENT_CHARS = 4000
"""Longest feedback comment; feedback is a judgement, not a document."""


class TranscriptStore(Store):
    """Runs and feedback in SQLite or PostgreSQL, on the process's :class:`Database`."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    async def save_run(self, run: RunRecord) -> None:
        """Store a run with its lead calls and tool calls, all or nothing.

        Content is stored as given except what one backend could not hold: NUL characters and
        lone surrogates in text become U+FFFD and ``?``, NaN and infinities in JSON become null.
        The same happens on SQLite and PostgreSQL, so a run reads back the same from either.

        Raises:
            RunAlreadyRecorded: A run with this id is stored already; nothing was written.
            ValueError: The id or mode is empty or too long, ``created_at`` is naive, or the
                finish reason is not one of :data:`~orchestrator.outcome.FINISH_REASONS`.
            TypeError: Message or tool-call content holds something that is not JSON.
            StoreError: The database failed.
        """
        run_values, lead_values, tool_values = _run_rows(run)
        handed_values = [
            {"call_id": call["id"], "run_id": run.run_id} for call in run.app_tool_calls
        ]
        with wrap_errors("save_run", self._url):
            try:
                # Core inserts, not the ORM unit of work: a run is written on every request and
                # this halves the CPU it costs.
                async with self._writing(), self._engine.begin() as connection:
                    await connection.execute(insert(RunRow), run_values)
                    # The overview's rollup, in the same transaction: never behind the runs.
                    await connection.execute(
                        add_rollups(self.database.dialect), rollup_rows([_figures(run_values)])
                    )
                    if lead_values:
                        await connection.execute(insert(LeadCallRow), lead_values)
                    if tool_values:
                        await connection.execute(insert(ToolCallRow), tool_values)
                    if handed_values:
                        await connection.execute(insert(HandedOverCallRow), handed_values)
            except IntegrityError:
                if await self._run_exists(run.run_id):
                    raise RunAlreadyRecorded(run.run_id) from None
                raise

    async def get_run(self, run_id: str) -> RunRecord:
        """The run with its lead calls and tool calls, in the order they were made.

        Raises:
            RunNotFound: No run has this id.
            StoreError: The database failed.
        """
        query = (
            select(RunRow)
            .where(RunRow.id == run_id)
            .options(selectinload(RunRow.lead_calls), selectinload(RunRow.tool_calls))
        )
        with wrap_errors("get_run", self._url):
            async with self._sessions() as session:
                row = (await session.scalars(query)).one_or_none()
                if row is None:
                    raise RunNotFound(run_id)
                return _run_record(row, with_children=True)

    async def list_runs(
        self, *, limit: int = 20, offset: int = 0, mode: str | None = None
    ) -> list[RunRecord]:
        """Runs newest first, without their lead and tool calls (use :meth:`get_run` for those).

        Raises:
            ValueError: ``limit`` or ``offset`` is negative.
            StoreError: The database failed.
        """
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be ≥ 0, got limit={limit}, offset={offset}")
        query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc())
        if mode is not None:
            query = query.where(RunRow.mode == mode)
        query = query.limit(limit).offset(offset)
        with wrap_errors("list_runs", self._url):
            async with self._sessions() as session:
                rows = (await session.scalars(query)).all()
                return [_run_record(row, with_children=False) for row in rows]

    async def handovers(self, call_ids: Collection[str], owner: str | None) -> list[Handover]:
        """The runs of ``owner`` that handed over any of ``call_ids``, with their turns.

        Another owner's runs are not found: their calls are, to this caller, ids like any
        other. ``None`` is an owner too (nobody in particular: authentication off, the CLI).

        Raises:
            StoreError: The database failed.
        """
        if not call_ids:
            return []
        owned = RunRow.owner_key_id.is_(None) if owner is None else RunRow.owner_key_id == owner
        handed = select(HandedOverCallRow.run_id).where(
            HandedOverCallRow.call_id.in_(sorted(call_ids))
        )
        query = (
            select(RunRow)
            .where(RunRow.id.in_(handed), owned)
            .order_by(RunRow.created_at, RunRow.id)
        )
        with wrap_errors("handovers", self._url):
            async with self._sessions() as session:
                rows = (await session.scalars(query)).all()
        return [
            Handover(run_id=row.id, calls=_app_tool_calls(row), turn=tuple(row.lead_turn or ()))
            for row in rows
        ]

    async def continuations(self, run_id: str) -> list[str]:
        """The runs that continue ``run_id`` (answered its handed-over calls), oldest first.

        Raises:
            StoreError: The database failed.
        """
        query = (
            select(RunRow.id)
            .where(RunRow.continues_run_id == run_id)
            .order_by(RunRow.created_at, RunRow.id)
        )
        with wrap_errors("continuations", self._url):
            async with self._sessions() as session:
                return list((await session.scalars(query)).all())

    async def add_feedback(
        self, run_id: str, score: float, comment: str | None = None
    ) -> FeedbackRecord:
        """Record a judgement of a run; a run can collect any number of them.

        Args:
            run_id: The run judged.
            score: From -1.0 (wrong or harmful) to 1.0 (exactly right), inclusive.
            comment: Optional free text, at most :data:`MAX_COMMENT_CHARS` characters.

        Raises:
            ValueError: ``score`` is not a finite number in [-1, 1], or ``comment`` is too long.
            RunNotFound: No run has this id.
            StoreError: The database failed.
        """
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ValueError(f"score must be a number, got {score!r}")
        if not (math.isfinite(score) and -1.0 <= score <= 1.0):
            raise ValueError(f"score must be between -1.0 and 1.0, got {score!r}")
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise ValueError(
                f"comment is {len(comment)} characters; at most {MAX_COMMENT_CHARS} are kept"
            )
        record = FeedbackRecord(
            run_id=run_id,
            score=float(score),
            comment=None if comment is None else _clean_text(comment),
            created_at=datetime.now(UTC),
        )
        row = FeedbackRow(
            run_id=run_id, score=record.score, comment=record.comment, created_at=record.created_at
        )
        with wrap_errors("add_feedback", self._url):
            try:
                # Insert first and let the foreign key say whether the run exists: on SQLite a
                # read-then-write transaction can fail on the lock upgrade instead of waiting.
                async with self._writing(), self._sessions.begin() as session:
                    session.add(row)
            except IntegrityError:
                if not await self._run_exists(run_id):
                    raise RunNotFound(run_id) from None
                raise
        return record

    async def feedback_for(self, run_id: str) -> list[FeedbackRecord]:
        """Every judgement of a run, oldest first.

        Raises:
            RunNotFound: No run has this id (an existing run without feedback gives ``[]``).
            StoreError: The database failed.
        """
        query = (
            select(FeedbackRow)
            .where(FeedbackRow.run_id == run_id)
            .order_by(FeedbackRow.created_at, FeedbackRow.id)
        )
        with wrap_errors("feedback_for", self._url):
            async with self._sessions() as session:
                rows = (await session.scalars(query)).all()
                if not rows and not await _exists(session, run_id):
                    raise RunNotFound(run_id)
        return [
            FeedbackRecord(
                run_id=row.run_id, score=row.score, comment=row.comment, created_at=row.created_at
            )
            for row in rows
        ]

    async def _run_exists(self, run_id: str) -> bool:
        async with self._sessions() as session:
            return await _exists(session, run_id)


async def _exists(session: AsyncSession, run_id: str) -> bool:
    return bool(await session.scalar(select(exists().where(RunRow.id == run_id))))


Rows = list[dict[str, Any]]


def _run_rows(run: RunRecord) -> tuple[dict[str, Any], Rows, Rows]:
    """The rows for a run and its calls, after checking it can be stored the same way on every
    backend."""
    if not run.run_id or len(run.run_id) > RUN_ID_LENGTH:
        raise ValueError(f"run id must be 1 to {RUN_ID_LENGTH} characters, got {run.run_id!r}")
    if not run.mode or len(run.mode) > MODE_LENGTH:
        raise ValueError(f"mode must be 1 to {MODE_LENGTH} characters, got {run.mode!r}")
    if run.created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware (datetime.now(UTC))")
    if run.finish_reason not in FINISH_REASONS:
        raise ValueError(
            f"finish_reason must be one of {FINISH_REASONS}, got {run.finish_reason!r}"
        )
    run_values = {
        "id": run.run_id,
        "mode": run.mode,
        "input_messages": _clean_json(run.input_messages, "input_messages"),
        "answer": _clean_optional(run.answer),
        "route": _clean_text(run.route),
        "specialists": _clean_json(run.specialists, "specialists"),
        "escalated": run.escalated,
        "degraded": run.degraded,
        "confidence": run.confidence,
        "lead_input_tokens": run.lead_input_tokens,
        "lead_output_tokens": run.lead_output_tokens,
        "slm_prompt_tokens": run.slm_prompt_tokens,
        "slm_completion_tokens": run.slm_completion_tokens,
        "cost_usd": run.cost_usd,
        "lead_only_cost_usd": run.lead_only_cost_usd,
        "latency_ms": run.latency_ms,
        "error": _clean_optional(run.error),
        "failure_kind": run.failure.kind.value if run.failure else None,
        "route_scores": _clean_json(run.route_scores, "route_scores"),
        "difficulty": run.difficulty.as_dict() if run.difficulty else None,
        "finish_reason": run.finish_reason,
        "app_tool_calls": _clean_json(list(run.app_tool_calls), "app_tool_calls")
        if run.app_tool_calls
        else None,
        "lead_turn": _clean_json(run.lead_turn, "lead_turn") if run.lead_turn else None,
        "continues_run_id": run.continues_run_id,
        "owner_key_id": run.owner_key_id,
        "created_at": run.created_at,
    }
    lead_values = [
        {
            "run_id": run.run_id,
            "seq": seq,
            "model": _clean_text(call.model),
            "messages": _clean_json(call.messages, f"lead_calls[{seq}].messages"),
            "output": _clean_json(call.output, f"lead_calls[{seq}].output"),
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "cost_usd": call.cost_usd,
            "latency_ms": call.latency_ms,
            "error": _clean_optional(call.error),
        }
        for seq, call in enumerate(run.lead_calls)
    ]
    tool_values = [
        {
            "run_id": run.run_id,
            "seq": seq,
            "name": _clean_text(call.name),
            "input": _clean_json(call.input, f"tool_calls[{seq}].input"),
            "output": _clean_text(call.output),
            "latency_ms": call.latency_ms,
            "confidence": call.confidence,
            "error": _clean_optional(call.error),
            "specialist": _clean_optional(call.specialist),
            "slm_prompt_tokens": call.slm_prompt_tokens,
            "slm_completion_tokens": call.slm_completion_tokens,
        }
        for seq, call in enumerate(run.tool_calls)
    ]
    return run_values, lead_values, tool_values


def _figures(values: Mapping[str, Any]) -> RunFigures:
    return RunFigures(
        created_at=values["created_at"],
        route=values["route"],
        escalated=values["escalated"],
        degraded=values["degraded"],
        failed=values["failure_kind"] is not None,
        cost_usd=values["cost_usd"],
        lead_only_cost_usd=values["lead_only_cost_usd"],
        latency_ms=values["latency_ms"],
    )


def _run_record(row: RunRow, *, with_children: bool) -> RunRecord:
    return RunRecord(
        run_id=row.id,
        mode=row.mode,
        input_messages=row.input_messages,
        answer=row.answer,
        route=row.route,
        specialists=row.specialists,
        escalated=row.escalated,
        degraded=row.degraded,
        confidence=row.confidence,
        lead_input_tokens=row.lead_input_tokens,
        lead_output_tokens=row.lead_output_tokens,
        slm_prompt_tokens=row.slm_prompt_tokens,
        slm_completion_tokens=row.slm_completion_tokens,
        cost_usd=row.cost_usd,
        lead_only_cost_usd=row.lead_only_cost_usd,
        latency_ms=row.latency_ms,
        failure=_failure(row),
        route_scores=row.route_scores or {},
        difficulty=DifficultyDecision.from_dict(row.difficulty) if row.difficulty else None,
        finish_reason=_finish_reason(row.finish_reason),
        app_tool_calls=_app_tool_calls(row),
        continues_run_id=row.continues_run_id,
        created_at=row.created_at,
        lead_calls=[
            LeadCallRecord(
                model=call.model,
                messages=call.messages,
                output=call.output,
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                cost_usd=call.cost_usd,
                latency_ms=call.latency_ms,
                error=call.error,
            )
            for call in row.lead_calls
        ]
        if with_children
        else [],
        tool_calls=[
            ToolCall(
                name=call.name,
                input=call.input,
                output=call.output,
                latency_ms=call.latency_ms,
                confidence=call.confidence,
                error=call.error,
                specialist=call.specialist,
                slm_prompt_tokens=call.slm_prompt_tokens,
                slm_completion_tokens=call.slm_completion_tokens,
            )
            for call in row.tool_calls
        ]
        if with_children
        else [],
        lead_turn=list(row.lead_turn or ()),
        owner_key_id=row.owner_key_id,
    )


def _app_tool_calls(row: RunRow) -> tuple[FunctionCall, ...]:
    return tuple(
        FunctionCall(id=call["id"], name=call["name"], arguments=call["arguments"])
        for call in row.app_tool_calls or ()
    )


def _failure(row: RunRow) -> Failure | None:
    """The run's failure; a run recorded before failures had kinds (schema 0004) is
    ``unclassified``."""
    if row.error is None:
        return None
    kind = FailureKind(row.failure_kind) if row.failure_kind else FailureKind.unclassified
    return Failure(kind, row.error)


def _finish_reason(stored: str) -> FinishReason:
    if stored not in FINISH_REASONS:
        raise ValueError(f"the runs table holds an unknown finish reason {stored!r}")
    return stored


def _clean_text(text: str) -> str:
    """``text`` as both backends can store it.

    PostgreSQL rejects NUL characters in text and JSONB, and neither driver can encode lone
    surrogates; tool output (``run_python`` printing binary) can contain both. They become
    U+FFFD and ``?`` on every backend, so a run stores the same way wherever it is saved.
    """
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _clean_optional(text: str | None) -> str | None:
    return None if text is None else _clean_text(text)


def _clean_json(value: Any, path: str) -> Any:
    """A copy of ``value`` that round-trips through JSON identically on SQLite and PostgreSQL.

    NaN and infinities (``json.loads`` accepts them in a lead's tool arguments, PostgreSQL's JSONB
    does not) become ``None``, the way text is cleaned by :func:`_clean_text`: content never
    stops a run from being recorded.

    Raises:
        TypeError: Something in ``value`` is not JSON at all (path says where): a bug in the
            caller, not content to clean.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has a non-string key {key!r}")
            cleaned[_clean_text(key)] = _clean_json(item, f"{path}.{key}")
        return cleaned
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_clean_json(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise TypeError(f"{path} holds a {type(value).__name__}, which is not JSON: {value!r:.80}")
