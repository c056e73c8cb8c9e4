"""``understudy distill build`` and ``train`` as users run them: a real store, a real model."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from database import Database
from distill.registry import ProposalDraft, RegistryStore
from orchestrator.transcripts import RunRecord, TranscriptStore
from tests.distill.test_reconcile import MUSEUM
from tests.helpers.cli import understudy
from tests.helpers.stores import open_store
from tools.context import ToolCall

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


async def seed(url: str, count: int, specialist: str = "math", asked: str = "") -> None:
    """``count`` runs where the lead corrected ``specialist``, one with an email in it; the
    lead's request to the specialist is the question after ``asked``."""
    store = await open_store(TranscriptStore, url)
    try:
        for i in range(count):
            question = f"What is {i * 37 % 101} plus {i * 53 % 97}?"
            if i == 0:
                question = "Ask ops@example.com: " + question
            await store.save_run(
                RunRecord(
                    run_id=f"{specialist}-run-{i}",
                    mode="cascade",
                    input_messages=[{"role": "user", "content": question}],
                    answer=str(i * 37 % 101 + i * 53 % 97),
                    route=f"cascade:escalated:{specialist}",
                    specialists=[specialist],
                    escalated=True,
                    degraded=False,
                    confidence=0.3,
                    lead_input_tokens=20,
                    lead_output_tokens=3,
                    slm_prompt_tokens=10,
                    slm_completion_tokens=4,
                    cost_usd=0.0001,
                    lead_only_cost_usd=0.0002,
                    latency_ms=50.0,
                    created_at=EPOCH + timedelta(minutes=i),
                    tool_calls=[
                        ToolCall(
                            f"{specialist}_specialist",
                            {"request": asked + question},
                            "12",
                            40.0,
                            0.3,
                        )
                    ],
                )
            )
    finally:
        await store.database.close()


@pytest.fixture
def env(isolated_env: Path, tiny_model_dir: Path) -> dict[str, str]:
    url = f"sqlite+aiosqlite:///{isolated_env / 'understudy.db'}"
    asyncio.run(seed(url, 30))
    return {
        "UNDERSTUDY_DATABASE_URL": url,
        "UNDERSTUDY_SLM_BASE_MODEL": str(tiny_model_dir),
        "UNDERSTUDY_DISTILL_MIN_EXAMPLES": "8",
        "UNDERSTUDY_DISTILL_CHECKPOINT_EVERY": "2",
    }


def test_build_then_train_then_train_again(env: dict[str, str], isolated_env: Path) -> None:
    built = understudy("distill", "build", "--specialist", "math", "--json", env=env)
    assert built.returncode == 0, built.stderr
    card = json.loads(built.stdout)
    assert card["examples"] == 30 and card["pii_replaced"] == {"email": 1}
    dataset = Path(card["path"])
    assert dataset.parent == isolated_env / "datasets" / "math"
    assert (
        "ops@example.com"
        not in (dataset / "train.jsonl").read_text()
        + (dataset / "val.jsonl").read_text()
        + (dataset / "test.jsonl").read_text()
    )

    trained = understudy("distill", "train", "-s", "math", "--epochs", "1", "--json", env=env)
    assert trained.returncode == 0, trained.stderr
    metadata = json.loads(trained.stdout)
    adapter = Path(metadata["path"])
    assert adapter.parent == isolated_env / "adapters" / "math"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert metadata["dataset_sha256"] == card["sha256"] and metadata["rank"] == 16
    assert "training" in trained.stderr  # the progress bar goes to stderr

    again = understudy("distill", "train", "-s", "math", "--epochs", "1", env=env)
    assert again.returncode == 0, again.stderr
    assert "already trained" in again.stdout and str(adapter) in again.stdout

    too_few = understudy(
        "distill", "train", "-s", "math", env={**env, "UNDERSTUDY_DISTILL_MIN_EXAMPLES": "500"}
    )
    assert too_few.returncode == 1 and "at least 500 are needed" in too_few.stderr


def test_bad_input_is_one_clear_line(env: dict[str, str]) -> None:
    nothing = understudy("distill", "build", "--specialist", "code", env=env)
    assert nothing.returncode == 1
    assert "error: no usable transcripts for 'code': 0 read" in nothing.stderr
    assert "Traceback" not in nothing.stderr

    no_dataset = understudy("distill", "train", "--specialist", "math", env=env)
    assert no_dataset.returncode == 1
    assert "understudy distill build --specialist math" in no_dataset.stderr

    too_high = understudy("distill", "train", "--specialist", "math", "--rank", "32", env=env)
    assert too_high.returncode == 1
    assert "rank 32 is above" in too_high.stderr
    assert "UNDERSTUDY_SLM_MAX_LORA_RANK" in too_high.stderr


async def propose(url: str, run_ids: list[str]) -> int:
    """A stored proposal over ``run_ids``, as `distill propose` would leave it."""
    store = await open_store(TranscriptStore, url)
    try:
        registry = RegistryStore(store.database)
        draft = ProposalDraft(
            name="sums",
            description="Adds two numbers.",
            examples=("What is 1 plus 2?",),
            run_ids=tuple(run_ids),
            lead_cost_usd=0.01,
            window_days=1.0,
            monthly_savings_usd=0.3,
            validator="numeric_answer",
        )
        (proposal,) = await registry.replace_open_proposals([draft])
        return proposal.id
    finally:
        await store.database.close()


async def define_museum(url: str) -> None:
    async with await Database.open(url) as registry_database:
        registry = RegistryStore(registry_database)
        await registry.define_specialist(MUSEUM)


def test_a_proposal_builds_from_its_own_runs(env: dict[str, str], isolated_env: Path) -> None:
    url = env["UNDERSTUDY_DATABASE_URL"]
    proposal = asyncio.run(propose(url, [f"math-run-{i}" for i in range(10, 30)]))
    built = understudy("distill", "build", "--proposal", str(proposal), "--json", env=env)
    assert built.returncode == 0, built.stderr
    card = json.loads(built.stdout)
    assert card["name"] == "sums" and card["selection"] == "20 chosen runs"
    assert card["examples"] == 20 and card["sources"] == {"lead": 20}  # the lead answered them
    assert Path(card["path"]).parent == isolated_env / "datasets" / "sums"
    system = json.loads((Path(card["path"]) / "train.jsonl").read_text().splitlines()[0])
    assert system["messages"][0]["content"].startswith("You handle sums requests.")

    # Building registered the proposed specialist: `train` knows it (and checks the rank next).
    trained = understudy("distill", "train", "--specialist", "sums", "--rank", "32", env=env)
    assert trained.returncode == 1
    assert "rank 32 is above" in trained.stderr, trained.stderr

    neither = understudy("distill", "build", env=env)
    assert neither.returncode == 2 and "--specialist NAME or --proposal ID" in neither.stderr


def test_a_specialist_only_the_registry_knows_builds_from_its_delegations(
    env: dict[str, str],
) -> None:
    """Tool calls to a registered (not built-in) specialist map to it, as in distillation jobs:
    each example's user turn is what the lead asked the specialist, not the user's message."""
    url = env["UNDERSTUDY_DATABASE_URL"]
    asyncio.run(seed(url, 12, specialist="museum", asked="For the museum desk: "))
    asyncio.run(define_museum(url))
    built = understudy("distill", "build", "--specialist", "museum", "--json", env=env)
    assert built.returncode == 0, built.stderr
    card = json.loads(built.stdout)
    assert card["name"] == "museum" and card["examples"] == 12
    directory = Path(card["path"])
    lines = [
        json.loads(line)
        for split in ("train", "val", "test")
        if (directory / f"{split}.jsonl").exists()
        for line in (directory / f"{split}.jsonl").read_text().splitlines()
    ]
    users = [line["messages"][1]["content"] for line in lines]
    assert len(users) == 12 and all(u.startswith("For the museum desk: ") for u in users)
