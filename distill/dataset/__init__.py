"""Transcripts → a distillation dataset: filtered, scrubbed, de-duplicated, split, described.

``build_dataset`` turns :class:`~distill.transcripts.Transcript` records into a chat-format SFT
dataset with a card; ``save_dataset`` writes it under a name derived from its content. Needs the
``local`` extra (MinHash near-duplicates, phone numbers), so callers on a light install import it
only when they build.
"""

from distill.dataset.build import (
    BuiltDataset,
    DatasetCard,
    LoadedDataset,
    build_dataset,
    dataset_dir,
    latest_dataset,
    load_dataset,
    save_dataset,
)
from distill.dataset.examples import DistillTarget, Example, Rejection, Source

__all__ = [
    "BuiltDataset",
    "DatasetCard",
    "DistillTarget",
    "Example",
    "LoadedDataset",
    "Rejection",
    "Source",
    "build_dataset",
    "dataset_dir",
    "latest_dataset",
    "load_dataset",
    "save_dataset",
]
