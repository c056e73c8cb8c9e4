"""Versions of the learned pre-router: candidate → active → retired, rolled back like adapters.

Each trained model is a directory under ``$UNDERSTUDY_HOME/prerouter/v<N>-<hash>/`` and one entry
of ``versions.json`` beside them, with its content hash (checked again on every load), its gate
figures and how many transcript labels it learned from (what the worker's retraining counts new
labels against). Writes take an exclusive file lock and replace the index atomically, so a
worker's retraining and an operator's ``understudy router promote`` never lose each other's
entry; readers (serving processes at start) see one index or the next, never half of one.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from orchestrator.difficulty import DifficultyModel
from orchestrator.prerouter import Embedder, PreRouter
from orchestrator.prerouter_learned import LearnedPreRouter
from orchestrator.prerouter_model import RouterModel
from orchestrator.prerouter_two_stage import TwoStagePreRouter
from specialists.catalog import Catalog
from specialists.errors import ConfigurationError

INDEX_FILE = "versions.json"
FAST_DIR = "fast"
"""A two-stage version's static classifier, under its directory."""
LOCK_FILE = ".lock"
Status = Literal["candidate", "active", "retired"]


class RouterVersionError(ConfigurationError):
    """A version that does not exist, or a change the versions' states do not allow."""


@dataclass(frozen=True, slots=True)
class RouterVersion:
    """One trained pre-router as registered."""

    version: int
    hash: str
    status: Status
    embedder: str
    created_at: str
    transcript_labels: int
    """Transcript labels it was trained on (the seed data aside)."""
    gate: dict[str, Any] = field(default_factory=dict)
    """The gate's figures: the candidate's and the active one's on the held-out set."""
    promoted_at: str | None = None
    difficulty_hash: str | None = None
    """The content hash of its difficulty model (cascade's skip); ``None`` when it has none
    (too few cascade transcripts, or the model failed its gate)."""
    difficulty_labels: int = 0
    """Cascade outcomes (accepted or escalated) it was trained on."""
    fast_hash: str | None = None
    """The content hash of its static-embedding classifier, when it is a two-stage version
    (:mod:`orchestrator.prerouter_two_stage`)."""
    fast_embedder: str | None = None
    cut: float | None = None
    """The top probability at which the static classifier decides (two-stage versions)."""

    @property
    def directory_name(self) -> str:
        return f"v{self.version}-{self.hash}"


class RouterVersions:
    """The registered pre-router versions under ``root`` (``$UNDERSTUDY_HOME/prerouter``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextmanager
    def _locked(self) -> Iterator[list[RouterVersion]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            versions = self.list()
            yield versions
            temporary = self.root / f"{INDEX_FILE}.tmp"
            temporary.write_text(
                json.dumps([asdict(v) for v in versions], indent=2) + "\n", encoding="utf-8"
            )
            os.replace(temporary, self.root / INDEX_FILE)

    def list(self) -> list[RouterVersion]:
        """Every version, oldest first."""
        path = self.root / INDEX_FILE
        if not path.is_file():
            return []
        return [RouterVersion(**entry) for entry in json.loads(path.read_text(encoding="utf-8"))]

    def active(self) -> RouterVersion | None:
        return next((v for v in self.list() if v.status == "active"), None)

    def get(self, version: int) -> RouterVersion:
        found = next((v for v in self.list() if v.version == version), None)
        if found is None:
            known = [v.version for v in self.list()]
            raise RouterVersionError(f"no pre-router version {version} (known: {known})")
        return found

    def load(self, version: RouterVersion) -> RouterModel:
        """The model of ``version``, its content checked against the registered hash."""
        return RouterModel.load(self.root / version.directory_name, expected_hash=version.hash)

    def router(
        self,
        version: RouterVersion,
        catalog: Catalog,
        embedder: Embedder,
        *,
        fast_embedder: Embedder | None = None,
    ) -> PreRouter:
        """``version`` as the router that serves it: its classifier on ``embedder`` with its
        difficulty model, behind its static classifier on ``fast_embedder`` when it is a
        two-stage version (without ``fast_embedder``, MiniLM alone decides)."""
        precise = LearnedPreRouter(
            catalog,
            embedder,
            self.load(version),
            version=version.version,
            difficulty=self.load_difficulty(version),
        )
        if version.cut is None or version.fast_hash is None or fast_embedder is None:
            return precise
        fast_model = RouterModel.load(
            self.root / version.directory_name / FAST_DIR, expected_hash=version.fast_hash
        )
        fast = LearnedPreRouter(catalog, fast_embedder, fast_model, version=version.version)
        return TwoStagePreRouter(fast, precise, cut=version.cut)

    def load_difficulty(self, version: RouterVersion) -> DifficultyModel | None:
        """The difficulty model of ``version``, checked against its registered hash."""
        if version.difficulty_hash is None:
            return None
        directory = self.root / version.directory_name
        return DifficultyModel.load(directory, expected_hash=version.difficulty_hash)

    def add(
        self,
        model: RouterModel,
        *,
        transcript_labels: int,
        gate: dict[str, Any],
        difficulty: DifficultyModel | None = None,
        difficulty_labels: int = 0,
        fast: RouterModel | None = None,
        cut: float | None = None,
    ) -> RouterVersion:
        """Save ``model`` (with its ``difficulty`` model, and its ``fast`` static classifier
        deciding from ``cut`` up) and register it as a candidate.

        Raises:
            ValueError: ``fast`` without ``cut``, or ``cut`` without ``fast``.
        """
        if (fast is None) != (cut is None):
            raise ValueError("a two-stage version needs both its fast classifier and its cut")
        with self._locked() as versions:
            number = max((v.version for v in versions), default=0) + 1
            entry = RouterVersion(
                version=number,
                hash=model.content_hash(),
                status="candidate",
                embedder=model.embedder,
                created_at=_now(),
                transcript_labels=transcript_labels,
                gate=gate,
                difficulty_hash=difficulty.content_hash() if difficulty else None,
                difficulty_labels=difficulty_labels,
                fast_hash=fast.content_hash() if fast else None,
                fast_embedder=fast.embedder if fast else None,
                cut=cut,
            )
            model.save(self.root / entry.directory_name)
            if difficulty is not None:
                difficulty.save(self.root / entry.directory_name)
            if fast is not None:
                fast.save(self.root / entry.directory_name / FAST_DIR)
            versions.append(entry)
        return entry

    def promote(self, version: int) -> RouterVersion:
        """Make ``version`` the active one; the active one before it is retired."""
        with self._locked() as versions:
            index = _index(versions, version)
            for i, entry in enumerate(versions):
                if entry.status == "active":
                    versions[i] = replace(entry, status="retired")
            versions[index] = replace(versions[index], status="active", promoted_at=_now())
            return versions[index]

    def rollback(self) -> RouterVersion:
        """Re-activate the most recently promoted retired version; the active one is retired.

        Raises:
            RouterVersionError: Nothing is active, or no earlier version was ever active.
        """
        with self._locked() as versions:
            current = next((i for i, v in enumerate(versions) if v.status == "active"), None)
            earlier = [i for i, v in enumerate(versions) if v.status == "retired" and v.promoted_at]
            if current is None or not earlier:
                raise RouterVersionError(
                    "nothing to roll back to: rollback needs an active pre-router version and "
                    "an earlier one that was active. Fix: 'understudy router list' shows them"
                )
            previous = max(earlier, key=lambda i: versions[i].promoted_at or "")
            versions[current] = replace(versions[current], status="retired")
            versions[previous] = replace(versions[previous], status="active", promoted_at=_now())
            return versions[previous]


def _index(versions: list[RouterVersion], version: int) -> int:
    for index, entry in enumerate(versions):
        if entry.version == version:
            return index
    known = [v.version for v in versions]
    raise RouterVersionError(f"no pre-router version {version} (known: {known})")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
