"""Transcripts → a chat-format SFT dataset: filtered, scrubbed, de-duplicated, split, described.

A dataset is a directory::

    train.jsonl  val.jsonl  test.jsonl   one example a line: {"messages": [system, user,
                                         assistant], "run_id": …, "source": …}
    card.json                            what went in, what was left out and why, file hashes
    README.md                            the same card, for people

Building is deterministic: the same transcripts give byte-identical split files. Splits are
decided by a hash of each near-duplicate cluster's leader (see :mod:`.dedup`), so paraphrases of
one request never straddle train and test, and an example keeps its split when newer
transcripts are added and the dataset is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from distill.config import DatasetOptions
from distill.dataset.dedup import LeaderClusters, fingerprint
from distill.dataset.examples import DistillTarget, Example, Rejection, extract_example
from distill.dataset.pii import PiiScrubber
from distill.transcripts import Transcript
from specialists.errors import DatasetError

DATASET_FORMAT = "understudy-chat-sft/1"
SPLITS = ("train", "val", "test")
CARD_FILE = "card.json"
MAX_LINE_CHARS = 200_000
"""Longest JSONL line read back; longer ones are refused rather than loaded."""
MAX_MESSAGES = 64
"""Most messages in one example read back."""


@dataclass(frozen=True, slots=True)
class SplitFile:
    examples: int
    sha256: str


@dataclass
class DatasetCard:
    """What a dataset holds and how it was made; written as ``card.json``."""

    name: str
    """The specialist it teaches."""
    system_prompt: str
    validator: str
    selection: str
    """Which runs were eligible: a specialist's, or a chosen set (a proposal's)."""
    transcripts_read: int
    examples: int
    rejected: dict[str, int]
    """Transcripts left out, by :class:`Rejection` (every reason listed, zeros included)."""
    pii_replaced: dict[str, int]
    """Emails, phone numbers and secrets replaced by placeholders."""
    sources: dict[str, int]
    """Examples by the kind of run they came from (:class:`.examples.Source`)."""
    near_duplicate_clusters: int
    """Groups of similar requests kept together on one side of the split."""
    splits: dict[str, SplitFile]
    sha256: str
    """Hash of the three split files: the dataset's identity, recorded with every adapter."""
    options: dict[str, Any]
    format: str = DATASET_FORMAT
    built_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n"

    def to_markdown(self) -> str:
        """A human-readable card (the README of the dataset directory)."""
        rows = "\n".join(
            f"| {name} | {split.examples} | `{split.sha256}` |"
            for name, split in self.splits.items()
        )
        rejected = ", ".join(f"{reason} {count}" for reason, count in self.rejected.items())
        pii = ", ".join(f"{kind} {count}" for kind, count in self.pii_replaced.items()) or "none"
        sources = ", ".join(f"{kind} {count}" for kind, count in self.sources.items())
        return (
            f"# Distillation dataset: {self.name}\n\n"
            f"Built {self.built_at} from {self.transcripts_read} transcripts "
            f"({self.selection}); {self.examples} examples kept.\n\n"
            f"| split | examples | sha256 |\n|---|---|---|\n{rows}\n\n"
            f"- dataset sha256: `{self.sha256}`\n"
            f"- left out: {rejected}\n"
            f"- personal data replaced: {pii}\n"
            f"- sources: {sources}\n"
            f"- near-duplicate clusters kept on one side: {self.near_duplicate_clusters}\n"
            f"- validator: `{self.validator}`; options: `{json.dumps(self.options)}`\n\n"
            f"System prompt:\n\n> {self.system_prompt}\n"
        )


@dataclass(frozen=True, slots=True)
class BuiltDataset:
    """A dataset in memory, before it is saved."""

    splits: dict[str, list[Example]]
    card: DatasetCard


def build_dataset(
    transcripts: Iterable[Transcript],
    target: DistillTarget,
    options: DatasetOptions | None = None,
) -> BuiltDataset:
    """Filter, scrub, de-duplicate and split ``transcripts`` into examples for ``target``.

    Raises:
        DatasetError: No transcript gave an example; the message counts every reason.
    """
    options = options or DatasetOptions()
    ordered = sorted(transcripts, key=lambda t: (t.created_at, t.run_id))
    scrubber = PiiScrubber(phone_region=options.phone_region)
    duplicates = LeaderClusters(options.near_duplicate_threshold)
    groups = LeaderClusters(options.same_split_threshold)
    rejected: Counter[str] = Counter({reason.value: 0 for reason in Rejection})
    pii: Counter[str] = Counter()
    exact_seen: set[str] = set()
    cluster_sizes: Counter[str] = Counter()
    split_keys: dict[str, str] = {}
    """Cluster leader → the hash of its request, which decides the whole cluster's split."""
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for index, transcript in enumerate(ordered):
        extracted = extract_example(transcript, target, max_chars=options.max_example_chars)
        if isinstance(extracted, Rejection):
            rejected[extracted.value] += 1
            continue
        user, assistant = scrubber.scrub(extracted.user), scrubber.scrub(extracted.assistant)
        pii.update(user.found + assistant.found)
        example = replace(extracted, user=user.text, assistant=assistant.text)
        pair = f"{example.user}\n{example.assistant}"
        exact = fingerprint(pair)
        if exact in exact_seen:
            rejected[Rejection.DUPLICATE.value] += 1
            continue
        exact_seen.add(exact)
        key = str(index)
        if duplicates.assign(key, pair) != key:
            rejected[Rejection.NEAR_DUPLICATE.value] += 1
            continue
        leader = groups.assign(key, example.user)
        cluster_sizes[leader] += 1
        split_key = split_keys.setdefault(leader, fingerprint(example.user))
        splits[_split_of(split_key, options)].append(example)
    kept = sum(len(examples) for examples in splits.values())
    if kept == 0:
        reasons = ", ".join(f"{reason} {count}" for reason, count in rejected.items() if count)
        raise DatasetError(
            f"no usable transcripts for {target.name!r}: {len(ordered)} read"
            + (f"; left out: {reasons}" if reasons else "")
        )
    files = {
        name: SplitFile(len(examples), hashlib.sha256(_jsonl(examples)).hexdigest())
        for name, examples in splits.items()
    }
    card = DatasetCard(
        name=target.name,
        system_prompt=target.system_prompt,
        validator=target.validator,
        selection=(
            f"runs that consulted specialist {target.name!r}"
            if target.run_ids is None
            else f"{len(target.run_ids)} chosen runs"
        ),
        transcripts_read=len(ordered),
        examples=kept,
        rejected=dict(rejected),
        pii_replaced=dict(sorted(pii.items())),
        sources=dict(
            sorted(Counter(e.source.value for split in splits.values() for e in split).items())
        ),
        near_duplicate_clusters=sum(1 for size in cluster_sizes.values() if size > 1),
        splits=files,
        sha256=_dataset_hash({name: file.sha256 for name, file in files.items()}),
        options=asdict(options),
    )
    return BuiltDataset(splits, card)


def _split_of(key_hex: str, options: DatasetOptions) -> str:
    """train, val or test, from a cluster's hash read as a number in [0, 1)."""
    position = int(key_hex[:16], 16) / 16**16
    if position < options.test_fraction:
        return "test"
    if position < options.test_fraction + options.val_fraction:
        return "val"
    return "train"


def dataset_dir(root: Path, card: DatasetCard) -> Path:
    """``<root>/<name>/<hash>``: the same transcripts give the same directory, which is what
    makes a repeated or resumed job find its earlier dataset."""
    return root / card.name / card.sha256[:12]


def save_dataset(built: BuiltDataset, directory: Path) -> Path:
    """Write ``built`` to ``directory`` (created whole, or not at all) and return it.

    Saving the same dataset twice is a no-op; a directory holding anything else is never
    overwritten.

    Raises:
        DatasetError: ``directory`` exists and is not this dataset.
    """
    if directory.exists():
        if _existing_hash(directory) == built.card.sha256:
            return directory
        raise DatasetError(
            f"{directory} exists and is not this dataset; choose another output directory"
        )
    staging = directory.with_name(f".{directory.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        for name, examples in built.splits.items():
            (staging / f"{name}.jsonl").write_bytes(_jsonl(examples))
        (staging / CARD_FILE).write_text(built.card.to_json(), encoding="utf-8")
        (staging / "README.md").write_text(built.card.to_markdown(), encoding="utf-8")
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def latest_dataset(root: Path, name: str) -> Path:
    """The most recently built dataset for specialist ``name`` under ``root``.

    Raises:
        DatasetError: None has been built (the message says how to build one).
    """
    built = sorted(
        (_read_card(path).get("built_at", ""), path)
        for path in (root / name).glob("*")
        if (path / CARD_FILE).is_file()
    )
    if not built:
        raise DatasetError(
            f"no dataset for {name!r} under {root / name}; "
            f"build one with `understudy distill build --specialist {name}`"
        )
    return built[-1][1]


# ----------------------------------------------------------------------------------- reading


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_LINE_CHARS)


class _Line(BaseModel):
    """One JSONL line of a split; extra keys (``run_id``, ``source``) are allowed."""

    model_config = ConfigDict(extra="allow")
    messages: list[_Message] = Field(min_length=2, max_length=MAX_MESSAGES)

    @model_validator(mode="after")
    def _ends_with_an_answer(self) -> _Line:
        if self.messages[-1].role != "assistant" or not self.messages[-1].content.strip():
            raise ValueError("the last message must be a non-empty assistant message")
        if not any(m.role == "user" for m in self.messages):
            raise ValueError("there is no user message")
        return self


@dataclass(frozen=True, slots=True)
class LoadedDataset:
    """A dataset read back for training: its chat examples and its identity."""

    directory: Path
    train: list[list[dict[str, str]]]
    val: list[list[dict[str, str]]]
    sha256: str


def load_dataset(directory: Path) -> LoadedDataset:
    """Read and validate a dataset directory (``train.jsonl``; ``val.jsonl`` if present).

    Raises:
        DatasetError: The directory or its train split is missing, or a line is malformed
            (the message names the file and line).
    """
    if not directory.is_dir():
        raise DatasetError(f"{directory}: not a dataset directory (build one first)")
    train_file = directory / "train.jsonl"
    if not train_file.is_file():
        raise DatasetError(f"{train_file}: missing; is {directory} a distillation dataset?")
    hashes = {}
    splits = {}
    for name in SPLITS:
        file = directory / f"{name}.jsonl"
        data = file.read_bytes() if file.is_file() else b""
        hashes[name] = hashlib.sha256(data).hexdigest()
        splits[name] = _parse(file, data)
    return LoadedDataset(directory, splits["train"], splits["val"], _dataset_hash(hashes))


def _parse(file: Path, data: bytes) -> list[list[dict[str, str]]]:
    examples = []
    for number, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_CHARS:
            raise DatasetError(f"{file}:{number}: longer than {MAX_LINE_CHARS} characters")
        try:
            line = _Line.model_validate_json(raw)
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise DatasetError(
                f"{file}:{number}: {problem['msg']}" + (f" (at {where})" if where else "")
            ) from None
        examples.append([m.model_dump() for m in line.messages])
    return examples


# ----------------------------------------------------------------------------------- helpers


def _jsonl(examples: list[Example]) -> bytes:
    """A split's file content, exactly as written (and hashed)."""
    return "".join(
        json.dumps(
            {"messages": e.messages(), "run_id": e.run_id, "source": e.source.value},
            ensure_ascii=False,
        )
        + "\n"
        for e in examples
    ).encode("utf-8")


def _dataset_hash(file_hashes: dict[str, str]) -> str:
    joined = "".join(f"{name} {file_hashes[name]}\n" for name in SPLITS)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def _read_card(directory: Path) -> dict[str, Any]:
    try:
        card = json.loads((directory / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def _existing_hash(directory: Path) -> str | None:
    try:
        return load_dataset(directory).sha256
    except DatasetError:
        return None
