"""Run one batch item through the orchestrator, exactly once as far as anyone can observe.

Every attempt of an item has a run id derived from the item and the attempt number, so the
transcript store — which never records an id twice — knows which attempts already happened.
When an item comes back after a crash (claimed again), each attempt is first looked up there: a
recorded attempt is *replayed* (the recorded run is the attempt's result) instead of run again,
so a crash between recording a run and committing the item costs nothing and leaves no second
transcript. A worker whose lease ran out may record an attempt while another runs it too: the
orchestrator then raises :class:`~orchestrator.transcripts.RunAlreadyRecorded` and the recorded
run is replayed. A lead call in flight at the moment of a ``kill -9`` cannot be known to have
happened; that attempt runs again, and is the only thing that does.

A run that ends without an answer is attempted again, with exponential backoff and jitter, when
its failure's kind is :attr:`~orchestrator.outcome.FailureKind.retryable` (the lead was down,
rate-limited or slow — after the lead client's own retries), up to ``max_attempts``; otherwise,
or then, the item goes to the error file with the reason.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from database import StoreError
from orchestrator.modes import Mode
from orchestrator.outcome import RunResult
from orchestrator.run import Orchestrator
from orchestrator.transcripts import RunAlreadyRecorded, RunNotFound, TranscriptStore
from serving.batch.output import answer_body, failure_line, success_line
from serving.batch.policy import DegradationPolicies
from serving.batch.store import ClaimedItem, ItemResult
from serving.batch.validation import BatchCall, check_body
from serving.protocol import (
    OnDegraded,
    ProtocolError,
    degraded,
    refusal,
    served_models,
    unanswered,
)
from serving.protocol.responses_api import ResponsesCall
from specialists.errors import UnderstudyError


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts of one item whose run failed in a way worth repeating."""

    max_attempts: int = 3
    initial_s: float = 2.0
    max_s: float = 60.0


@dataclass(frozen=True)
class _Attempt:
    result: RunResult
    created: int
    """When the run was made (Unix seconds), for the ``chat.completion``'s ``created``."""
    replayed: bool
    """The run recorded before (by an earlier claim, or another worker), not run now."""

    @property
    def worth_repeating(self) -> bool:
        """No answer, and a failure another attempt can get past."""
        failure = self.result.failure
        return self.result.answer is None and failure is not None and failure.kind.retryable


class ItemRunner:
    """Turns a claimed item into its output line, running it (or replaying it) as needed."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        transcripts: TranscriptStore,
        retry: RetryPolicy | None = None,
        policies: DegradationPolicies | None = None,
    ) -> None:
        self.orchestrator = orchestrator
        self.transcripts = transcripts
        self.retry = retry or RetryPolicy()
        self.policies = policies
        """Where a line that sets no degradation policy gets one; ``None``: ``degrade``."""

    async def run(self, item: ClaimedItem) -> ItemResult:
        """The item's result; a failed request is a result too (its error line).

        Raises:
            StoreError: A transcript (or the batch owner's key) could not be looked up; the
                item stays claimed and the caller tries again later.
        """
        try:
            call = check_body(  # checked when stored; the catalog may have changed since
                item.body,
                served=served_models(self.orchestrator.catalog, self.orchestrator.lineups.paused),
                limits=self.orchestrator.limits,
                job_mode=Mode(item.mode),
                endpoint=item.endpoint,
            )
            attempt = await self._attempts(item, call)
        except ProtocolError as exc:
            return refused(item, exc)
        except StoreError:
            raise
        except UnderstudyError as exc:
            return refused(item, refusal(exc))
        result = attempt.result
        if result.answer is None:
            return ItemResult(failure_line(item, unanswered(result), result), result)
        if result.degraded and await self._policy(item, call) is OnDegraded.error:
            line = failure_line(item, degraded(result), result)
            return ItemResult(line, result, answer_refused=True)
        body = answer_body(call, result, created=attempt.created)
        return ItemResult(success_line(item, result, body), result)

    async def _policy(self, item: ClaimedItem, call: BatchCall) -> OnDegraded:
        """The line's own policy, else its batch owner's key's, else the server's."""
        if call.on_degraded is not None:
            return call.on_degraded
        if self.policies is None:
            return OnDegraded.degrade
        return await self.policies.of_owner(item.owner_key_id)

    async def _attempts(self, item: ClaimedItem, call: BatchCall) -> _Attempt:
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
            retry=retry_if_result(lambda attempt: attempt.worth_repeating),
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

    async def _attempt(self, item: ClaimedItem, batch_call: BatchCall, number: int) -> _Attempt:
        call = batch_call.call if isinstance(batch_call, ResponsesCall) else batch_call
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
                options=call.options,
                owner=item.owner_key_id,
            )
        except RunAlreadyRecorded:  # a worker whose lease ran out recorded it meanwhile
            replayed = await self._replay(run_id)
            if replayed is None:
                raise
            return replayed
        return _Attempt(result, int(time.time()), replayed=False)

    async def _replay(self, run_id: str) -> _Attempt | None:
        """The attempt as it was recorded (a record is the run's result), if it was."""
        try:
            record = await self.transcripts.get_run(run_id)
        except RunNotFound:
            return None
        return _Attempt(record, int(record.created_at.timestamp()), replayed=True)


def run_id_for(item: ClaimedItem, attempt: int) -> str:
    """The transcript id of an item's attempt: the same in every process, every time."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{item.job_id}/{item.line}/{attempt}").hex


def refused(item: ClaimedItem, error: ProtocolError) -> ItemResult:
    """The result of an item that could not run: its error line, nothing spent."""
    return ItemResult(failure_line(item, error, None))
