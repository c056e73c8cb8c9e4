"""LoRA training of a specialist on a distillation dataset: a plain PyTorch + peft loop.

Not TRL's ``SFTTrainer``: its assistant-only loss needs generation markers in the chat template
(SmolLM2's has none), and a plain loop can compute the vocabulary projection only at answer
positions, which on a CPU is a third of the work saved. The loop is small enough to read:
tokenise with the chat template (:mod:`.sft_data`), shuffle per epoch with the seed, AdamW with
linear warm-up and decay, a checkpoint every N steps (:mod:`.checkpoints`), and the adapter in
peft format at the end — the format vLLM and the local backend load.

An output directory holds, when training is done::

    adapter_model.safetensors, adapter_config.json   the adapter
    training.json                                    what was trained on what, and how it went

and while it runs, ``run.json`` (what this run is, checked before resuming) and
``checkpoints/``. Running the same training again resumes from the latest checkpoint and ends
with the same adapter as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import math
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from distill.config import TrainConfig, TrainLimits
from distill.dataset.build import LoadedDataset, load_dataset
from distill.training.checkpoints import (
    latest_checkpoint,
    load_state,
    prune_checkpoints,
    save_checkpoint,
)
from distill.training.sft_data import TokenizedExample, pad_batch, tokenize_chat
from specialists.adapters import check_adapter_fits, read_adapter_config
from specialists.errors import ConfigurationError, DatasetError, ModelError, TrainingError
from specialists.model_loading import MODEL_LOADING
from specialists.model_store import validate_model_dir

TRAINING_FILE = "training.json"
RUN_FILE = "run.json"
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True, slots=True)
class TrainPlan:
    """What a run is about to do, reported once before the first step."""

    examples: int
    skipped_too_long: int
    total_steps: int
    start_step: int
    """0 for a fresh run, else the checkpoint's step."""
    device: str


@dataclass(frozen=True, slots=True)
class StepReport:
    step: int
    total_steps: int
    epoch: int
    loss: float
    """Mean loss per answer token in this step's batch."""
    tokens_per_s: float
    checkpoint: Path | None = None
    """Set when this step wrote a checkpoint."""


class TrainObserver(Protocol):
    """Receives progress (the CLI draws a progress bar with it)."""

    def started(self, plan: TrainPlan) -> None: ...

    def step(self, report: StepReport) -> None: ...


class _Silent:
    def started(self, plan: TrainPlan) -> None:
        pass

    def step(self, report: StepReport) -> None:
        pass


@dataclass(frozen=True, slots=True)
class TrainResult:
    adapter_dir: Path
    metadata: dict[str, Any]
    """The content of ``training.json``."""
    already_trained: bool = False
    """The directory held this very training's adapter already; nothing was run."""


def check_rank(rank: int, max_rank: int) -> None:
    """Refuse a rank the SLM server would refuse to load."""
    if not 1 <= rank <= max_rank:
        raise ConfigurationError(
            f"LoRA rank {rank} is above the SLM server's maximum of {max_rank}: vLLM would refuse "
            f"the adapter. Train with --rank {max_rank} or less, or raise the server's maximum",
            setting="UNDERSTUDY_SLM_MAX_LORA_RANK",
        )


def training_identity(
    dataset_sha256: str, base_dir: Path, config: TrainConfig, init_adapter: Path | None
) -> dict[str, Any]:
    """What makes an adapter what it is: a resumed or repeated run must agree on all of it."""
    return {
        "base_fingerprint": _base_fingerprint(base_dir),
        "dataset_sha256": dataset_sha256,
        "init_adapter": str(init_adapter) if init_adapter else None,
        **config.identity(),
    }


def training_id(identity: dict[str, Any]) -> str:
    """A short name for a training run, the same whenever its identity is: a default directory
    name that makes repeating a command resume it."""
    encoded = json.dumps(identity, sort_keys=True).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()[:12]


def adapter_dir(
    root: Path,
    name: str,
    dataset: Path,
    base_dir: Path,
    config: TrainConfig,
    init_adapter: Path | None = None,
) -> Path:
    """``<root>/<name>/<training id>``: one directory per dataset, base and hyperparameters, so
    running the same training again resumes (or finds) it."""
    identity = training_identity(load_dataset(dataset).sha256, base_dir, config, init_adapter)
    return root / name / training_id(identity)


def train_lora(
    dataset_dir: Path,
    base_dir: Path,
    out_dir: Path,
    config: TrainConfig,
    limits: TrainLimits,
    *,
    base_ref: str,
    init_adapter: Path | None = None,
    observer: TrainObserver | None = None,
) -> TrainResult:
    """Train a LoRA adapter for the base model in ``base_dir`` on ``dataset_dir``'s train split.

    Args:
        base_ref: The name users know the base by (recorded; checked against checkpoints).
        init_adapter: Continue training this adapter (its rank and modules) instead of a new one.
        observer: Told the plan and every step.

    Raises:
        ConfigurationError: The rank is above ``limits.max_rank`` or a hyperparameter is invalid.
        DatasetError: The dataset is missing, malformed, or smaller than ``limits.min_examples``.
        ModelError: The base model is unusable, or ``init_adapter`` does not fit it.
        TrainingError: ``out_dir`` holds another run's checkpoints or adapter, or is in use.
    """
    observer = observer or _Silent()
    check_rank(config.rank, limits.max_rank)
    if init_adapter is not None:
        check_rank(int(read_adapter_config(init_adapter)["r"]), limits.max_rank)
    dataset = load_dataset(dataset_dir)
    _check_size(len(dataset.train), limits.min_examples, dataset_dir, what="examples")
    validate_model_dir(base_dir, ref=base_ref)
    identity = training_identity(dataset.sha256, base_dir, config, init_adapter)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner-only: trained on transcripts
    with _exclusive(out_dir):
        finished = _read_json(out_dir / TRAINING_FILE)
        if finished is not None:
            if _differences(finished, identity):
                raise TrainingError(
                    f"{out_dir} holds an adapter trained differently "
                    f"({_differences(finished, identity)}); choose another output directory"
                )
            return TrainResult(out_dir, finished, already_trained=True)
        started = _read_json(out_dir / RUN_FILE)
        if started is not None and _differences(started, identity):
            raise TrainingError(
                f"{out_dir} holds checkpoints of a different training run "
                f"({_differences(started, identity)}); choose another output directory"
            )
        (out_dir / RUN_FILE).write_text(json.dumps(identity, indent=2) + "\n", encoding="utf-8")
        run = _Run(dataset, base_dir, out_dir, config, limits, identity, observer)
        return run.train(base_ref, init_adapter)


class _Run:
    """One training run's state; :meth:`train` does the work."""

    def __init__(
        self,
        dataset: LoadedDataset,
        base_dir: Path,
        out_dir: Path,
        config: TrainConfig,
        limits: TrainLimits,
        identity: dict[str, Any],
        observer: TrainObserver,
    ) -> None:
        self.dataset = dataset
        self.base_dir = base_dir
        self.out_dir = out_dir
        self.config = config
        self.limits = limits
        self.identity = identity
        self.observer = observer
        self.checkpoints = out_dir / CHECKPOINTS

    def train(self, base_ref: str, init_adapter: Path | None) -> TrainResult:
        import torch
        from transformers import AutoTokenizer, get_linear_schedule_with_warmup

        config = self.config
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        tokenizer = AutoTokenizer.from_pretrained(self.base_dir)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        train, skipped = self._tokenize(tokenizer, self.dataset.train)
        _check_size(
            len(train),
            self.limits.min_examples,
            self.dataset.directory,
            what=f"examples of at most {config.max_seq_tokens} tokens",
        )
        val, _ = self._tokenize(tokenizer, self.dataset.val)
        device = _device(config.device)
        model = self._load_lora_model(device, base_ref, init_adapter)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
        steps_per_epoch = math.ceil(len(train) / config.batch_size)
        total = steps_per_epoch * config.epochs
        scheduler = get_linear_schedule_with_warmup(
            optimizer, round(total * config.warmup_fraction), total
        )
        start, losses = self._resume(model, optimizer, scheduler, device)
        self.observer.started(TrainPlan(len(train), skipped, total, start, str(device)))

        began = time.perf_counter()
        model.train()
        for step in range(start + 1, total + 1):
            epoch, position = divmod(step - 1, steps_per_epoch)
            order = _epoch_order(len(train), config.seed, epoch)
            batch = [train[i] for i in order[position * config.batch_size :][: config.batch_size]]
            step_began = time.perf_counter()
            ids, mask, labels = (t.to(device) for t in pad_batch(batch, pad_id))
            with _autocast(device):
                loss, _ = answer_loss(model, ids, mask, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            saved = None
            if step % config.checkpoint_every == 0 and step < total:
                saved = self._checkpoint(step, model, optimizer, scheduler, losses, device)
            tokens = int(mask.sum())
            self.observer.step(
                StepReport(
                    step=step,
                    total_steps=total,
                    epoch=epoch + 1,
                    loss=losses[-1],
                    tokens_per_s=tokens / max(time.perf_counter() - step_began, 1e-9),
                    checkpoint=saved,
                )
            )
        metadata = {
            "base_model": base_ref,
            "base_model_dir": str(self.base_dir),
            "dataset": str(self.dataset.directory),
            **self.identity,
            "examples": len(train),
            "skipped_too_long": skipped,
            "steps": total,
            "resumed_from_step": start or None,
            "train_loss": _mean(losses[-steps_per_epoch:]),
            "val_loss": self._val_loss(model, val, pad_id, device),
            "val_examples": len(val),
            "loss_history": [round(loss, 4) for loss in losses],
            "train_seconds_this_run": round(time.perf_counter() - began, 1),
            "device": str(device),
            "versions": _versions(),
            "finished_at": datetime.now(UTC).isoformat(),
        }
        self._finish(model, metadata)
        return TrainResult(self.out_dir, metadata)

    def _resume(
        self, model: Any, optimizer: Any, scheduler: Any, device: Any
    ) -> tuple[int, list[float]]:
        """Restore the latest checkpoint, if any: the step to continue after, and the losses."""
        import torch
        from peft import set_peft_model_state_dict

        checkpoint = latest_checkpoint(self.checkpoints)
        if checkpoint is None:
            return 0, []
        state = load_state(checkpoint)
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])  # dropout draws continue where they stopped
        if "cuda_rng" in state and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"])
        return checkpoint.step, list(state["losses"])

    def _checkpoint(
        self,
        step: int,
        model: Any,
        optimizer: Any,
        scheduler: Any,
        losses: list[float],
        device: Any,
    ) -> Path:
        import torch

        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "losses": losses,
        }
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state()
        saved = save_checkpoint(self.checkpoints, step, model, state).path
        prune_checkpoints(self.checkpoints, self.config.keep_checkpoints)
        return saved

    def _tokenize(
        self, tokenizer: Any, examples: list[list[dict[str, str]]]
    ) -> tuple[list[TokenizedExample], int]:
        kept = []
        for messages in examples:
            tokenized = tokenize_chat(tokenizer, messages)
            if len(tokenized.input_ids) <= self.config.max_seq_tokens and tokenized.answer_tokens:
                kept.append(tokenized)
        return kept, len(examples) - len(kept)

    def _load_lora_model(self, device: Any, base_ref: str, init_adapter: Path | None) -> Any:
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        hf_logging.disable_progress_bar()  # the trainer's own progress is what users watch
        try:
            with MODEL_LOADING:
                base = AutoModelForCausalLM.from_pretrained(self.base_dir, dtype=dtype)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load base model from {self.base_dir}: {exc}") from exc
        base.config.use_cache = False
        torch.manual_seed(self.config.seed)  # LoRA's initial A matrices come from this
        with warnings.catch_warnings():
            # peft reads a transformers attribute that transformers 5 deprecates: not ours to fix
            warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
            model = self._with_lora(base, base_ref, init_adapter)
        return model.to(device)

    def _with_lora(self, base: Any, base_ref: str, init_adapter: Path | None) -> Any:
        from peft import LoraConfig, PeftModel, get_peft_model

        if init_adapter is not None:
            check_adapter_fits(base, init_adapter, name=str(init_adapter), base_ref=base_ref)
            with MODEL_LOADING:
                return PeftModel.from_pretrained(base, str(init_adapter), is_trainable=True)
        lora = LoraConfig(
            r=self.config.rank,
            lora_alpha=self.config.alpha,
            lora_dropout=self.config.dropout,
            target_modules=list(self.config.target_modules),
            task_type="CAUSAL_LM",
        )
        try:
            return get_peft_model(base, lora)
        except ValueError as exc:  # e.g. a target module the base does not have
            raise ModelError(f"cannot add LoRA to {base_ref!r}: {exc}") from exc

    def _val_loss(
        self, model: Any, val: list[TokenizedExample], pad_id: int, device: Any
    ) -> float | None:
        """Mean loss per answer token on the validation split (``None`` without one)."""
        import torch

        if not val:
            return None
        model.eval()
        total, tokens = 0.0, 0
        with torch.no_grad(), _autocast(device):
            for start in range(0, len(val), self.config.batch_size):
                batch = val[start : start + self.config.batch_size]
                ids, mask, labels = (t.to(device) for t in pad_batch(batch, pad_id))
                loss, count = answer_loss(model, ids, mask, labels)
                total += float(loss) * count
                tokens += count
        return total / tokens

    def _finish(self, model: Any, metadata: dict[str, Any]) -> None:
        """Write the adapter, then ``training.json`` (which marks the run done), then tidy up."""
        staging = self.out_dir / ".final.partial"
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        for file in staging.iterdir():
            file.replace(self.out_dir / file.name)
        staging.rmdir()
        (self.out_dir / TRAINING_FILE).write_text(
            json.dumps(metadata, indent=2) + "\n", encoding="utf-8"
        )
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        (self.out_dir / RUN_FILE).unlink(missing_ok=True)


def answer_loss(model: Any, ids: Any, mask: Any, labels: Any) -> tuple[Any, int]:
    """Mean cross-entropy over answer tokens, projecting to the vocabulary only there.

    Returns the loss and the number of answer tokens it averages over.
    """
    import torch.nn.functional as F

    base = model.get_base_model()
    hidden = base.get_decoder()(input_ids=ids, attention_mask=mask, use_cache=False)
    targets = labels[:, 1:]
    positions = targets != -100
    logits = base.get_output_embeddings()(hidden.last_hidden_state[:, :-1][positions])
    return F.cross_entropy(logits.float(), targets[positions]), int(positions.sum())


@functools.lru_cache(maxsize=2)
def _epoch_order(count: int, seed: int, epoch: int) -> tuple[int, ...]:
    """The example order of ``epoch``: a function of the seed alone, so a resumed run agrees."""
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return tuple(torch.randperm(count, generator=generator).tolist())


def _check_size(count: int, minimum: int, directory: Path, *, what: str) -> None:
    if count == 0:
        raise DatasetError(f"{directory} has no training {what}")
    if count < minimum:
        raise DatasetError(
            f"{directory} has {count} training {what}; at least {minimum} are needed "
            "(collect more transcripts, or lower UNDERSTUDY_DISTILL_MIN_EXAMPLES)"
        )


def _device(setting: str) -> Any:
    import torch

    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(
            "device 'cuda' was asked for but CUDA is not available", setting="--device"
        )
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(setting)


def _autocast(device: Any) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA (the base is loaded in bf16, LoRA weights stay fp32); none on CPU."""
    import torch

    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _base_fingerprint(base_dir: Path) -> str:
    """Identifies the base's architecture and weights cheaply: its config and weight sizes."""
    digest = hashlib.sha256((base_dir / "config.json").read_bytes())
    for weights in sorted(base_dir.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()


def _differences(recorded: dict[str, Any], identity: dict[str, Any]) -> str:
    changed = [key for key, value in identity.items() if recorded.get(key) != value]
    return ", ".join(f"{key}: {recorded.get(key)!r} → {identity[key]!r}" for key in changed)


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir`` for this process: two runs writing one directory would corrupt it."""
    lock = out_dir / ".lock"
    with lock.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrainingError(f"another training run is using {out_dir}") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{path}: unreadable ({exc}); move it away to train here") from exc
    return data if isinstance(data, dict) else None


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "peft": peft.__version__,
        "transformers": transformers.__version__,
    }
