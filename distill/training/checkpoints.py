"""Training checkpoints: everything needed to go on as if training had never stopped.

A checkpoint is a directory ``checkpoints/step-0000120/`` holding the adapter in peft format (so
it can also be tried out as an adapter) and ``state.pt`` with the optimizer, the learning-rate
schedule, the random-number generators and the step. It is written under a temporary name and
renamed when complete, so a crash mid-write leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specialists.errors import TrainingError

STATE_FILE = "state.pt"
_NAME = re.compile(r"^step-(\d{7})$")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    step: int
    path: Path


def save_checkpoint(root: Path, step: int, peft_model: Any, state: dict[str, Any]) -> Checkpoint:
    """Write the adapter and ``state`` as the checkpoint of ``step``."""
    import torch

    final = root / f"step-{step:07d}"
    staging = root / f".step-{step:07d}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir(mode=0o700, parents=True)
    try:
        peft_model.save_pretrained(staging)
        torch.save({**state, "step": step}, staging / STATE_FILE)
        if final.exists():  # the same step saved again after a resume: same content
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Checkpoint(step, final)


def latest_checkpoint(root: Path) -> Checkpoint | None:
    """The complete checkpoint with the highest step, if any."""
    found = [
        Checkpoint(int(match.group(1)), path)
        for path in (root.iterdir() if root.is_dir() else ())
        if (match := _NAME.match(path.name)) and (path / STATE_FILE).is_file()
    ]
    return max(found, key=lambda c: c.step, default=None)


def load_state(checkpoint: Checkpoint) -> dict[str, Any]:
    """The training state and the adapter weights (``adapter``) of ``checkpoint``.

    Raises:
        TrainingError: A file is unreadable (the message names it).
    """
    import torch
    from safetensors.torch import load_file

    try:
        state = torch.load(checkpoint.path / STATE_FILE, map_location="cpu", weights_only=True)
        state["adapter"] = load_file(checkpoint.path / "adapter_model.safetensors")
    except (OSError, RuntimeError, ValueError) as exc:
        raise TrainingError(
            f"checkpoint {checkpoint.path} is unreadable ({exc}); delete it to resume from the "
            "one before"
        ) from exc
    return state


def prune_checkpoints(root: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (and leftovers of interrupted writes)."""
    for leftover in root.glob(".step-*.partial-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    found = sorted(
        (int(match.group(1)), path) for path in root.iterdir() if (match := _NAME.match(path.name))
    )
    for _step, path in found[: max(0, len(found) - keep)]:
        shutil.rmtree(path, ignore_errors=True)
