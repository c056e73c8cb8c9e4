"""The return-on-investment ledger: known compute, audits and accepted runs give known figures,
through the real CLI and on the API's metrics, on SQLite and PostgreSQL.

Figures are binary fractions (0.25, 0.125, …) so sums compare exactly.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from database import Database
from database.tables import AuditRow, DistillJobRow, RunRow, table_of
from distill.jobs import DistillJobStore
from distill.registry import RegistryStore
from distill.roi import RoiConfig, payback
from serving.api.observability import Metrics
from serving.api.roi_metrics import RoiGauges
from specialists.catalog import Catalog
from tests.helpers.cli import understudy

NOW = datetime.now(UTC)
TODAY = NOW.date()
PRICES = {"UNDERSTUDY_ROI_CPU_HOUR_USD": "0.5", "UNDERSTUDY_ROI_GPU_HOUR_USD": "2"}
CONFIG = RoiConfig(cpu_hour_usd=0.5, gpu_hour_usd=2.0)


async def _job(
    database: Database,
    name: str,
    *,
    days_ago: int,
    train: float,
    evaluate: float,
    device: str,
    version_id: int | None = None,
) -> None:
    """A finished job of ``name`` that spent ``train`` + ``evaluate`` seconds on ``device``."""
    jobs = DistillJobStore(database)
    job = await jobs.enqueue(name)
    await jobs.add_compute(job.id, stage="train", seconds=train, device=device)
    await jobs.add_compute(job.id, stage="evaluate", seconds=evaluate, device=None)
    async with database.write_session("test") as session:
        row = await session.get(DistillJobRow, job.id)
        assert row is not None
        row.status, row.started_at = "succeeded", NOW - timedelta(days=days_ago)
        row.version_id = version_id


async def _runs(database: Database, route: str, count: int, **values: Any) -> None:
    defaults: dict[str, Any] = {
        "mode": route.split(":")[0],
        "input_messages": [],
        "answer": "42",
        "specialists": [],
        "escalated": False,
        "degraded": False,
        "confidence": 0.9,
        "lead_input_tokens": 0,
        "lead_output_tokens": 0,
        "slm_prompt_tokens": 10,
        "slm_completion_tokens": 2,
        "latency_ms": 1.0,
        "error": None,
        "created_at": NOW,
    }
    rows = [{**defaults, **values, "id": uuid.uuid4().hex, "route": route} for _ in range(count)]
    async with database.write_transaction() as connection:
        await connection.execute(insert(table_of(RunRow)), rows)


async def _audits(database: Database, name: str, version: str, costs: list[float]) -> None:
    rows = [
        {
            "run_id": uuid.uuid4().hex,
            "specialist": name,
            "version": version,
            "judge": "numeric",
            "source": "slm",
            "messages": [],
            "answer": "42",
            "status": "done",
            "attempts": 1,
            "cost_usd": cost,
            "created_at": NOW - timedelta(days=3),
            "finished_at": NOW - timedelta(days=3),
        }
        for cost in costs
    ]
    async with database.write_transaction() as connection:
        await connection.execute(insert(table_of(AuditRow)), rows)


async def _seed(database_url: str) -> str:
    """math paid back 3 days ago; code is short and gaining; email only spends. Returns
    math's version label."""
    database = await Database.open(database_url, migrate=True)
    try:
        registry = RegistryStore(database)
        version = await registry.add_version(
            "math", adapter_path="/a", adapter_sha256="ab" * 32, base_model="tiny", lora_rank=8
        )
        await _job(
            database,
            "math",
            days_ago=5,
            train=3600,
            evaluate=1800,
            device="cuda",
            version_id=version.id,
        )
        label = f"v1-{'ab' * 4}"
        await _audits(database, "math", label, [0.25, 0.25])
        three_days_ago = NOW - timedelta(days=3)
        common = {"created_at": three_days_ago}
        await _runs(database, "slm:math", 3, lead_only_cost_usd=2.0, cost_usd=0.25, **common)
        await _runs(
            database, "cascade:accepted:math", 2, lead_only_cost_usd=1.0, cost_usd=0.125, **common
        )
        # Not accepted answers: an escalation, a failed run, a degraded one.
        await _runs(database, "cascade:escalated:math", 4, lead_only_cost_usd=9.0, cost_usd=9.0)
        await _runs(database, "slm:math", 1, lead_only_cost_usd=9.0, cost_usd=0.0, error="x")
        await _runs(
            database, "cascade:accepted:math", 1, lead_only_cost_usd=9.0, cost_usd=0, degraded=True
        )
        await _job(database, "code", days_ago=1, train=7200, evaluate=0, device="cpu")
        await _runs(database, "slm:code", 1, lead_only_cost_usd=0.375, cost_usd=0.125)
        await _audits(database, "email", "base", [0.5])
        return label
    finally:
        await database.close()


def _roi(database_url: str, *args: str) -> Any:
    env = {**PRICES, "UNDERSTUDY_DATABASE_URL": database_url, "COLUMNS": "200"}
    done = understudy("specialists", "roi", *args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_the_ledger_gives_the_expected_figures_and_payback(database_url: str) -> None:
    label = await _seed(database_url)
    found = {entry["specialist"]: entry for entry in json.loads(_roi(database_url, "--json"))}

    math = found["math"]
    assert math["training_usd"] == 3.0  # 1.5 h of a GPU worker at 2 USD
    assert (math["train_seconds"], math["evaluate_seconds"]) == (3600, 1800)
    assert (math["audits"], math["audit_usd"]) == (2, 0.5)
    assert math["answers"] == 5  # the escalated, failed and degraded runs are not answers
    assert (math["lead_cost_saved_usd"], math["serving_usd"]) == (8.0, 1.0)
    assert math["net_usd"] == 3.5
    paid_on = (TODAY - timedelta(days=3)).isoformat()
    assert math["payback"]["status"] == "paid" and math["payback"]["date"] == paid_on
    assert math["versions"] == [
        {
            "version": label,
            "train_seconds": 3600,
            "evaluate_seconds": 1800,
            "device": "cuda",
            "training_usd": 3.0,
            "audits": 2,
            "audit_usd": 0.5,
        }
    ]

    code = found["code"]  # 2 h of CPU at 0.5 USD: 1.0; one answer saved 0.25 over two days
    assert code["net_usd"] == -0.75
    assert code["payback"] == {
        "status": "projected",
        "date": (TODAY + timedelta(days=6)).isoformat(),  # 0.75 at 0.125 a day
        "daily_net_usd": 0.125,
    }
    email = found["email"]
    assert email["net_usd"] == -0.5
    assert email["payback"] == {"status": "never", "date": None, "daily_net_usd": -0.125}
    assert email["versions"][0]["version"] == "base"


async def test_the_table_shows_the_json_figures(database_url: str) -> None:
    await _seed(database_url)
    entries = json.loads(_roi(database_url, "--json"))
    table = _roi(database_url)
    for entry in entries:
        line = next(line for line in table.splitlines() if f" {entry['specialist']} " in line)
        for figure in ("training_usd", "audit_usd", "lead_cost_saved_usd", "net_usd"):
            assert f"{entry[figure]:.4f}" in line, (figure, line)
        status, day = entry["payback"]["status"], entry["payback"]["date"]
        expected = {"paid": f"paid {day}", "projected": f"~{day}", "never": "never at this rate"}
        assert expected.get(status, "no activity") in line


async def test_one_specialist_and_since(database_url: str) -> None:
    await _seed(database_url)
    since = (TODAY - timedelta(days=2)).isoformat()
    (math,) = json.loads(_roi(database_url, "math", "--since", since, "--json"))
    assert math["specialist"] == "math"
    # Only what happened since: no training (5 days ago), no audits or answers (3 days ago).
    assert (math["training_usd"], math["answers"], math["net_usd"]) == (0, 0, 0)
    assert math["payback"]["status"] == "no_activity"


def test_a_bad_since_is_refused_with_the_forms_it_takes(database_url: str) -> None:
    done = understudy("specialists", "roi", "--since", "last week", env={**PRICES})
    assert done.returncode != 0
    assert "30d" in done.stderr and "2026-01-31" in done.stderr


async def test_the_gauges_appear_on_metrics_and_are_cached(database_url: str) -> None:
    await _seed(database_url)
    database = await Database.open(database_url, migrate=True)
    try:
        clock = [0.0]
        gauges = RoiGauges(
            database, Catalog.default(), CONFIG, refresh_s=60, clock=lambda: clock[0]
        )
        metrics = Metrics()
        await gauges.update(metrics)
        body = metrics.render()[0].decode()
        assert 'understudy_specialist_roi_net_usd{specialist="math"} 3.5' in body
        assert 'understudy_specialist_roi_training_usd{specialist="code"} 1.0' in body
        await _runs(database, "slm:code", 1, lead_only_cost_usd=0.5, cost_usd=0.0)
        await gauges.update(metrics)  # fresh: not read again
        assert 'roi_net_usd{specialist="code"} -0.75' in metrics.render()[0].decode()
        clock[0] = 61
        await gauges.update(metrics)
        assert 'roi_net_usd{specialist="code"} -0.25' in metrics.render()[0].decode()
    finally:
        await database.close()


def test_payback_is_the_last_turn_to_non_negative() -> None:
    days = [date(2026, 1, d) for d in (1, 2, 3, 4)]
    invested = {days[0]: 4.0, days[2]: 4.0}  # a second version trained on the 3rd
    operating = {days[1]: 5.0, days[3]: 4.0}
    found = payback(invested, operating, 7, today=days[3])
    assert (found.status, found.day) == ("paid", days[3])
