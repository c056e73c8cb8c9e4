"""A distillation dataset → a LoRA adapter that the local backend and vLLM load.

Training needs the ``local`` extra (torch, transformers, peft); nothing here imports them until
training starts.
"""

from distill.training.lora import (
    StepReport,
    TrainObserver,
    TrainPlan,
    TrainResult,
    adapter_dir,
    check_rank,
    train_lora,
    training_id,
    training_identity,
)

__all__ = [
    "StepReport",
    "TrainObserver",
    "TrainPlan",
    "TrainResult",
    "adapter_dir",
    "check_rank",
    "train_lora",
    "training_id",
    "training_identity",
]
