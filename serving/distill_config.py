"""Settings → distillation objects, and where datasets and adapters go by default.

One place for the CLI and the distillation worker alike, so both build the same dataset and
train into the same directory for the same inputs (which is what makes a repeated or resumed
job find its earlier work).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from serving.settings import Settings

if TYPE_CHECKING:
    from specialists.distill import DatasetCard, DatasetOptions, TrainConfig, TrainLimits


def dataset_options(settings: Settings) -> DatasetOptions:
    """The dataset options the ``UNDERSTUDY_DISTILL_*`` settings describe."""
    from specialists.distill import DatasetOptions

    distill = settings.distill
    return DatasetOptions(
        val_fraction=distill.val_fraction,
        test_fraction=distill.test_fraction,
        near_duplicate_threshold=distill.near_duplicate_threshold,
        same_split_threshold=distill.same_split_threshold,
        max_example_chars=distill.max_example_chars,
        phone_region=distill.phone_region,
    )


def train_config(
    settings: Settings,
    *,
    rank: int | None = None,
    alpha: int | None = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    device: str | None = None,
) -> TrainConfig:
    """The hyperparameters the settings describe; arguments given (not ``None``) win."""
    from specialists.distill import TrainConfig

    distill = settings.distill
    return TrainConfig(
        rank=rank or distill.rank,
        alpha=alpha or distill.alpha,
        dropout=distill.dropout,
        target_modules=tuple(distill.target_modules),
        learning_rate=learning_rate or distill.learning_rate,
        epochs=epochs or distill.epochs,
        batch_size=batch_size or distill.batch_size,
        max_seq_tokens=distill.max_seq_tokens,
        seed=distill.seed,
        checkpoint_every=distill.checkpoint_every,
        keep_checkpoints=distill.keep_checkpoints,
        device=device or distill.device,  # type: ignore[arg-type]
        threads=distill.threads,
    )


def train_limits(settings: Settings) -> TrainLimits:
    """What the deployment accepts: the SLM server's largest rank, the smallest dataset."""
    from specialists.distill import TrainLimits

    return TrainLimits(
        max_rank=settings.slm.max_lora_rank, min_examples=settings.distill.min_examples
    )


def dataset_dir(settings: Settings, card: DatasetCard) -> Path:
    """``$UNDERSTUDY_HOME/datasets/<name>/<hash>``: the same transcripts, the same directory."""
    return settings.datasets_dir / card.name / card.sha256[:12]


def adapter_dir(
    settings: Settings,
    name: str,
    dataset: Path,
    base_dir: Path,
    config: TrainConfig,
    init_adapter: Path | None = None,
) -> Path:
    """``$UNDERSTUDY_HOME/adapters/<name>/<training id>``: one directory per dataset, base and
    hyperparameters, so running the same training again resumes (or finds) it."""
    from specialists.distill import load_dataset, training_id, training_identity

    identity = training_identity(load_dataset(dataset).sha256, base_dir, config, init_adapter)
    return settings.adapters_dir / name / training_id(identity)
