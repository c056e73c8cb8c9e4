"""LoRA training on a tiny real Llama: it learns, it resumes exactly, and bad input is refused."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from distill.config import TrainConfig, TrainLimits
from distill.dataset import load_dataset
from distill.training import StepReport, TrainPlan, train_lora
from specialists.adapters import adapter_sha256, check_adapter_fits, read_adapter_config
from specialists.catalog import Specialist
from specialists.errors import ConfigurationError, DatasetError, ModelError, TrainingError
from specialists.local import LocalBackend
from specialists.sampling import Sampling
from tests.distill.dataset.helpers import saved_dataset, sums
from tests.helpers.models import build_random_lora, build_tiny_llama

CONFIG = TrainConfig(epochs=2, batch_size=4, learning_rate=1e-2, checkpoint_every=3)
LIMITS = TrainLimits(max_rank=16, min_examples=8)


class Crash(Exception):
    """Stands for a killed process."""


class Recorder:
    """Records what the trainer reports; raises :class:`Crash` at ``crash_at``."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.crash_at = crash_at
        self.plans: list[TrainPlan] = []
        self.reports: list[StepReport] = []

    def started(self, plan: TrainPlan) -> None:
        self.plans.append(plan)

    def step(self, report: StepReport) -> None:
        self.reports.append(report)
        if report.step == self.crash_at:
            raise Crash


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_dataset(tmp_path_factory.mktemp("datasets"), sums(24))


def train(dataset: Path, base: Path, out: Path, config=CONFIG, limits=LIMITS, **kwargs):
    return train_lora(dataset, base, out, config, limits, base_ref="tiny", **kwargs)


async def test_training_lowers_the_loss_and_leaves_a_servable_adapter(
    tmp_path: Path, tiny_model_dir: Path, dataset_dir: Path
) -> None:
    recorder = Recorder()
    result = train(dataset_dir, tiny_model_dir, tmp_path / "adapter", observer=recorder)

    plan = recorder.plans[0]
    examples = len(load_dataset(dataset_dir).train)
    assert plan.examples == examples and plan.start_step == 0 and plan.device == "cpu"
    per_epoch = -(-examples // CONFIG.batch_size)
    assert plan.total_steps == 2 * per_epoch == len(recorder.reports)
    history = result.metadata["loss_history"]
    assert sum(history[-per_epoch:]) / per_epoch < sum(history[:per_epoch]) / per_epoch - 0.05
    assert [r.checkpoint is not None for r in recorder.reports] == [
        step % 3 == 0 and step < plan.total_steps for step in range(1, plan.total_steps + 1)
    ]

    adapter = result.adapter_dir
    assert stat.S_IMODE(adapter.stat().st_mode) == 0o700  # owner-only: made from transcripts
    assert sorted(p.name for p in adapter.iterdir() if p.name != "README.md") == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "training.json",
    ]  # checkpoints, run.json and the lock are gone
    assert read_adapter_config(adapter)["r"] == 16
    recorded = json.loads((adapter / "training.json").read_text())
    assert recorded["dataset_sha256"] == load_dataset(dataset_dir).sha256
    assert recorded["base_model"] == "tiny" and recorded["rank"] == 16
    assert recorded["examples"] == examples and recorded["val_loss"] > 0
    check_adapter_fits(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter, name="math", base_ref="tiny"
    )

    backend = LocalBackend(tiny_model_dir, base_ref="tiny")
    try:
        specialist = Specialist("math", "d", "Reply with the number.", adapter=adapter)
        generation = await backend.generate(
            specialist,
            [{"role": "user", "content": "What is 2 plus 2?"}],
            sampling=Sampling(max_tokens=4),
        )
    finally:
        await backend.aclose()
    assert generation.model == f"math@{adapter_sha256(adapter)[:8]}"  # served by its content
    assert generation.usage.completion_tokens > 0


def test_an_interrupted_run_resumes_to_exactly_the_uninterrupted_adapter(
    tmp_path: Path, tiny_model_dir: Path, dataset_dir: Path
) -> None:
    straight = train(dataset_dir, tiny_model_dir, tmp_path / "straight")

    with pytest.raises(Crash):
        train(dataset_dir, tiny_model_dir, tmp_path / "resumed", observer=Recorder(crash_at=7))
    checkpoints = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert checkpoints == ["step-0000003", "step-0000006"]

    recorder = Recorder()
    resumed = train(dataset_dir, tiny_model_dir, tmp_path / "resumed", observer=recorder)
    assert recorder.plans[0].start_step == 6 and recorder.reports[0].step == 7
    assert resumed.metadata["resumed_from_step"] == 6
    assert resumed.metadata["loss_history"] == straight.metadata["loss_history"]
    ours = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    theirs = load_file(straight.adapter_dir / "adapter_model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_repeating_a_finished_run_does_nothing_and_a_different_one_is_refused(
    tmp_path: Path, tiny_model_dir: Path, dataset_dir: Path
) -> None:
    config = replace(CONFIG, epochs=1)
    first = train(dataset_dir, tiny_model_dir, tmp_path / "out", config)
    recorder = Recorder()
    again = train(dataset_dir, tiny_model_dir, tmp_path / "out", config, observer=recorder)
    assert again.already_trained and not recorder.plans
    assert again.metadata == first.metadata
    with pytest.raises(TrainingError, match=r"trained differently \(rank: 16 → 8\)"):
        train(dataset_dir, tiny_model_dir, tmp_path / "out", replace(config, rank=8))


def test_a_rank_above_the_servers_maximum_is_refused_before_anything_loads(
    tmp_path: Path, dataset_dir: Path
) -> None:
    with pytest.raises(ConfigurationError, match="rank 32 is above the SLM server's maximum of 16"):
        train(dataset_dir, tmp_path / "no-model", tmp_path / "out", replace(CONFIG, rank=32))
    assert not (tmp_path / "out").exists()


def test_an_adapter_to_continue_must_fit_the_base_and_the_server(
    tmp_path: Path, smollm2_dir: Path, tiny_model_dir: Path, dataset_dir: Path
) -> None:
    other_base = build_tiny_llama(smollm2_dir, tmp_path / "other-base", hidden=32)
    foreign = build_random_lora(other_base, tmp_path / "foreign", rank=8)
    with pytest.raises(ModelError, match="does not fit base 'tiny'"):
        train(dataset_dir, tiny_model_dir, tmp_path / "out", init_adapter=foreign)
    too_big = build_random_lora(tiny_model_dir, tmp_path / "big", rank=32)
    with pytest.raises(ConfigurationError, match="rank 32"):
        train(dataset_dir, tiny_model_dir, tmp_path / "out2", init_adapter=too_big)


def test_too_little_data_is_refused(tmp_path: Path, tiny_model_dir: Path, dataset_dir: Path):
    examples = len(load_dataset(dataset_dir).train)
    with pytest.raises(DatasetError, match=f"has {examples} training examples; at least 1000"):
        train(
            dataset_dir, tiny_model_dir, tmp_path / "a", limits=replace(LIMITS, min_examples=1000)
        )
    with pytest.raises(DatasetError, match="no training examples of at most 16 tokens"):
        train(dataset_dir, tiny_model_dir, tmp_path / "b", replace(CONFIG, max_seq_tokens=16))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.jsonl").write_text("")
    with pytest.raises(DatasetError, match="has no training examples"):
        train(empty, tiny_model_dir, tmp_path / "c")


def test_a_missing_base_model_is_a_model_error(tmp_path: Path, dataset_dir: Path) -> None:
    (tmp_path / "base").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        train(dataset_dir, tmp_path / "base", tmp_path / "out")


def test_a_directory_in_use_by_another_run_is_refused(
    tmp_path: Path, tiny_model_dir: Path, dataset_dir: Path
) -> None:
    import fcntl

    out = tmp_path / "busy"
    out.mkdir()
    with (out / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TrainingError, match="another training run is using"):
            train(dataset_dir, tiny_model_dir, out)


@pytest.mark.parametrize(
    "fields",
    [{"rank": 0}, {"learning_rate": 0.0}, {"dropout": 1.0}, {"threads": 0}, {"target_modules": ()}],
)
def test_impossible_hyperparameters_are_refused(fields: dict) -> None:
    with pytest.raises(ConfigurationError):
        TrainConfig(**fields)
