"""Resumable evaluations: item results cached by (suite, sample, mode, configuration hash).

The cache is one JSON-lines file in the output directory. Each clean result is appended (one
``write``, flushed) the moment it completes, so a run that crashes or is interrupted loses only
the items in flight, and rerunning the same command picks up where it stopped. A result is reused
only while everything that determines it is unchanged: the configuration hash covers the lead,
its prompts, every specialist (base, adapter contents, prompt, generation parameters, validator,
threshold), the pre-router, the run budget, the prices and the judge — per mode, only what that
mode depends on (the lead-alone baseline survives a new adapter).

A line that does not read as an item of this release (a torn write, or an older release's
format) is skipped and counted, and its item is run again: a miss, never a crash.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from evals.records import ItemResult, item_from_json, item_to_json
from orchestrator import prompts
from orchestrator.modes import Mode
from orchestrator.run import Orchestrator
from specialists.catalog import Specialist
from specialists.errors import ConfigurationError

logger = logging.getLogger(__name__)

CACHE_FILE = "cache.jsonl"

CacheKey = tuple[str, str, str, str]
"""(suite, sample id, mode, configuration hash)."""


def config_fingerprint(
    orchestrator: Orchestrator, *, slm_base: str, judge_model: str | None = None
) -> dict[str, Any]:
    """Everything that determines an item's answer, score and cost, as plain JSON, in sections.

    Args:
        orchestrator: The orchestrator under evaluation.
        slm_base: The base model every specialist without its own ``base_model`` runs on (the
            backend knows it only as a loaded model, so the caller names it).
        judge_model: The judge scoring the answers, if the suite uses one.
    """
    lead = orchestrator.lead
    model = lead.display_name if lead else None
    price = orchestrator.prices.lead_price(model)
    prerouter = orchestrator.prerouter
    return {
        "lead": {
            # The model's name identifies the lead (moving its server keeps the results);
            # only a nameless lead is known by its URL.
            "model": None if lead is None else (lead.model or lead.base_url),
            "prompts": [prompts.LEAD_INSTRUCTIONS, prompts.PLAIN_INSTRUCTIONS],
            "price": None if price is None else dataclasses.asdict(price),
        },
        "specialists": {
            "slm": {"backend": orchestrator.backend.name, "base": slm_base},
            "catalog": [_specialist_fingerprint(s) for s in orchestrator.catalog],
            "prerouter": None
            if prerouter is None
            else {
                "threshold": prerouter.threshold,
                "routing": prerouter.fingerprint,
                # MiniLMEmbedder names its model; any other embedder is known by its class.
                "embedder": getattr(
                    prerouter.embedder, "model_ref", type(prerouter.embedder).__name__
                ),
            },
            "price_per_million": orchestrator.prices.slm_per_million,
        },
        "lead_with_specialists": {
            "escalation_note": prompts.ESCALATION_NOTE,
            "sandbox": dataclasses.asdict(orchestrator.sandbox),
        },
        "run": {"budget": dataclasses.asdict(orchestrator.budget), "judge": judge_model},
    }


MODE_SECTIONS: dict[Mode, tuple[str, ...]] = {
    Mode.llm: ("lead", "run"),
    Mode.slm: ("specialists", "run"),
    Mode.router: ("lead", "specialists", "lead_with_specialists", "run"),
    Mode.cascade: ("lead", "specialists", "lead_with_specialists", "run"),
}
"""The fingerprint sections each mode depends on: a new adapter does not invalidate the lead's
baseline, and a new lead does not invalidate the specialist's."""


def mode_hashes(fingerprint: Mapping[str, Any]) -> dict[Mode, str]:
    """Each mode's configuration hash, over the sections it depends on."""
    return {
        mode: config_hash({name: fingerprint[name] for name in sections})
        for mode, sections in MODE_SECTIONS.items()
    }


def config_hash(fingerprint: Mapping[str, Any]) -> str:
    """A short, stable hash of a fingerprint (key order does not matter)."""
    canonical = json.dumps(fingerprint, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _specialist_fingerprint(specialist: Specialist) -> dict[str, Any]:
    data = dataclasses.asdict(specialist)
    data["adapter"] = _adapter_fingerprint(specialist.adapter)
    return data


def _adapter_fingerprint(adapter: Path | None) -> dict[str, str] | None:
    """The adapter's path and a hash of its files: retraining in place changes the hash."""
    if adapter is None:
        return None
    digest = hashlib.sha256()
    files = sorted(p for p in adapter.rglob("*") if p.is_file()) if adapter.is_dir() else []
    for file in files:
        digest.update(str(file.relative_to(adapter)).encode())
        with file.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return {"path": str(adapter), "files": digest.hexdigest()[:16] if files else "missing"}


class ResultCache:
    """The item results of one output directory, read at open and appended to as they complete.

    Only one process may hold a directory's cache at a time (an advisory lock), so two runs into
    the same directory cannot interleave their lines.

    Raises:
        ConfigurationError: another evaluation is writing to the same directory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise ConfigurationError(
                f"another evaluation is writing to {path.parent}; wait for it or pass another --out"
            ) from None
        self._items: dict[CacheKey, ItemResult] = {}
        self.unreadable_lines = 0
        """Lines that did not parse (a crash mid-write leaves at most one; an older release's
        lines are of another shape); they are ignored, so their items run again."""
        self._load()

    def _load(self) -> None:
        self._file.seek(0)
        text = self._file.read()
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                item = item_from_json(line)
            except ValidationError:
                self.unreadable_lines += 1
                continue
            self._items[item.key] = item
        if text and not text.endswith("\n"):  # a torn last line: start the next one cleanly
            self._file.write("\n")
            self._file.flush()
        if self.unreadable_lines:
            logger.warning("%s: ignored %d unreadable line(s)", self.path, self.unreadable_lines)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: CacheKey) -> ItemResult | None:
        return self._items.get(key)

    def put(self, item: ItemResult) -> None:
        """Keep ``item`` (on disk at once); failed and degraded runs are not kept."""
        if not item.cacheable:
            return
        self._file.write(item_to_json(item) + "\n")
        self._file.flush()
        self._items[item.key] = item

    def close(self) -> None:
        self._file.close()  # releases the lock

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
