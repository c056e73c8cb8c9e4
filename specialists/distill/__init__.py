"""Distillation: the lead's verified work → a dataset → a LoRA adapter for a specialist.

``build_dataset`` turns transcripts (:class:`Transcript`, fed by the serving layer from the
transcript store) into a filtered, scrubbed, de-duplicated and split chat dataset with a card;
``train_lora`` trains an adapter on it that the local backend and vLLM load.

Training needs the ``local`` extra (torch, transformers, peft); nothing here imports them until
training starts.
"""

from specialists.distill.dataset import (
    BuiltDataset,
    DatasetCard,
    DatasetOptions,
    LoadedDataset,
    build_dataset,
    latest_dataset,
    load_dataset,
    save_dataset,
)
from specialists.distill.examples import DistillTarget, Example, Rejection, Source
from specialists.distill.train import (
    StepReport,
    TrainConfig,
    TrainLimits,
    TrainObserver,
    TrainPlan,
    TrainResult,
    check_rank,
    train_lora,
    training_id,
    training_identity,
)
from specialists.distill.transcripts import ToolUse, Transcript

__all__ = [
    "BuiltDataset",
    "DatasetCard",
    "DatasetOptions",
    "DistillTarget",
    "Example",
    "LoadedDataset",
    "Rejection",
    "Source",
    "StepReport",
    "ToolUse",
    "TrainConfig",
    "TrainLimits",
    "TrainObserver",
    "TrainPlan",
    "TrainResult",
    "Transcript",
    "build_dataset",
    "check_rank",
    "latest_dataset",
    "load_dataset",
    "save_dataset",
    "train_lora",
    "training_id",
    "training_identity",
]
