"""A durable spool for transcripts the database would not take, replayed once it takes them.

A run whose record the database refuses (read-only, gone, locked past its timeout) still
answered its caller; its transcript is written here instead — one JSON file per run, written
under a temporary name, fsynced, renamed, the directory fsynced — and
:meth:`TranscriptSpool.drain` writes it into the store once the database takes writes again,
exactly as it was (run id included). :func:`keep_draining` does that periodically in every
serving process.

The spool is bounded in runs and bytes: past its bounds a record is refused
(:class:`SpoolRefused`) and the run fails (:class:`~orchestrator.transcripts.TranscriptLost`)
rather than filling the disk. A run id spooled again (a batch attempt re-run while the database
is still down) replaces its earlier record: neither reached the store, and the caller saw only
the latest. A spool file that cannot be read back stays where it is, counted as pending and
logged at every pass, for the operator to inspect; so does one the store refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from database import StoreError
from orchestrator.outcome import Failure, FailureKind
from orchestrator.transcripts.errors import RunAlreadyRecorded
from orchestrator.transcripts.records import LeadCallRecord, RunRecord
from orchestrator.transcripts.store import TranscriptStore
from specialists.backend import FunctionCall
from specialists.errors import UnderstudyError
from tools.context import ToolCall

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of a spool file's layout; a file of another version is left for a newer reader."""
SUFFIX = ".json"
_DIRECTORY_MODE = 0o700
_FILE_MODE = 0o600
"""Spooled records hold whole conversations: owner-only, like the database itself."""


@dataclass(frozen=True, slots=True)
class SpoolLimits:
    """How much the spool holds before it refuses more."""

    max_runs: int = 10_000
    max_bytes: int = 1024 * 1024 * 1024


class SpoolRefused(UnderstudyError):
    """The spool could not keep a record: it is full, or its directory cannot be written."""


class TranscriptSpool:
    """Run records waiting for the database, as files in ``directory``.

    Args:
        directory: Created owner-only (0700) on first use; records are files of mode 0600.
        limits: Its bounds.
    """

    def __init__(self, directory: Path, limits: SpoolLimits | None = None) -> None:
        self.directory = directory
        self.limits = limits or SpoolLimits()

    async def put(self, record: RunRecord) -> None:
        """Keep ``record`` durably until :meth:`drain` writes it to the store.

        Raises:
            SpoolRefused: The spool is full or cannot be written; nothing was kept.
        """
        data = json.dumps({"version": FORMAT_VERSION, "run": record}, default=_encode).encode()
        await asyncio.to_thread(self._write, record.run_id, data)

    def pending(self) -> int:
        """Records waiting for the database (unreadable ones included).

        Raises:
            OSError: The spool directory cannot be read.
        """
        return len(self._files())

    def check(self) -> None:
        """Make sure the spool can take records: its directory exists (or is made now) and can
        be read. What readiness checks ask.

        Raises:
            SpoolRefused: It cannot.
        """
        try:
            self.directory.mkdir(mode=_DIRECTORY_MODE, parents=True, exist_ok=True)
            self._files()
        except OSError as exc:
            raise SpoolRefused(f"the spool {self.directory} cannot be used: {exc}") from exc

    async def drain(self, store: TranscriptStore) -> int:
        """Write every waiting record into ``store``, removing each once it is there; a record
        the store already has (another process drained it) is removed too.

        Returns:
            How many records this call wrote.

        Raises:
            StoreError: The database failed; records not yet written stay spooled.
        """
        written = 0
        for path in await asyncio.to_thread(self._files):
            try:
                record = await asyncio.to_thread(_read, path)
            except FileNotFoundError:  # another process drained it meanwhile
                continue
            except (OSError, ValueError, TypeError, KeyError) as exc:
                logger.error(
                    "spooled transcript %s cannot be read back (%s); left in place", path, exc
                )
                continue
            try:
                await store.save_run(record)
            except RunAlreadyRecorded:
                pass
            except (ValueError, TypeError) as exc:  # edited since: the store will never take it
                logger.error(
                    "the store refuses spooled transcript %s (%s); left in place", path, exc
                )
                continue
            else:
                written += 1
            path.unlink(missing_ok=True)
        return written

    def _files(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []

    def _write(self, run_id: str, data: bytes) -> None:
        final = self.directory / f"{run_id}{SUFFIX}"
        try:
            self.directory.mkdir(mode=_DIRECTORY_MODE, parents=True, exist_ok=True)
            self._check_room(len(data), replacing=final)
            temporary = self.directory / f".{run_id}.{uuid.uuid4().hex}.tmp"
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            try:
                with os.fdopen(descriptor, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, final)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            _fsync_directory(self.directory)
        except OSError as exc:
            raise SpoolRefused(f"cannot write to the spool {self.directory}: {exc}") from exc

    def _check_room(self, size: int, *, replacing: Path) -> None:
        files = [p for p in self._files() if p != replacing]
        used = sum(_size(p) for p in files)
        if len(files) + 1 > self.limits.max_runs or used + size > self.limits.max_bytes:
            raise SpoolRefused(
                f"the spool {self.directory} is full ({len(files)} runs, {used} bytes; limits "
                f"{self.limits.max_runs} runs, {self.limits.max_bytes} bytes)"
            )


async def keep_draining(
    spool: TranscriptSpool, store: TranscriptStore, *, interval_s: float, stop: asyncio.Event
) -> None:
    """Drain ``spool`` into ``store`` every ``interval_s`` seconds until ``stop`` is set; a
    database still down (or a spool that cannot be read) is logged and tried again at the next
    pass."""
    while not stop.is_set():
        try:
            written = await spool.drain(store) if spool.pending() else 0
        except StoreError as exc:
            logger.warning("spooled transcripts wait for the database: %s", exc)
        except OSError as exc:
            logger.error("the spool %s cannot be read: %s", spool.directory, exc)
        else:
            if written:
                logger.info("wrote %d spooled transcript(s) to the database", written)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


def _encode(value: object) -> object:
    """What :func:`json.dumps` cannot encode itself: the record and the dataclasses in it (as
    their fields), and datetimes."""
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    raise TypeError(f"a {type(value).__name__} is not JSON: {value!r:.80}")


def _read(path: Path) -> RunRecord:
    """The record in a spool file.

    Raises:
        ValueError: Not a spool file this version can read.
    """
    document = json.loads(path.read_bytes())
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"spool format version {document.get('version')!r} is not {FORMAT_VERSION}"
        )
    run = dict(document["run"])
    failure = run.pop("failure")
    return RunRecord(
        **{
            **run,
            "failure": Failure(FailureKind(failure["kind"]), failure["message"])
            if failure
            else None,
            "created_at": datetime.fromisoformat(run["created_at"]),
            "lead_calls": [LeadCallRecord(**call) for call in run["lead_calls"]],
            "tool_calls": [ToolCall(**call) for call in run["tool_calls"]],
            "app_tool_calls": tuple(
                FunctionCall(id=call["id"], name=call["name"], arguments=call["arguments"])
                for call in run.get("app_tool_calls", ())
            ),
        }
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable: a crash after it must not lose the file's name."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
