"""Validating batch jobs off the request path: ``POST /v1/batches`` only creates the job.

Every batch worker not bound to one job — the API's background worker (``batch.api_worker``) and
``understudy worker`` alike — runs a :class:`Validator` beside its item slots. It claims the
oldest ``validating`` job under a lease (:mod:`serving.batch.store.validations`), loads its input
file with :func:`~serving.batch.validation.load_requests` (the loader ``understudy batch submit``
uses too), and so starts the job or fails it with the report naming every bad line. One job at a
time: a load is bounded by the disk and the database, not by waiting on anything.

A validator that stops hands its claim back at once; one that dies leaves it to the next worker
once the lease expires; either way the next one starts the file over. A job whose input is
gone — its file deleted, or a ``batch submit`` that stopped mid-load (its input was never
uploaded) — fails saying so. A job whose input is on another machine's disk is left to a
worker that has it: share the data directory's ``files/`` with every worker that validates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from database import StoreError
from orchestrator.request import RequestLimits
from serving.batch.files import upload_path
from serving.batch.store import (
    BatchJob,
    FileNotFound,
    FileStore,
    ValidationClaim,
    ValidationLost,
    ValidationStore,
)
from serving.batch.validation import ValidationStopped, load_requests
from serving.protocol import ServedModels
from serving.settings import BatchSettings

logger = logging.getLogger(__name__)


class Validator:
    """Validates ``validating`` jobs one after another until stopped.

    Args:
        store: Where jobs are claimed and loaded.
        files: The uploaded files, to find a job's input.
        files_dir: Where uploads' bytes are on this machine.
        validator_id: This worker's id (its claims carry it).
        settings: Line and job limits, the lease, and how often to look for work.
        served: The model names requests may use, as this worker serves them now (read at
            each job: a promotion may change them).
        request_limits: The chat API's limits on one request.
    """

    def __init__(
        self,
        store: ValidationStore,
        files: FileStore,
        *,
        files_dir: Path,
        validator_id: str,
        settings: BatchSettings,
        served: Callable[[], ServedModels],
        request_limits: RequestLimits,
    ) -> None:
        self.store = store
        self.files = files
        self.files_dir = files_dir
        self.validator_id = validator_id
        self.settings = settings
        self.served = served
        self.request_limits = request_limits
        self._elsewhere: set[str] = set()
        """Jobs whose input is not on this machine's disk: left to other workers."""

    async def run(self, stop: asyncio.Event) -> None:
        """Validate jobs until ``stop`` is set; while the database fails, wait and try again."""
        while not stop.is_set():
            try:
                worked = await self.validate_next(stop)
            except StoreError as exc:
                logger.warning("batch validation waits for the database: %s", exc)
                worked = False
            if not worked:
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.poll_s)

    async def validate_next(self, stop: asyncio.Event | None = None) -> bool:
        """Claim the oldest job waiting for validation and validate it; False if none waits.

        Raises:
            StoreError: The database failed (the claim, if any, is handed back or expires).
        """
        claim = await self.store.claim_validation(
            self.validator_id, lease_s=self.settings.lease_s, skip=self._elsewhere
        )
        if claim is None:
            return False
        hand_back = True
        try:
            hand_back = not await self._validate(claim, stop)
        except ValidationLost as exc:
            hand_back = False
            logger.info("%s", exc)
        except ValidationStopped as exc:
            logger.info("%s", exc)
        except StoreError:
            raise
        except Exception:  # a bug, or an unreadable file, must fail this job, not the worker
            logger.exception("validating %s failed unexpectedly", claim.job.id)
            await self.store.fail_job(claim, [_INTERNAL_ERROR])
            hand_back = False
        finally:
            if hand_back:
                with suppress(StoreError):
                    await asyncio.shield(self.store.release_validation(claim))
        return True

    async def _validate(self, claim: ValidationClaim, stop: asyncio.Event | None) -> bool:
        """Load the job's input; False when its input is not on this machine.

        Raises:
            ValidationStopped, ValidationLost, StoreError: as :func:`load_requests`.
        """
        job = claim.job
        try:
            # a file that expired after the batch was created is still the batch's input
            stored = await self.files.get_file(job.input_file_id or "", expired_ok=True)
        except FileNotFound:
            stored = None
        if stored is None or stored.purged_at is not None:
            await self.store.fail_job(claim, [_input_gone(job)])
            return True
        path = upload_path(self.files_dir, stored)
        if not path.is_file():
            self._elsewhere.add(job.id)
            logger.warning(
                "the input of %s (%s) is not on this machine under %s: left to a worker that has "
                "it (share the files directory with every worker)",
                job.id,
                stored.id,
                self.files_dir,
            )
            return False
        with path.open("rb") as stream:
            report = await load_requests(
                self.store,
                claim,
                stream,
                served=self.served(),
                limits=self.settings,
                request_limits=self.request_limits,
                stop=stop,
            )
        logger.info(
            "validated %s: %s, %d requests, %d invalid lines",
            job.id,
            report.job.status,
            report.requests,
            report.problem_count,
        )
        return True


_INTERNAL_ERROR = {
    "line": None,
    "code": "internal_error",
    "message": "the worker failed while validating this file; the error is in its log",
    "param": None,
}


def _input_gone(job: BatchJob) -> dict[str, Any]:
    """The one error of a job whose input no worker can read any more."""
    if job.input_file_id is not None:
        message = f"the input file {job.input_file_id} was deleted before the batch was validated"
    else:  # deleting the file cleared the reference, or the job never had one
        message = (
            "the input file is gone: it was deleted before the batch was validated, or "
            "`understudy batch submit` stopped before it was loaded; submit it again"
        )
    return {"line": None, "code": "file_not_found", "message": message, "param": "input_file_id"}
