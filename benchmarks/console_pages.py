"""Server time of every console page with 100,000 runs over 8 days in the store.

    PYTHONPATH=. python benchmarks/console_pages.py [--url sqlite+aiosqlite:////tmp/bench.db]
    PYTHONPATH=. python benchmarks/console_pages.py --url postgresql+asyncpg://postgres@127.0.0.1/test

Fills the store (runs, their rollup, feedback on one in a hundred), starts the real app
(``create_app``, lifespan included) in process, signs in through the login form with an admin
key, and times ``GET /console/…`` for each page 20 times (ASGI in process: the server's time,
no network). Prints p50/p95 in ms. The target: p95 ≤ 300 ms on 2 cores. The database's runs,
feedback and rollups are replaced; point it at a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, insert

from database import Database
from database.tables import FeedbackRow, RunFigures, RunRow, add_rollups, rollup_rows, run_rollups
from serving.api.app import create_app
from serving.keys import KeyStore
from serving.settings import Settings

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


def _timed(get: Callable[[], Any], repeat: int = 20) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = get()
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    times.sort()
    return statistics.median(times), times[math.ceil(0.95 * len(times)) - 1]


async def _fill(url: str, runs: int, now: datetime) -> tuple[str, str]:
    """The store's runs, rollups and feedback; an admin key. Returns (a run id, the key)."""
    database = await Database.open(url)
    async with database.engine.begin() as connection:
        for table in (FeedbackRow.__table__, RunRow.__table__, run_rollups):
            await connection.execute(delete(table))
        rows = _rows(runs, now)
        upsert = add_rollups(database.dialect)
        for start in range(0, runs, 5000):
            chunk = rows[start : start + 5000]
            await connection.execute(insert(RunRow), chunk)
            await connection.execute(upsert, rollup_rows(_figures(r) for r in chunk))
        await connection.execute(
            insert(FeedbackRow),
            [
                {"run_id": r["id"], "score": -1.0, "comment": None, "created_at": now}
                for r in rows[::100]
            ],
        )
    _, admin = await KeyStore(database).create("bench-operator", admin=True)
    await database.close()
    return rows[0]["id"], admin


def _figures(row: dict[str, Any]) -> RunFigures:
    return RunFigures(
        created_at=row["created_at"],
        route=row["route"],
        escalated=row["escalated"],
        degraded=row["degraded"],
        failed=row["failure_kind"] is not None,
        cost_usd=row["cost_usd"],
        lead_only_cost_usd=row["lead_only_cost_usd"],
        latency_ms=row["latency_ms"],
    )


def main(url: str, runs: int, home: str) -> None:
    now = datetime.now(UTC)
    some_run, admin = asyncio.run(_fill(url, runs, now))
    os.environ.update(
        UNDERSTUDY_DATABASE_URL=url,
        UNDERSTUDY_HOME=home,
        UNDERSTUDY_LEAD_MODEL="gpt-4o-mini",
        UNDERSTUDY_LEAD_BASE_URL="http://127.0.0.1:9/v1",  # never called
    )
    pages = {
        **{f"overview {w}": f"/console/?window={w}" for w in ("hour", "day", "week")},
        "overview panel (poll), week": "/console/overview/panel?window=week",
        "runs (no filter)": "/console/runs",
        "runs route=specialist:math": "/console/runs?route=specialist:math",
        "runs degraded": "/console/runs?degraded=yes",
        "runs feedback=negative": "/console/runs?feedback=negative",
        "runs text (common), last day": "/console/runs?text=answer+1",
        "runs text (absent), last day": "/console/runs?text=no+such+words",
        "run trace": f"/console/runs/{some_run}",
        "specialists": "/console/specialists",
        "loop": "/console/loop",
        "loop jobs panel (poll)": "/console/loop/jobs",
        "batches": "/console/batches",
        "batches panel (poll)": "/console/batches/panel",
        "keys": "/console/keys",
    }
    with TestClient(create_app(Settings()), base_url="http://127.0.0.1") as client:
        form = client.get("/console/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf, "the login form has no CSRF field"
        client.post("/console/login", data={"api_key": admin, "csrf": csrf[1]})
        print(f"{url.split(':')[0]}, {runs} runs over 8 days; GET, 20 times each")
        for name, path in pages.items():
            client.get(path).raise_for_status()  # warm: templates compiled, pool filled
            p50, p95 = _timed(lambda path=path: client.get(path))
            print(f"  {name:32s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="sqlite+aiosqlite:////tmp/understudy-console-bench.db")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument(
        "--home",
        default=os.path.join(tempfile.gettempdir(), "understudy-console-bench-home"),
        help="UNDERSTUDY_HOME of the app; the first run pulls the default model into it",
    )
    args = parser.parse_args()
    main(args.url, args.runs, args.home)
