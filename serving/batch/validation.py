"""Check a batch input file and store its requests, before anything runs.

The file is read one line at a time (a line longer than the limit is skipped over, never held in
memory) and every line is checked — JSON, ``custom_id``, ``method``, ``url`` (the job's
endpoint, as OpenAI's batches have one), and the body by that endpoint's own check
(:func:`serving.protocol.admit_chat_request`, or the Responses API's: schema, model name,
limits), so a body is refused here with the code and message the API would answer it with.
The checks run in a thread, a chunk of lines at a time, so a worker sharing the API's event loop
keeps answering while it validates a 200 MB file.

Loading runs under a :class:`~serving.batch.store.ValidationClaim`: each chunk is a checkpoint
that stores the chunk's valid requests (the job stays ``validating``, where no worker runs
anything), renews the claim's lease, and finds a cancel or a takeover
(:class:`~serving.batch.store.ValidationLost`). Duplicate ``custom_id``\\ s are found by the
database's unique index as chunks go in, so memory stays flat however long the file is.

If any line is bad, the job fails with a report naming every bad line and its items are deleted:
nothing ran. With ``skip_invalid``, bad lines go to the error file instead and the rest runs.
Workers (:mod:`serving.batch.validator`) and ``understudy batch submit`` both load through
:func:`load_requests`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from database.tables import CUSTOM_ID_LENGTH
from orchestrator.modes import Mode
from orchestrator.request import RequestLimits
from serving.batch.output import invalid_line
from serving.batch.store import (
    CHAT_ENDPOINT,
    RESPONSES_ENDPOINT,
    BatchJob,
    NewItem,
    ValidationClaim,
    ValidationStore,
)
from serving.protocol import (
    ChatCall,
    ProtocolError,
    ServedModels,
    admit_chat_request,
    parse_chat_request,
)
from serving.protocol.responses_api import (
    ResponsesCall,
    admit_responses_request,
    parse_responses_request,
)
from serving.settings import BatchSettings
from specialists.errors import UnderstudyError

CHUNK_ITEMS = 500
"""Lines checked per checkpoint: their requests are stored in one transaction that also renews
the validator's lease."""
MAX_REPORTED_PROBLEMS = 10_000
"""Bad lines named one by one in a report; more are counted (a report stays readable, and
bounded in memory, even for a file that is all garbage)."""
_READ_BLOCK = 1 << 16


@dataclass(frozen=True)
class Problem:
    """Why one input line cannot run."""

    line: int
    code: str
    message: str
    custom_id: str | None = None
    param: str | None = None
    """The body's field at fault, if one is (OpenAI's batch errors name it)."""

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message, "param": self.param}


@dataclass
class LoadReport:
    """What loading a file found: the job, how many requests it holds, and the bad lines."""

    job: BatchJob
    requests: int = 0
    """Valid requests stored (they will run)."""
    problems: list[Problem] = field(default_factory=list)
    """The first :data:`MAX_REPORTED_PROBLEMS` bad lines, in file order."""
    problem_count: int = 0
    """Every bad line, named or not."""

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.job.id,
            "status": self.job.status,
            "requests": self.requests,
            "invalid_lines": self.problem_count,
            "problems": [asdict(problem) for problem in self.problems],
        }


class InvalidBatchInput(UnderstudyError):
    """The input file has bad lines, so the job did not run (its report names them all)."""

    def __init__(self, report: LoadReport) -> None:
        self.report = report
        first = report.problems[0]
        super().__init__(
            f"{report.problem_count} invalid line(s) in the input, nothing ran "
            f"(first: line {first.line}: {first.message}); fix them, or pass --skip-invalid "
            "to send them to the error file and run the rest"
        )


class ValidationStopped(UnderstudyError):
    """The validator was told to stop before the load was done; the job is still
    ``validating``, and its claim is to be handed back so another worker starts it over."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"stopped while validating {job_id}; another worker will take it over")


async def load_requests(
    store: ValidationStore,
    claim: ValidationClaim,
    stream: BinaryIO,
    *,
    served: ServedModels,
    limits: BatchSettings,
    request_limits: RequestLimits,
    skip_invalid: bool = False,
    stop: asyncio.Event | None = None,
) -> LoadReport:
    """Check every line of ``stream`` and store the requests of the job ``claim`` holds.

    Returns the report with the job as it ends up: ``in_progress`` (workers take it from
    here), or ``failed`` when a line was bad and ``skip_invalid`` is off (then nothing ran and
    no request is kept).

    Raises:
        ValidationStopped: ``stop`` was set before the load was done (checked every chunk).
        ValidationLost: The job was cancelled, or another worker took the validation over.
        StoreError: The database failed.
    """
    report = LoadReport(claim.job)
    checked_lines = _checked_lines(
        stream,
        limits=limits,
        served=served,
        request_limits=request_limits,
        job_mode=claim.job.mode,
        endpoint=claim.job.endpoint,
    )
    accepted = 0
    full = False
    while not full:
        if stop is not None and stop.is_set():
            raise ValidationStopped(claim.job.id)
        checked = await asyncio.to_thread(_take, checked_lines, CHUNK_ITEMS)
        chunk: list[NewItem] = []
        for entry in checked:
            if isinstance(entry, Problem):
                report.add(entry)
                if skip_invalid:
                    chunk.append(_invalid_item(claim.job.id, entry))
            elif accepted >= limits.max_items:
                message = f"a job holds at most {limits.max_items} requests (batch.max_items)"
                report.add(Problem(entry.line, "too_many_requests", message))
                full = True
                break
            else:
                accepted += 1
                chunk.append(entry)
        await _checkpoint(store, claim, chunk, report, skip_invalid=skip_invalid)
        full = full or len(checked) < CHUNK_ITEMS

    if report.problem_count and not skip_invalid:
        report.job = await store.fail_job(claim, [p.as_dict() for p in report.problems])
    else:
        report.job = await store.start_job(claim)
    return report


async def _checkpoint(
    store: ValidationStore,
    claim: ValidationClaim,
    chunk: list[NewItem],
    report: LoadReport,
    *,
    skip_invalid: bool,
) -> None:
    """Store a chunk (renewing the claim), and report the lines whose ``custom_id`` an earlier
    line has — as error lines too, with ``skip_invalid``."""
    duplicates = await store.add_items(claim, chunk)
    report.requests += sum(1 for item in chunk if item.output is None) - len(duplicates)
    rejected: list[NewItem] = []
    by_line = {item.line: item for item in chunk}
    for line in duplicates:
        custom_id = by_line[line].custom_id
        assert custom_id is not None
        first = await store.line_of(claim.job.id, custom_id)
        problem = Problem(
            line,
            "duplicate_custom_id",
            f"custom_id {custom_id!r} is already used on line {first}",
            custom_id,
        )
        report.add(problem)
        if skip_invalid:
            rejected.append(_invalid_item(claim.job.id, problem))
    if rejected:
        await store.add_items(claim, rejected)


def _checked_lines(
    stream: BinaryIO,
    *,
    limits: BatchSettings,
    served: ServedModels,
    request_limits: RequestLimits,
    job_mode: str,
    endpoint: str,
) -> Iterator[NewItem | Problem]:
    """Every non-blank line of ``stream``, checked."""
    mode = Mode(job_mode)
    for line, raw in read_lines(stream, max_bytes=limits.max_line_bytes):
        if raw is None:
            message = f"the line is longer than {limits.max_line_bytes} bytes"
            yield Problem(line, "line_too_long", message)
        else:
            yield check_line(
                raw, line, served=served, limits=request_limits, job_mode=mode, endpoint=endpoint
            )


def _take(lines: Iterator[NewItem | Problem], count: int) -> list[NewItem | Problem]:
    """Up to ``count`` entries of ``lines`` (run in a thread: reading and checking is the
    CPU-bound part of a load)."""
    return list(itertools.islice(lines, count))


def read_lines(stream: BinaryIO, *, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes)`` for every non-blank line, from 1; ``None`` for a line longer
    than ``max_bytes``, whose rest is skipped without being kept."""
    number = 0
    while True:
        raw = stream.readline(max_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # drop the rest of the line
                raw = stream.readline(_READ_BLOCK)
            yield number, None
        elif raw.strip():
            yield number, raw


def check_line(
    raw: bytes,
    line: int,
    *,
    served: ServedModels,
    limits: RequestLimits,
    job_mode: Mode,
    endpoint: str = CHAT_ENDPOINT,
) -> NewItem | Problem:
    """One input line of a job addressing ``endpoint`` as a request to store, or the reason it
    cannot run."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return Problem(line, "invalid_json", f"not valid JSON: {exc.msg} (column {exc.colno})")
    except UnicodeDecodeError:
        return Problem(line, "invalid_json", "not valid UTF-8")
    if not isinstance(data, dict):
        return Problem(line, "invalid_request", "a line must be a JSON object")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id.strip():
        return Problem(line, "missing_custom_id", "'custom_id' must be a non-empty string")
    if len(custom_id) > CUSTOM_ID_LENGTH:
        return Problem(
            line, "invalid_custom_id", f"'custom_id' is longer than {CUSTOM_ID_LENGTH} characters"
        )
    if data.get("method") != "POST":
        message = f"'method' must be \"POST\", got {data.get('method')!r}"
        return Problem(line, "unsupported_method", message, custom_id)
    if data.get("url") != endpoint:
        message = f"'url' must be the batch's endpoint {endpoint!r}, got {data.get('url')!r}"
        return Problem(line, "unsupported_url", message, custom_id)
    body = data.get("body")
    if not isinstance(body, dict):
        message = f"'body' must be a request object for {endpoint}"
        return Problem(line, "invalid_body", message, custom_id, "body")
    try:
        check_body(body, served=served, limits=limits, job_mode=job_mode, endpoint=endpoint)
    except ProtocolError as exc:
        return Problem(line, exc.code or "invalid_body", exc.message, custom_id, exc.param)
    return NewItem(line=line, custom_id=custom_id, body=body)


BatchCall = ChatCall | ResponsesCall
"""A line's admitted call, by its endpoint: a chat request's, or a Responses request's."""


def check_body(
    body: dict[str, Any],
    *,
    served: ServedModels,
    limits: RequestLimits,
    job_mode: Mode,
    endpoint: str = CHAT_ENDPOINT,
) -> BatchCall:
    """A line's body as the call it will make: what ``endpoint`` would accept, and not a
    stream. Model names that are not Understudy's run in ``job_mode``.

    A Responses line runs on its own: it is not stored, so it cannot continue one
    (``previous_response_id``) nor ask to be kept (``store: true``).

    Raises:
        ProtocolError: What the API would answer the same body with; or 400 ``invalid_body``
            for a stream, a ``previous_response_id`` or ``store: true``.
    """
    if endpoint == RESPONSES_ENDPOINT:
        request = parse_responses_request(body)
        _refuse_in_batch("stream", request.stream)
        _refuse_in_batch("previous_response_id", request.previous_response_id)
        _refuse_in_batch("store", request.store)
        responses = request.model_copy(update={"store": False})
        return admit_responses_request(responses, served, limits, fallback=job_mode)
    chat = parse_chat_request(body)
    _refuse_in_batch("stream", chat.stream)
    return admit_chat_request(chat, served, limits, fallback=job_mode)


def _refuse_in_batch(param: str, value: object) -> None:
    """Refuse ``param`` set to anything but its default (``None``, or ``false``)."""
    if value is not None and value is not False:
        raise ProtocolError(
            400, "invalid_body", f"'{param}' is not supported in batch requests", param=param
        )


def _invalid_item(job_id: str, problem: Problem) -> NewItem:
    output = invalid_line(job_id, problem.line, problem.custom_id, problem.code, problem.message)
    return NewItem(line=problem.line, custom_id=problem.custom_id, body=None, output=output)
