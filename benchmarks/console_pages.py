"""Server time of the console's data pages with 100,000 runs in the store.

    PYTHONPATH=. python benchmarks/console_pages.py [--url sqlite+aiosqlite:////tmp/bench.db]
    PYTHONPATH=. python benchmarks/console_pages.py --url postgresql+asyncpg://127.0.0.1/test

Times what each page asks the database (the overview per window, a run search per filter, one
run's trace) 20 times each and prints p50/p95 in ms. The target: p95 ≤ 300 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert

from database import Database
from database.tables import FeedbackRow, RunRow
from orchestrator.transcripts import TranscriptStore
from orchestrator.transcripts.analytics import FeedbackFilter, RunAnalytics, RunFilter, Window

ROUTES = [
    "lead",
    "router",
    "cascade:lead",
    "cascade:accepted:math",
    "cascade:escalated:math",
    "slm:code",
    "cascade:accepted:email",
]


def _rows(n: int, now: datetime) -> list[dict[str, Any]]:
    rng = random.Random(1)
    rows = []
    for i in range(n):
        route = rng.choice(ROUTES)
        rows.append(
            {
                "id": uuid.uuid4().hex,
                "mode": route.split(":")[0] if ":" in route else "llm",
                "input_messages": [{"role": "user", "content": f"question {i} " + "x" * 200}],
                "answer": f"answer {i}",
                "route": route,
                "specialists": ["math"],
                "escalated": "escalated" in route,
                "degraded": rng.random() < 0.01,
                "confidence": rng.random(),
                "lead_input_tokens": 100,
                "lead_output_tokens": 20,
                "slm_prompt_tokens": 50,
                "slm_completion_tokens": 10,
                "cost_usd": rng.random() / 1000,
                "lead_only_cost_usd": 0.001,
                "latency_ms": rng.expovariate(1 / 400),
                "error": None,
                "failure_kind": None,
                "route_scores": None,
                "finish_reason": "stop",
                "app_tool_calls": None,
                "lead_turn": None,
                "owner_key_id": None,
                "continues_run_id": None,
                "created_at": now - timedelta(seconds=rng.uniform(0, 8 * 86400)),
            }
        )
    return rows


async def _timed(fn: Callable[[], Awaitable[Any]], repeat: int = 20) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * len(times)) - 1]


async def main(url: str, runs: int) -> None:
    database = await Database.open(url)
    now = datetime.now(UTC)
    async with database.engine.begin() as connection:
        await connection.execute(delete(FeedbackRow))
        await connection.execute(delete(RunRow))
        rows = _rows(runs, now)
        for start in range(0, runs, 5000):
            await connection.execute(insert(RunRow), rows[start : start + 5000])
        await connection.execute(
            insert(FeedbackRow),
            [
                {"run_id": r["id"], "score": -1.0, "comment": None, "created_at": now}
                for r in rows[::100]
            ],
        )
    analytics, store = RunAnalytics(database), TranscriptStore(database)
    some_run = rows[0]["id"]
    pages: dict[str, Callable[[], Awaitable[Any]]] = {
        **{f"overview {w.name}": (lambda w=w: analytics.overview(w)) for w in Window},
        "runs (no filter)": lambda: analytics.search(RunFilter()),
        "runs route=specialist:math": lambda: analytics.search(RunFilter(route="specialist:math")),
        "runs degraded": lambda: analytics.search(RunFilter(degraded=True)),
        "runs feedback=negative": lambda: analytics.search(
            RunFilter(feedback=FeedbackFilter.negative)
        ),
        "runs text (common)": lambda: analytics.search(RunFilter(text="answer 1")),
        "runs text (absent)": lambda: analytics.search(RunFilter(text="no such words")),
        "run trace": lambda: store.get_run(some_run),
    }
    print(f"{database.dialect}, {runs} runs")
    for name, fn in pages.items():
        p50, p95 = await _timed(fn)
        print(f"  {name:32s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    await database.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="sqlite+aiosqlite:////tmp/understudy-console-bench.db")
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.runs))
