"""``understudy specialists roi``: has each specialist paid for its training?

Registered on the ``specialists`` sub-app; the ledger itself is :mod:`distill.roi`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from database import Database
from distill.catalog import known_catalog
from distill.registry import RegistryStore
from distill.roi import SpecialistLedger
from distill.roi_store import RoiStore
from serving.cli.output import console, print_json
from serving.runtime import roi_config
from serving.settings import get_settings
from serving.stores import run_with_database

_DAYS = re.compile(r"(\d+)d")


def roi(
    name: Annotated[
        str | None, typer.Argument(help="One specialist (e.g. math); every one when left out.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Count only what was spent and saved from this moment: a date (2026-01-31), "
            "a UTC date and time (2026-01-31T12:00), or a number of days back (30d). "
            "Default: since the first record.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (the table's fields, and each version's).")
    ] = False,
) -> None:
    """Whether each specialist has paid for itself: the return-on-investment ledger.

    Costs: training compute (the seconds its distillation jobs spent training and evaluating,
    failed ones too, at UNDERSTUDY_ROI_CPU_HOUR_USD or UNDERSTUDY_ROI_GPU_HOUR_USD by the device
    they trained on) and audit spend (what the lead cost to re-ask its answers). Savings: every
    answer it gave that no lead wrote (slm mode, cascade-accepted), valued at what the lead alone
    would have cost for it, less what the answer did cost. NET is savings less all costs.

    PAYBACK is the day the running net last turned positive ("paid"), else the day the mean
    daily net of the last UNDERSTUDY_ROI_RATE_DAYS days would close the gap ("~date"), else
    "never at this rate". Example: `understudy specialists roi math --since 30d --json`.
    """
    settings = get_settings()
    start = _parse_since(since)
    config = roi_config(settings)

    async def read(database: Database) -> list[SpecialistLedger]:
        catalog = known_catalog(settings.catalog(), await RegistryStore(database).snapshot())
        names = [catalog.get(name).name] if name is not None else sorted(catalog.names)
        return await RoiStore(database).ledgers(names, config, since=start)

    found = run_with_database(settings, read)
    if as_json:
        print_json([entry.as_dict() for entry in found])
        return
    console.print(_table(found))


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    if days := _DAYS.fullmatch(text):
        return datetime.now(UTC) - timedelta(days=int(days.group(1)))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date (2026-01-31), a date and time (2026-01-31T12:00) or a "
            "number of days (30d)",
            param_hint="--since",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _table(found: list[SpecialistLedger]) -> Table:
    table = Table("specialist", "training $", "audits", "audit $", "answers", "lead $ saved")
    for heading in ("serving $", "net $", "payback", "daily net $"):
        table.add_column(heading)
    for entry in found:
        table.add_row(
            entry.specialist,
            _usd(entry.training_usd),
            str(entry.audits),
            _usd(entry.audit_usd),
            str(entry.answers),
            _usd(entry.lead_cost_saved_usd),
            _usd(entry.serving_usd),
            _usd(entry.net_usd),
            entry.payback.describe(),
            _usd(entry.payback.daily_net_usd),
        )
    return table


def _usd(value: float) -> str:
    return f"{value:.4f}"
