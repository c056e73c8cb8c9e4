"""Where the evaluation data comes from: a local directory, or the Hugging Face Hub.

A data directory is laid out like the project's shared data (``UNDERSTUDY_DATA_DIR``); each data
set is one file in it, in its original public format::

    gsm8k/test.jsonl                          openai/grade-school-math
    math500/test.jsonl                        openai/prm800k (= HuggingFaceH4/MATH-500)
    humaneval/HumanEval.jsonl.gz              openai/human-eval
    mbpp/mbpp.jsonl                           google-research/mbpp (all 974 tasks)
    mmlu_stem/test.jsonl                      MMLU STEM subjects
    mt_bench/question.jsonl                   lm-sys/FastChat llm_judge
    mt_bench/reference_answer_gpt-4.jsonl     (its reference_answer/gpt-4.jsonl)
    mt_bench/judge_prompts.jsonl              (its judge_prompts.jsonl)
    mt_bench/vicuna_bench_question.jsonl      (its vicuna_bench/question.jsonl)
    selfinstruct_email/user_oriented_instructions.jsonl, seed_tasks.jsonl   yizhongw/self-instruct
    aeslc_email/aeslc_dev.jsonl               ryanzhumich/AESLC dev split, one JSON line per email

Without a directory, the sets published on the Hub are read from there (``datasets``, or
``hf_hub_download`` for FastChat's files, both cached by the Hub client) and renamed to the local
field names, so every suite parses one format. Self-Instruct, AESLC and Vicuna-Bench are not on the
Hub in their original form; they need a data directory, and the error says so.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.errors import DataUnavailableError, MissingExtraError


@dataclass(frozen=True, slots=True)
class HubDataset:
    """A split of a Hub data set, read with ``datasets.load_dataset``."""

    path: str
    split: str
    config: str | None = None
    renames: dict[str, str] = field(default_factory=dict)
    """Hub column name → local field name."""


@dataclass(frozen=True, slots=True)
class HubFile:
    """A JSONL file in a Hub repository, fetched with ``hf_hub_download``."""

    repo_id: str
    filename: str
    repo_type: str = "dataset"


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """One data set: its file in a data directory and, where published there, its Hub copy."""

    local: str
    """Path relative to the data directory."""
    origin: str
    """The public source, for messages."""
    hub: HubDataset | HubFile | None = None


_FASTCHAT_SPACE = "lmsys/mt-bench"
DATASETS: dict[str, DatasetSpec] = {
    "gsm8k": DatasetSpec(
        "gsm8k/test.jsonl",
        "github.com/openai/grade-school-math",
        HubDataset("openai/gsm8k", "test", "main"),
    ),
    "gsm8k_train": DatasetSpec(
        "gsm8k/train.jsonl",
        "github.com/openai/grade-school-math",
        HubDataset("openai/gsm8k", "train", "main"),
    ),
    "math500": DatasetSpec(
        "math500/test.jsonl",
        "github.com/openai/prm800k",
        HubDataset("HuggingFaceH4/MATH-500", "test"),
    ),
    "humaneval": DatasetSpec(
        "humaneval/HumanEval.jsonl.gz",
        "github.com/openai/human-eval",
        HubDataset("openai/openai_humaneval", "test"),
    ),
    "mbpp": DatasetSpec(
        "mbpp/mbpp.jsonl",
        "github.com/google-research/google-research (mbpp/)",
        HubDataset("google-research-datasets/mbpp", "test", "full"),
    ),
    "mmlu_stem": DatasetSpec(
        "mmlu_stem/test.jsonl",
        "github.com/hendrycks/test",
        HubDataset("cais/mmlu", "test", "all", {"subject": "type"}),
    ),
    "mt_bench": DatasetSpec(
        "mt_bench/question.jsonl",
        "github.com/lm-sys/FastChat (fastchat/llm_judge/data/mt_bench)",
        HubFile(_FASTCHAT_SPACE, "data/mt_bench/question.jsonl", "space"),
    ),
    "mt_bench_reference": DatasetSpec(
        "mt_bench/reference_answer_gpt-4.jsonl",
        "github.com/lm-sys/FastChat (fastchat/llm_judge/data/mt_bench/reference_answer)",
        HubFile(_FASTCHAT_SPACE, "data/mt_bench/reference_answer/gpt-4.jsonl", "space"),
    ),
    "judge_prompts": DatasetSpec(
        "mt_bench/judge_prompts.jsonl",
        "github.com/lm-sys/FastChat (fastchat/llm_judge/data/judge_prompts.jsonl)",
        HubFile(_FASTCHAT_SPACE, "data/judge_prompts.jsonl", "space"),
    ),
    "vicuna_bench": DatasetSpec(
        "mt_bench/vicuna_bench_question.jsonl",
        "github.com/lm-sys/FastChat (fastchat/llm_judge/data/vicuna_bench)",
    ),
    "self_instruct_user": DatasetSpec(
        "selfinstruct_email/user_oriented_instructions.jsonl",
        "github.com/yizhongw/self-instruct (human_eval/user_oriented_instructions.jsonl)",
    ),
    "self_instruct_seed": DatasetSpec(
        "selfinstruct_email/seed_tasks.jsonl",
        "github.com/yizhongw/self-instruct (data/seed_tasks.jsonl)",
    ),
    "aeslc": DatasetSpec(
        "aeslc_email/aeslc_dev.jsonl",
        "github.com/ryanzhumich/AESLC (dev split; CC BY-NC-SA 4.0, evaluation only)",
    ),
}
"""Every data set the suites read, by name."""


@dataclass(frozen=True)
class DataSource:
    """Reads data sets from ``data_dir`` or, when it is ``None``, from the Hugging Face Hub."""

    data_dir: Path | None = None

    def rows(self, dataset: str) -> Iterator[dict[str, Any]]:
        """The rows of ``dataset`` (a key of :data:`DATASETS`) in file order."""
        spec = DATASETS[dataset]
        if self.data_dir is not None:
            return _read_local(dataset, spec, self.data_dir)
        return _read_hub(dataset, spec)


DATA_DIR_VARIABLE = "UNDERSTUDY_DATA_DIR"


def script_data_dir() -> Path | None:
    """Where a calibration script (``python -m evals.calibrate_…``, its own process edge) finds
    the evaluation data without ``--data-dir``: ``UNDERSTUDY_DATA_DIR``, else the checkout's
    ``../shared/data`` when there is one."""
    configured = os.environ.get(DATA_DIR_VARIABLE)
    if configured:
        return Path(configured).expanduser().resolve()
    fallback = Path(__file__).resolve().parents[2] / "shared" / "data"
    return fallback if fallback.is_dir() else None


def _read_local(dataset: str, spec: DatasetSpec, data_dir: Path) -> Iterator[dict[str, Any]]:
    path = data_dir / spec.local
    if not path.is_file():
        raise DataUnavailableError(
            dataset,
            f"{path} does not exist",
            f"point UNDERSTUDY_DATA_DIR (or --data-dir) at a directory holding {spec.local} "
            f"from {spec.origin}",
        )
    return read_jsonl(path)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """JSON objects, one per non-empty line; ``.gz`` files are decompressed on the fly."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _read_hub(dataset: str, spec: DatasetSpec) -> Iterator[dict[str, Any]]:
    if spec.hub is None:
        raise DataUnavailableError(
            dataset,
            "it is not published on the Hugging Face Hub in its original form",
            f"download {spec.local} from {spec.origin} and set UNDERSTUDY_DATA_DIR (or "
            "--data-dir) to the directory holding it",
        )
    try:
        if isinstance(spec.hub, HubFile):
            return read_jsonl(_hub_file(spec.hub))
        return iter(_hub_dataset(spec.hub))
    except (OSError, ValueError) as exc:  # network, missing repository or file, bad cache
        raise DataUnavailableError(
            dataset,
            f"could not read it from the Hugging Face Hub ({exc})",
            "check the network, or set UNDERSTUDY_DATA_DIR to a local copy",
        ) from exc


def _hub_file(hub: HubFile) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(hub.repo_id, hub.filename, repo_type=hub.repo_type))


def _hub_dataset(hub: HubDataset) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as exc:
        raise MissingExtraError("datasets", "reading evaluation data from the Hub") from exc
    split = datasets.load_dataset(hub.path, hub.config, split=hub.split)
    return [{hub.renames.get(key, key): value for key, value in row.items()} for row in split]
