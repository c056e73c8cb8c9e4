"""Distillation end to end on SmolLM2-135M: held-out exact match before and after LoRA training
on transcripts, with the training time (wall and CPU).

The task is one a product user sends over and over: *when is this invoice due?* — an email in,
the due date out as ``YYYY-MM-DD``. Emails vary in wording, date format (``March 3, 2025``,
``3 Mar 2025``, ``the 3rd of March, 2025``, ``2025/03/03``, …), a distracting second date
(issued, delivered), an amount, and sometimes a signature with a phone number or an email
address (scrubbed from the dataset). They are generated deterministically from a seed.

The transcript store is real (SQLite) and is seeded with runs the lead "answered", shaped as the
orchestrator records them: mostly cascade escalations (the specialist's draft was rejected, the
lead answered) and router delegations (the lead sent the specialist a rephrased task, then
answered), plus the noise of real traffic — failed and degraded runs, wrong answers users
flagged, refusals the validator rejects, resent emails, specialist answers nobody confirmed. The
dataset is built from the store by the product's builder; its held-out test split is scored
against the true dates, with the product's local backend, before and after training.

    python benchmarks/distill_smollm2.py                     # ~15 min on 2 CPU cores
    python benchmarks/distill_smollm2.py --runs 600 --epochs 1 --out /tmp/bench   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from database import Database
from distill.config import DatasetOptions, TrainConfig, TrainLimits
from distill.dataset import BuiltDataset, DistillTarget, build_dataset, save_dataset
from distill.source import read_transcripts
from distill.training import StepReport, TrainPlan, train_lora
from orchestrator.outcome import Failure, FailureKind
from orchestrator.transcripts import RunRecord, TranscriptStore
from specialists.catalog import Catalog, Specialist
from specialists.local import LocalBackend
from specialists.model_store import ModelStore
from specialists.pull import pull_model
from specialists.sampling import Sampling
from tools.context import ToolCall

console = Console(stderr=True)

SPECIALIST = "due_date"
SYSTEM_PROMPT = "Reply with the invoice's due date as YYYY-MM-DD."
NAMES = ["Sam", "Priya", "Jonas", "Mei", "Carlos", "Fatima", "Olivia", "Tariq", "Lena", "Kofi"]
SENDERS = ["Ana Ruiz", "Ben Okafor", "Chloe Martin", "Dmitri Ivanov", "Erin Walsh", "Farah Khan"]
COMPANIES = ["Northwind Ltd", "Acme Design", "Blue Harbor", "Kestrel Labs", "Lumen & Co"]
SERVICES = [
    "the March consulting work",
    "website maintenance",
    "the catering on Friday",
    "office cleaning",
    "the translation project",
    "two days of training",
    "hosting",
    "the spring photo shoot",
    "legal review",
    "the replacement parts",
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
QUESTIONS = [
    "When is this invoice due? Reply with the date as YYYY-MM-DD.",
    "What's the due date of this invoice (YYYY-MM-DD)?",
    "Give me the payment due date from this email, as YYYY-MM-DD.",
    "Extract the due date (ISO 8601) from the email below.",
]
DELEGATED = "Extract the payment due date from this email as YYYY-MM-DD:\n\n{email}"


def ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


DATE_FORMATS = [
    lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",
    lambda d: f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}",
    lambda d: f"{MONTHS[d.month - 1]} {ordinal(d.day)}, {d.year}",
    lambda d: f"the {ordinal(d.day)} of {MONTHS[d.month - 1]}, {d.year}",
    lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",
    lambda d: f"{d.strftime('%A')}, {MONTHS[d.month - 1]} {d.day}, {d.year}",
]
DUE_SENTENCES = [
    "Payment is due on {date}.",
    "Please pay by {date}.",
    "The due date is {date}.",
    "Kindly settle it by {date}.",
    "It is payable no later than {date}.",
]
OTHER_SENTENCES = [
    "The work was completed on {date}.",
    "Invoice date: {date}.",
    "We delivered everything on {date}.",
    "This covers the period ending {date}.",
]


@dataclass(frozen=True)
class Item:
    email: str
    due: str
    """The true due date, ISO 8601."""
    distractor: str | None


def make_item(rng: random.Random) -> Item:
    """One invoice email with its true due date."""
    due = date(2024, 1, 1) + timedelta(days=rng.randrange(4 * 365))
    fmt = rng.choice(DATE_FORMATS)
    lines = [f"{rng.choice(['Hi', 'Hello', 'Dear'])} {rng.choice(NAMES)},"]
    body = [
        f"Please find attached invoice #{rng.randrange(1000, 99999)} for {rng.choice(SERVICES)}.",
        f"The total is {rng.choice('$€£')}{rng.randrange(80, 9000):,}.{rng.randrange(100):02d}.",
        rng.choice(DUE_SENTENCES).format(date=fmt(due)),
    ]
    distractor = None
    if rng.random() < 0.5:
        other = due - timedelta(days=rng.randrange(7, 60))
        distractor = other.isoformat()
        body.insert(rng.randrange(len(body)), rng.choice(OTHER_SENTENCES).format(date=fmt(other)))
    lines.append(" ".join(body))
    sender = rng.choice(SENDERS)
    signature = f"Thanks,\n{sender}, {rng.choice(COMPANIES)}"
    if rng.random() < 0.25:
        first = sender.split()[0].lower()
        signature += rng.choice(
            [
                f"\n{first}@{rng.choice(['northwind.com', 'acme.io', 'mail.example.org'])}",
                f"\nTel. +1 415-555-{rng.randrange(100, 199):04d}",
            ]
        )
    lines.append(signature)
    return Item("\n".join(lines), due.isoformat(), distractor)


# ------------------------------------------------------------------------------- transcripts


def make_runs(count: int, seed: int) -> tuple[list[RunRecord], dict[str, str], dict[str, float]]:
    """``count`` runs as the orchestrator records them, each run's true due date, and the
    feedback users gave."""
    rng = random.Random(seed)
    runs: list[RunRecord] = []
    truth: dict[str, str] = {}
    feedback: dict[str, float] = {}
    started = datetime(2026, 9, 1, tzinfo=UTC)
    question = ""
    item: Item | None = None
    for index in range(count):
        if item is None or rng.random() >= 0.02:  # else: the same email sent again
            item = make_item(rng)
            question = f"{rng.choice(QUESTIONS)}\n\n{item.email}"
        run_id = f"bench-{index:05d}"
        truth[run_id] = item.due
        answer: str | None = item.due
        failure: Failure | None = None
        degraded = False
        tool = f"{SPECIALIST}_specialist"
        route, tools = (
            f"cascade:escalated:{SPECIALIST}",
            [ToolCall(tool, {"request": question}, "", 900.0, 0.4)],
        )
        roll = rng.random()
        if roll < 0.20:  # the lead delegated a rephrased task, then answered
            route = "router"
            tools = [ToolCall(tool, {"request": DELEGATED.format(email=item.email)}, "", 9.0)]
        elif roll < 0.25:  # the specialist answered alone; users confirmed half of those
            route = f"cascade:accepted:{SPECIALIST}"
            if rng.random() < 0.5:
                feedback[run_id] = 1.0
        elif roll < 0.28:
            answer = None
            failure = Failure(FailureKind.lead_timeout, "lead failed: APITimeoutError")
        elif roll < 0.30:
            answer, degraded = "The due date is soon.", True
            failure = Failure(FailureKind.lead_unavailable, "degraded: lead failed")
        elif roll < 0.33:  # the lead picked the wrong date and the user said so
            answer = item.distractor or (date.fromisoformat(item.due) + timedelta(1)).isoformat()
            feedback[run_id] = -1.0
        elif roll < 0.35:  # a refusal: the validator wants a date (a number)
            answer = "I could not find a due date in this email."
        runs.append(
            RunRecord(
                run_id=run_id,
                mode="router" if route == "router" else "cascade",
                input_messages=[{"role": "user", "content": question}],
                answer=answer,
                route=route,
                specialists=[SPECIALIST],
                escalated=route.startswith("cascade:escalated"),
                degraded=degraded,
                confidence=0.4,
                lead_input_tokens=400,
                lead_output_tokens=12,
                slm_prompt_tokens=120,
                slm_completion_tokens=12,
                cost_usd=0.0001,
                lead_only_cost_usd=0.00012,
                latency_ms=1500.0,
                failure=failure,
                created_at=started + timedelta(minutes=index),
                tool_calls=tools,
            )
        )
    return runs, truth, feedback


async def seed_store(url: str, runs: list[RunRecord], feedback: dict[str, float]) -> None:
    store = TranscriptStore(await Database.open(url))
    try:
        for run in runs:
            await store.save_run(run)
            if run.run_id in feedback:
                await store.add_feedback(run.run_id, feedback[run.run_id])
    finally:
        await store.database.close()


async def read_from_store(url: str, catalog: Catalog, limit: int) -> list[Any]:
    store = TranscriptStore(await Database.open(url))
    try:
        return await read_transcripts(store, catalog, specialist=SPECIALIST, max_runs=limit)
    finally:
        await store.database.close()


# ------------------------------------------------------------------------------------ scoring


async def exact_match(
    model_dir: Path, specialist: Specialist, items: list[tuple[str, str]], label: str
) -> tuple[float, list[str]]:
    """Share of ``items`` (request, truth) answered exactly, greedy, by the local backend."""
    backend = LocalBackend(model_dir, base_ref="smollm2-135m", max_batch_size=16)
    try:
        with Progress(
            TextColumn(f"scoring {label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(label, total=len(items))

            async def one(request: str) -> str:
                generation = await backend.generate(
                    specialist,
                    [{"role": "user", "content": request}],
                    sampling=Sampling(max_tokens=16),
                )
                progress.advance(task)
                return generation.text.strip()

            answers = await asyncio.gather(*(one(request) for request, _ in items))
    finally:
        await backend.aclose()
    hits = sum(answer == truth for answer, (_, truth) in zip(answers, items, strict=True))
    return hits / len(items), answers


class BarObserver:
    """Training progress as a rich bar with the step's loss."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("training", total=None)

    def started(self, plan: TrainPlan) -> None:
        self.progress.update(self.task, total=plan.total_steps, completed=plan.start_step)

    def step(self, report: StepReport) -> None:
        self.progress.update(
            self.task, completed=report.step, description=f"training · loss {report.loss:.3f}"
        )


def cpu_seconds() -> float:
    """CPU time of this process, all threads, user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------- main


def catalog_with_specialist() -> Catalog:
    """The built-in catalog plus the new specialist, added the way users add one."""
    return Catalog.default().with_overrides(
        {
            SPECIALIST: {
                "description": "Extracts the due date of an invoice email.",
                "system_prompt": SYSTEM_PROMPT,
                "validator": "numeric_answer",  # a refusal has no number in it
                "generation": {"max_tokens": 16},
            }
        }
    )


def build_from_store(work: Path, runs: int, seed: int) -> tuple[BuiltDataset, Path, dict[str, str]]:
    """Seed the store, read it back and build the dataset: the product's path end to end."""
    url = f"sqlite+aiosqlite:///{work / 'transcripts.db'}"
    records, truth, feedback = make_runs(runs, seed)
    if not (work / "transcripts.db").exists():
        asyncio.run(seed_store(url, records, feedback))
    catalog = catalog_with_specialist()
    specialist = catalog.get(SPECIALIST)
    transcripts = asyncio.run(read_from_store(url, catalog, runs))
    target = DistillTarget(SPECIALIST, SYSTEM_PROMPT, validator=specialist.validator)
    options = DatasetOptions(val_fraction=0.05, test_fraction=0.15)
    built = build_dataset(transcripts, target, options)
    directory = save_dataset(built, work / "datasets" / built.card.sha256[:12])
    return built, directory, truth


def train(
    dataset_dir: Path, base_dir: Path, out: Path, config: TrainConfig
) -> tuple[Any, float, float]:
    """Train with a progress bar; the result, wall seconds and CPU seconds."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        cpu, wall = cpu_seconds(), time.perf_counter()
        result = train_lora(
            dataset_dir,
            base_dir,
            out,
            config,
            TrainLimits(max_rank=64, min_examples=32),
            base_ref="smollm2-135m",
            observer=BarObserver(progress),
        )
        return result, time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1700, help="transcripts seeded in the store")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (on a shared 2-core box, two threads burn CPU waiting on each "
        "other: one gives the most tokens per CPU-second)",
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=Path("~/.understudy/models").expanduser(),
        help="model store holding (or to receive) smollm2-135m",
    )
    parser.add_argument("--out", type=Path, help="working directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    base_dir = pull_model("smollm2-135m", ModelStore(args.models), log=console.print).path
    work = args.out or Path(tempfile.mkdtemp(prefix="distill-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    built, dataset_dir, truth = build_from_store(work, args.runs, args.seed)
    card = built.card
    splits = {name: split.examples for name, split in card.splits.items()}
    left_out = {reason: n for reason, n in card.rejected.items() if n}
    console.print(
        f"dataset: {card.examples} examples {splits} · left out {left_out} · "
        f"PII {card.pii_replaced}"
    )
    test = [(example.user, truth[example.run_id]) for example in built.splits["test"]]
    specialist = catalog_with_specialist().get(SPECIALIST)
    before, answers_before = asyncio.run(exact_match(base_dir, specialist, test, "before"))
    console.print(f"before: {before:.1%} exact match on {len(test)} held-out emails")

    config = TrainConfig(
        rank=args.rank,
        alpha=2 * args.rank,
        learning_rate=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        checkpoint_every=100,
        threads=args.threads,
    )
    result, train_wall, train_cpu = train(dataset_dir, base_dir, work / "adapter", config)
    trained = replace(specialist, adapter=result.adapter_dir)
    after, answers_after = asyncio.run(exact_match(base_dir, trained, test, "after"))

    figures = {
        "task": "invoice email -> due date (YYYY-MM-DD), exact match against the true date",
        "runs_seeded": args.runs,
        "dataset": {
            "splits": splits,
            "left_out": card.rejected,
            "pii_replaced": card.pii_replaced,
            "sha256": card.sha256,
        },
        "held_out": len(test),
        "before": before,
        "after": after,
        "gain_points": round(100 * (after - before), 1),
        "train_examples": result.metadata["examples"],
        "train_steps": result.metadata["steps"],
        "train_wall_s": round(train_wall, 1),
        "train_cpu_s": round(train_cpu, 1),
        "torch_threads": args.threads,
        "train_loss": result.metadata["train_loss"],
        "val_loss": result.metadata["val_loss"],
        "config": config.identity(),
        "total_wall_s": round(time.perf_counter() - started, 1),
        "total_cpu_s": round(cpu_seconds(), 1),
        "samples": [
            {"truth": truth, "before": first, "after": second}
            for (_, truth), first, second in zip(
                test[:5], answers_before, answers_after, strict=False
            )
        ],
    }
    table = Table("held-out exact match", "before", "after", "gain", "train wall", "train CPU")
    table.add_row(
        f"{len(test)} emails",
        f"{before:.1%}",
        f"{after:.1%}",
        f"+{figures['gain_points']} pts",
        f"{train_wall / 60:.1f} min",
        f"{train_cpu / 60:.1f} min",
    )
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
