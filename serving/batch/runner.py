"""Run one batch item through the orchestrator, exactly once as far as anyone can observe.

Every attempt of an item has a run id derived from the item and the attempt number, so the
transcript store — which never records an id twice — knows which attempts already happened.
When an item comes back after a crash (claimed again), each attempt is first looked up there: a
recorded attempt is *replayed* (its output line rebuilt from the transcript) instead of run
again, so a crash between recording a run and committing the item costs nothing and leaves no
second transcript. A lead call in flight at the moment of a ``kill -9`` cannot be known to have
happened; that attempt runs again, and is the only thing that does.

A run that ends without an answer because the lead failed (429, 5xx, timeouts — after the lead
client's own retries) is attempted again with exponential backoff and jitter, up to
``max_attempts``; then the item goes to the error file with the reason.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, fields

from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from database import StoreError
from orchestrator.modes import Mode
from orchestrator.run import InvalidRequest, Orchestrator, RunResult
from orchestrator.transcripts import RunAlreadyRecorded, RunNotFound, RunRecord, TranscriptStore
from serving.api.chat import served_models
from serving.batch.output import failure_line, success_line
from serving.batch.store import ClaimedItem, ItemResult
from serving.batch.validation import parse_body, resolve_model
from specialists.errors import ConfigurationError, UnderstudyError

PERMANENT_LEAD_ERRORS = (
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "UnprocessableEntityError",
    "MaxTurnsExceeded",
    "TokenBudgetExceeded",
)
"""Lead failures that another attempt would repeat (the run's error names the exception)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts of one item whose run got no answer from the lead."""

    max_attempts: int = 3
    initial_s: float = 2.0
    max_s: float = 60.0


@dataclass(frozen=True)
class _Attempt:
    result: RunResult
    created: int
    """When the run was made (Unix seconds), for the ``chat.completion``'s ``created``."""
    replayed: bool
    """Rebuilt from a transcript recorded before, not run now."""


class ItemRunner:
    """Turns a claimed item into its output line, running it (or replaying it) as needed."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        transcripts: TranscriptStore,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.orchestrator = orchestrator
        self.transcripts = transcripts
        self.retry = retry or RetryPolicy()

    async def run(self, item: ClaimedItem) -> ItemResult:
        """The item's result; a failed request is a result too (its error line).

        Raises:
            StoreError: A transcript could not be looked up; the item stays claimed and the
                caller tries again later.
        """
        try:
            request = parse_body(item.body)
            mode, specialist = resolve_model(
                request.model, item.mode, served_models(self.orchestrator.catalog)
            )
            call = _Call(
                messages=request.chat_messages(),
                mode=mode,
                specialist=specialist,
                max_tokens=request.max_completion_tokens or request.max_tokens,
            )
            attempt = await self._attempts(item, call)
        except (InvalidRequest, ValidationError) as exc:
            return refused(item, 400, "invalid_request", str(exc))
        except ConfigurationError as exc:
            return refused(item, 503, "model_not_configured", str(exc))
        except StoreError:
            raise
        except UnderstudyError as exc:
            return refused(item, 500, "internal_error", str(exc))
        result = attempt.result
        if result.answer is not None:
            output = success_line(item, result, model=request.model, created=attempt.created)
        else:
            output = failure_line(
                item,
                status_code=503,
                code="upstream_unavailable",
                message=result.error or "no answer was produced",
                result=result,
            )
        return ItemResult(
            succeeded=result.answer is not None,
            output=output,
            run_id=result.run_id,
            lead_tokens=result.lead_tokens,
            slm_tokens=result.slm_tokens,
            cost_usd=result.cost_usd,
            lead_only_cost_usd=result.lead_only_cost_usd,
        )

    async def _attempts(self, item: ClaimedItem, call: _Call) -> _Attempt:
        """Attempt until an answer, a failure not worth repeating, or ``max_attempts``."""
        backoff = wait_exponential_jitter(
            multiplier=self.retry.initial_s, max=self.retry.max_s, jitter=self.retry.initial_s
        )

        def wait(state: RetryCallState) -> float:
            previous: _Attempt = state.outcome.result()  # type: ignore[union-attr]
            return 0.0 if previous.replayed else backoff(state)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=wait,
            retry=retry_if_result(_worth_repeating),
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        )
        attempt: _Attempt | None = None
        async for trial in retrying:
            with trial:
                attempt = await self._attempt(item, call, trial.retry_state.attempt_number)
            if not trial.retry_state.outcome.failed:  # type: ignore[union-attr]
                trial.retry_state.set_result(attempt)
        assert attempt is not None
        return attempt

    async def _attempt(self, item: ClaimedItem, call: _Call, number: int) -> _Attempt:
        run_id = run_id_for(item, number)
        if item.claims > 1:  # an earlier claim may have recorded this attempt
            replayed = await self._replay(run_id)
            if replayed is not None:
                return replayed
        try:
            result = await self.orchestrator.run(
                call.messages,
                call.mode,
                specialist=call.specialist,
                run_id=run_id,
                max_tokens=call.max_tokens,
            )
        except RunAlreadyRecorded:  # a worker whose lease ran out recorded it meanwhile
            replayed = await self._replay(run_id)
            if replayed is None:
                raise
            return replayed
        return _Attempt(result, int(time.time()), replayed=False)

    async def _replay(self, run_id: str) -> _Attempt | None:
        try:
            record = await self.transcripts.get_run(run_id)
        except RunNotFound:
            return None
        created = int(record.created_at.timestamp())
        return _Attempt(result_from_record(record), created, replayed=True)


@dataclass(frozen=True)
class _Call:
    """What the orchestrator is asked, the same for every attempt."""

    messages: list[dict[str, str]]
    mode: Mode
    specialist: str | None
    max_tokens: int | None


def run_id_for(item: ClaimedItem, attempt: int) -> str:
    """The transcript id of an item's attempt: the same in every process, every time."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{item.job_id}/{item.line}/{attempt}").hex


def result_from_record(record: RunRecord) -> RunResult:
    """A recorded run as the result it was."""
    shared = {f.name for f in fields(RunResult)} & {f.name for f in fields(RunRecord)}
    return RunResult(run_id=record.id, **{name: getattr(record, name) for name in shared})


def _worth_repeating(attempt: _Attempt) -> bool:
    error = attempt.result.error or ""
    return attempt.result.answer is None and not any(
        name in error for name in PERMANENT_LEAD_ERRORS
    )


def refused(item: ClaimedItem, status_code: int, code: str, message: str) -> ItemResult:
    """The result of an item that could not run: its error line, nothing spent."""
    output = failure_line(item, status_code=status_code, code=code, message=message, result=None)
    return ItemResult(succeeded=False, output=output)
