"""The labels routers are evaluated on: per prompt, how well a strong and a weak model did.

All three sets are RouteLLM's (``lm-sys/RouteLLM`` at ``0b64fda``, ``routellm/evals/``), read
the way ``routellm/evals/benchmarks.py`` reads them, so a router's figures here compare with
the paper's:

* ``routellm-gsm8k``: ``gsm8k/gsm8k_responses.csv``, whether GPT-4-1106 and Mixtral-8x7B each
  answered a GSM8K test question right. A prompt's quality is 100 (right) or 0 (wrong), so the
  mean is RouteLLM's accuracy in percent.
* ``routellm-mt-bench``: ``mt_bench/judgements.jsonl``, GPT-4's 1-10 scores of both models on
  both turns of each MT-Bench question. The router sees the first turn only; the model it picks
  answers both, so a question's quality is the mean of its two turn scores, and the mean over
  questions is RouteLLM's MT-Bench score.
* ``routellm-mmlu``: ``mmlu/responses/mmlu_<subject>.csv`` (57 subjects, 14,042 questions of
  MMLU's test set), whether each model answered right, read as for GSM8K. RouteLLM's files
  name the weak column ``mistralai/Mixtral-8x7B-Instruct-v0.1`` or, in older copies,
  ``mixtral-8x7b-instruct-v0.1``; both are read.

Prompts listed in ``contaminated_prompts.jsonl`` (they overlap RouteLLM's router training data)
are left out, as RouteLLM does: 12 of 1,319 for GSM8K, 8 of 80 MT-Bench questions, 5 MMLU
questions. GSM8K and MT-Bench need the file; for MMLU it is read when it is there (copies of
the subjects' files often come without it).

The directory may be the shared data's ``routellm_evals`` or a RouteLLM checkout's
``routellm/evals``: the layout is the same.
"""

from __future__ import annotations

import csv
import enum
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from evals.errors import DataUnavailableError

STRONG_MODEL = "gpt-4-1106-preview"
WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
WEAK_MODEL_SHORT = "mixtral-8x7b-instruct-v0.1"
"""How older copies of RouteLLM's MMLU files name the weak model's column."""
"""The routed pair of RouteLLM's evaluations (its ``--strong-model`` / ``--weak-model``
defaults); the files name their columns and judgements after them."""

MAX_FILE_BYTES = 64 * 1024 * 1024
"""Largest label file read (RouteLLM's biggest is 1.4 MB); anything larger is not these labels."""

_FIX = (
    "point --labels-dir (or UNDERSTUDY_DATA_DIR/routellm_evals) at RouteLLM's evals folder: "
    "git clone https://github.com/lm-sys/RouteLLM and use RouteLLM/routellm/evals"
)


class LabelSet(enum.StrEnum):
    """The label sets ``understudy eval router --labels`` knows."""

    gsm8k = "routellm-gsm8k"
    mt_bench = "routellm-mt-bench"
    mmlu = "routellm-mmlu"


@dataclass(frozen=True, eq=False)
class RoutingLabels:
    """What each model scored on each prompt: everything a router evaluation needs.

    ``weak[i]`` and ``strong[i]`` are the quality of each model's answer to ``prompts[i]``, in
    ``unit``; sending a prompt to a model earns that model's quality. (Compared by identity:
    ``==`` on numpy arrays does not give one answer.)
    """

    name: str
    prompts: tuple[str, ...]
    """What the router sees (MT-Bench: the first turn)."""
    weak: np.ndarray
    strong: np.ndarray
    unit: str
    """What a quality value means, for tables and plot axes."""
    excluded: int = 0
    """Contaminated prompts left out."""
    weak_model: str = WEAK_MODEL
    strong_model: str = STRONG_MODEL
    source: str = ""
    """The file the qualities were read from, for reports."""

    def __post_init__(self) -> None:
        shape = (len(self.prompts),)
        if self.weak.shape != shape or self.strong.shape != shape:
            raise ValueError(
                f"{len(self.prompts)} prompts but qualities of shape "
                f"{self.weak.shape} and {self.strong.shape}"
            )

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def weak_quality(self) -> float:
        """The weak model alone (RouteLLM's ``get_model_accuracy(weak)``)."""
        return float(self.weak.mean())

    @property
    def strong_quality(self) -> float:
        return float(self.strong.mean())

    @property
    def strong_wins(self) -> np.ndarray:
        """Where the strong model did strictly better: the prompts worth its price."""
        return self.strong > self.weak

    def quality(self, to_strong: np.ndarray) -> float:
        """Mean quality when the prompts marked in ``to_strong`` go to the strong model."""
        return float(np.where(to_strong, self.strong, self.weak).mean())


class _Gsm8kRow(BaseModel):
    """One row of ``gsm8k_responses.csv`` (the response columns are ignored)."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1)
    weak: bool = Field(alias=WEAK_MODEL)
    strong: bool = Field(alias=STRONG_MODEL)


class _MmluRow(BaseModel):
    """One row of ``mmlu_<subject>.csv``: the question with its choices, each model's
    correctness (the files carry no answer letter)."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1)
    weak: bool = Field(validation_alias=AliasChoices(WEAK_MODEL, WEAK_MODEL_SHORT))
    strong: bool = Field(alias=STRONG_MODEL)


class _Contaminated(BaseModel):
    model_config = ConfigDict(extra="ignore")

    eval_prompt: str


class _Question(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question_id: int
    turns: list[str] = Field(min_length=2)


class _Judgement(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question_id: int
    model: str
    score: float
    turn: int


_Row = TypeVar("_Row", bound=BaseModel)


def _checked(path: Path, dataset: str) -> Path:
    if not path.is_file():
        raise DataUnavailableError(dataset, f"{path} not found", _FIX)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataUnavailableError(
            dataset, f"{path} is {size:,} bytes, over the {MAX_FILE_BYTES:,} read", _FIX
        )
    return path


def _parsed(rows: Iterator[tuple[str, object]], model: type[_Row], dataset: str) -> Iterator[_Row]:
    """Each ``(where, raw)`` validated; the first bad one raises, saying where and what."""
    for where, raw in rows:
        try:
            yield model.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            location = ".".join(str(part) for part in first["loc"])
            problem = f"{where}: {location}: {first['msg']}"
            raise DataUnavailableError(dataset, problem, _FIX) from exc


def _jsonl(path: Path, model: type[_Row], dataset: str) -> list[_Row]:
    def lines() -> Iterator[tuple[str, object]]:
        with _checked(path, dataset).open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield f"{path} line {number}", json.loads(line)
                except json.JSONDecodeError as exc:
                    problem = f"{path} line {number}: not JSON ({exc.msg})"
                    raise DataUnavailableError(dataset, problem, _FIX) from exc

    return list(_parsed(lines(), model, dataset))


def _csv(path: Path, model: type[_Row], dataset: str) -> list[_Row]:
    with _checked(path, dataset).open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle)
        located = ((f"{path} row {n}", row) for n, row in enumerate(rows, start=1))
        return list(_parsed(located, model, dataset))


def _contaminated(path: Path, dataset: str) -> set[str]:
    return {row.eval_prompt for row in _jsonl(path, _Contaminated, dataset)}


def load_gsm8k(directory: Path) -> RoutingLabels:
    """GSM8K test questions with each model's correctness (0 or 100), decontaminated."""
    name = LabelSet.gsm8k.value
    responses = directory / "gsm8k" / "gsm8k_responses.csv"
    rows = _csv(responses, _Gsm8kRow, name)
    contaminated = _contaminated(directory / "gsm8k" / "contaminated_prompts.jsonl", name)
    kept = [row for row in rows if row.prompt not in contaminated]
    if not kept:
        raise DataUnavailableError(name, f"{responses} has no prompts left to evaluate", _FIX)
    return RoutingLabels(
        name=name,
        prompts=tuple(row.prompt for row in kept),
        weak=np.array([100.0 * row.weak for row in kept]),
        strong=np.array([100.0 * row.strong for row in kept]),
        unit="accuracy (%)",
        excluded=len(rows) - len(kept),
        source=str(responses),
    )


def load_mmlu(directory: Path) -> RoutingLabels:
    """MMLU questions of every subject file, with each model's correctness (0 or 100),
    decontaminated when RouteLLM's list is there; subjects in name order, as a glob finds
    them, so a copy with fewer subjects is read as it is (its count is in ``source``)."""
    name = LabelSet.mmlu.value
    folder = directory / "mmlu"
    subjects = sorted((folder / "responses").glob("mmlu_*.csv"))
    if not subjects:
        problem = f"no mmlu_<subject>.csv files in {folder / 'responses'}"
        raise DataUnavailableError(name, problem, _FIX)
    rows = [row for path in subjects for row in _csv(path, _MmluRow, name)]
    contaminated_path = folder / "contaminated_prompts.jsonl"
    contaminated = _contaminated(contaminated_path, name) if contaminated_path.exists() else set()
    kept = [row for row in rows if row.prompt not in contaminated]
    if not kept:
        raise DataUnavailableError(name, f"{folder} has no prompts left to evaluate", _FIX)
    return RoutingLabels(
        name=name,
        prompts=tuple(row.prompt for row in kept),
        weak=np.array([100.0 * row.weak for row in kept]),
        strong=np.array([100.0 * row.strong for row in kept]),
        unit="accuracy (%)",
        excluded=len(rows) - len(kept),
        source=f"{folder / 'responses'} ({len(subjects)} subjects)",
    )


def load_mt_bench(directory: Path) -> RoutingLabels:
    """MT-Bench questions (first turn) with each model's mean judge score over both turns.

    Every kept question must have exactly one judgement per turn for both models: RouteLLM
    asserts as much (``total == len(self.questions) * 2``), and a missing score would silently
    change what a model's mean means.
    """
    name = LabelSet.mt_bench.value
    folder = directory / "mt_bench"
    questions = _jsonl(folder / "question.jsonl", _Question, name)
    contaminated = _contaminated(folder / "contaminated_prompts.jsonl", name)
    kept = [q for q in questions if not contaminated.intersection(q.turns[:2])]
    scores: dict[tuple[int, str], dict[int, float]] = defaultdict(dict)
    judgements = folder / "judgements.jsonl"
    for row in _jsonl(judgements, _Judgement, name):
        if row.turn in scores[row.question_id, row.model]:
            problem = f"{judgements}: two judgements of question {row.question_id} turn {row.turn}"
            raise DataUnavailableError(name, f"{problem} by {row.model}", _FIX)
        scores[row.question_id, row.model][row.turn] = row.score

    def per_question(model: str) -> np.ndarray:
        values = []
        for question in kept:
            turns = scores.get((question.question_id, model), {})
            if set(turns) != {1, 2}:
                problem = (
                    f"{judgements} has turns {sorted(turns)} of question "
                    f"{question.question_id} for {model}; expected 1 and 2"
                )
                raise DataUnavailableError(name, problem, _FIX)
            values.append((turns[1] + turns[2]) / 2)
        return np.array(values)

    if not kept:
        raise DataUnavailableError(name, f"{folder} has no questions left to evaluate", _FIX)
    return RoutingLabels(
        name=name,
        prompts=tuple(q.turns[0] for q in kept),
        weak=per_question(WEAK_MODEL),
        strong=per_question(STRONG_MODEL),
        unit="MT-Bench score (1-10)",
        excluded=len(questions) - len(kept),
        source=str(judgements),
    )


LOADERS: dict[LabelSet, Callable[[Path], RoutingLabels]] = {
    LabelSet.gsm8k: load_gsm8k,
    LabelSet.mt_bench: load_mt_bench,
    LabelSet.mmlu: load_mmlu,
}


def load_labels(label_set: LabelSet, directory: Path) -> RoutingLabels:
    """Read one label set from RouteLLM's evals folder (or the shared data's copy of it)."""
    if not directory.is_dir():
        raise DataUnavailableError(label_set.value, f"{directory} is not a directory", _FIX)
    try:
        return LOADERS[label_set](directory)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataUnavailableError(label_set.value, f"cannot read it: {exc}", _FIX) from exc
