"""The distillation loop's configuration: frozen values, built once where a process starts.

Serving reads the settings at its edge and builds one :class:`DistillConfig`
(``serving.runtime.distill_config``); everything in :mod:`distill` takes it, or the part it
needs, as an argument and never reads the settings. What the pipeline uses but does not choose —
the base model's directory, which may have to be pulled first, and an SLM backend to evaluate
candidates on — comes from the same edge as the factories of :class:`SLMAccess`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from specialists.backend import SLMBackend
from specialists.catalog import Catalog
from specialists.errors import ConfigurationError

Log = Callable[[str], None]
"""Where progress messages go (the CLI prints them, the worker logs them)."""

DEFAULT_CLUSTER_THRESHOLD: float = 0.275
"""Mean pairwise cosine at which queries count as one task. Calibrated with
``python -m distill.calibrate_clusters`` on 150 GSM8K, 150 MBPP and 150 email-subject prompts
mixed with 287 prompts of no common task (MT-Bench, Vicuna-Bench, Self-Instruct): the best
neighbour-smoothed recall times purity without a group of unrelated prompts. At 0.275 (seeds 0 / 1)
recall is 0.96 / 0.93 (GSM8K), 0.68 / 0.79 (MBPP), 0.76 / 0.74 (email), purity 1.000 / 0.997, no
spurious group; at 0.225 and below, topical groups of unrelated requests (film and TV, blog
posts) reach 20 prompts and would be proposed."""

DEFAULT_COVERAGE_THRESHOLD: float = 0.215
"""Mean best pre-router score at which a group of queries counts as an existing specialist's
task. Calibrated with ``python -m distill.calibrate_clusters`` (150 prompts a task, seeds 0 and
1): covered tasks score 0.253 (MATH-500) to 0.435 (email tasks), uncovered ones 0.077 (MMLU
college biology) to 0.180 (Self-Instruct app tasks); the middle of the gap is 0.217 / 0.215."""


@dataclass(frozen=True, slots=True)
class ProposalConfig:
    """How ``distill propose`` groups the lead's queries into tasks worth a specialist."""

    cluster_threshold: float = DEFAULT_CLUSTER_THRESHOLD
    """Mean pairwise cosine at which queries are one task."""
    coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD
    """Mean best pre-router score at which a task is an existing specialist's."""
    min_runs: int = 20
    """Fewest runs of one task worth proposing a specialist for."""
    max_runs: int = 5000
    """Most recent lead-answered runs clustered (memory grows with its square)."""
    auto_distill_runs: int | None = None
    """A proposal with at least this many runs starts a distillation job by itself; ``None``:
    jobs start only by hand."""


@dataclass(frozen=True, slots=True)
class DatasetOptions:
    """How transcripts are filtered and split."""

    val_fraction: float = 0.1
    test_fraction: float = 0.1
    near_duplicate_threshold: float = 0.9
    """Similarity of request + answer at which a later example is dropped as a near-duplicate."""
    same_split_threshold: float = 0.7
    """Similarity of requests at which examples are kept on the same side of the split."""
    max_example_chars: int = 8000
    """Longer examples (system + user + assistant) are left out."""
    phone_region: str = "US"
    """Country whose numbering plan reads phone numbers written without ``+``."""

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigurationError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigurationError("val_fraction + test_fraction must leave room for training")
        for name in ("near_duplicate_threshold", "same_split_threshold"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigurationError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.max_example_chars < 1:
            raise ConfigurationError(f"max_example_chars must be ≥ 1, got {self.max_example_chars}")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyperparameters of one training run."""

    rank: int = 16
    """LoRA rank; at most the SLM server's ``--max-lora-rank``."""
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Attention projections: cheap to train, free at inference once merged."""
    learning_rate: float = 2e-4
    epochs: int = 2
    batch_size: int = 8
    max_seq_tokens: int = 1024
    """Longer examples are left out (counted), not truncated: a cut answer teaches cutting."""
    warmup_fraction: float = 0.05
    seed: int = 0
    checkpoint_every: int = 50
    """Steps between checkpoints."""
    keep_checkpoints: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None
    """CPU threads for torch; ``None`` keeps torch's default (one per core). On a machine shared
    with other work, fewer threads waste less CPU waiting for each other."""

    def __post_init__(self) -> None:
        positive = ("rank", "alpha", "epochs", "batch_size", "max_seq_tokens", "checkpoint_every")
        for name in (*positive, "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0 < self.learning_rate < 1:
            raise ConfigurationError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if not 0 <= self.dropout < 1 or not 0 <= self.warmup_fraction < 1:
            raise ConfigurationError("dropout and warmup_fraction must be in [0, 1)")
        if self.threads is not None and self.threads < 1:
            raise ConfigurationError(f"threads must be ≥ 1, got {self.threads}")
        if not self.target_modules:
            raise ConfigurationError("target_modules must name at least one module")

    def identity(self) -> dict[str, Any]:
        """The fields that change the resulting adapter (not where or how often it is saved)."""
        data = asdict(self)
        for name in ("checkpoint_every", "keep_checkpoints", "device", "threads"):
            data.pop(name)
        data["target_modules"] = list(self.target_modules)
        return data


@dataclass(frozen=True, slots=True)
class TrainLimits:
    """What the deployment accepts; checked before anything is loaded."""

    max_rank: int
    """The SLM server's ``--max-lora-rank`` (``UNDERSTUDY_SLM_MAX_LORA_RANK``)."""
    min_examples: int
    """Fewest training examples worth training on."""


@dataclass(frozen=True, slots=True)
class GateConfig:
    """What the evaluation gate asks of a candidate (see :mod:`distill.gate`)."""

    target_precision: float = 0.95
    """Share of accepted answers that must agree with the lead."""
    min_accepted: int = 10
    """Fewest validation answers the calibrated threshold must accept."""
    precision_tolerance: float = 0.05
    """How far the test split's precision may fall below the target."""
    match_threshold: float = 0.5
    """ROUGE-L F1 at which a free-text answer agrees with the lead's."""


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """How a worker holds distillation jobs (the same lease rules as batch items)."""

    lease_s: float
    """How long a claimed job stays with a worker that stopped renewing it."""
    max_attempts: int
    """Claims of one job before it is left failed."""
    poll_s: float
    """How often an idle worker looks for a job."""


@dataclass(frozen=True, slots=True)
class DistillPaths:
    """Where distillation reads and writes."""

    datasets: Path
    """Datasets, one directory per specialist and dataset hash."""
    adapters: Path
    """Adapters, one directory per specialist and training id."""
    models: Path
    """The model store: the served base's directory, when it is there."""


@dataclass(frozen=True, slots=True)
class DistillConfig:
    """Everything the distillation loop takes from the settings."""

    catalog: Catalog
    """The specialists without the registry: the built-ins with the settings' overrides. The
    registry's definitions and active versions go on top (:mod:`distill.catalog`)."""
    base_model: str
    """The base the SLM servers run, by the name users know it (alias, Hub id or directory)."""
    paths: DistillPaths
    dataset: DatasetOptions
    max_transcripts: int
    """Most transcripts read for one dataset (newest first)."""
    train: TrainConfig
    limits: TrainLimits
    gate: GateConfig
    slm_cost_per_token: float
    """USD per specialist token, for the gate's cost figures."""
    proposals: ProposalConfig
    queue: QueueConfig
    auto_promote: bool
    """A job promotes its candidate when the gate passes; off: a person does."""
    canary_share: float
    """The share of its specialist's traffic a promoted candidate serves as a canary first;
    0: it becomes active at once."""


@dataclass(frozen=True, slots=True)
class SLMAccess:
    """The SLM side of the deployment, which a distillation job uses but does not choose."""

    base_model_dir: Callable[[Log], Path]
    """The served base's directory, pulled first where the deployment allows it."""
    open_backend: Callable[[Log], SLMBackend]
    """A new backend on the served base (in-process or a vLLM server); the caller closes it."""
