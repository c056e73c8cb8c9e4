"""Has a specialist paid for itself? The return-on-investment ledger, as pure computation.

What a specialist cost: the compute of its distillation jobs (seconds its workers spent training
and evaluating, at the configured hourly price of the device kind they trained on; failed and
cancelled jobs count, their compute was spent) and its audit spend (what the lead cost to re-ask
its answers). What it saved: every answer it gave that no lead wrote — ``slm`` mode and
cascade-accepted runs — valued at the run's own estimate of what the lead alone would have cost
(``lead_only_cost_usd``, the figure behind the API's ``saved_usd`` counter), less what the run
did cost (``cost_usd``: the specialist's tokens at the SLM price). Router runs whose lead passed a
specialist's answer on are not told apart in the runs table (their route is ``router``), so they
are not counted.

The queries that gather these figures, aggregated in SQL, are :mod:`distill.roi_store`'s; this
module turns them into a :class:`SpecialistLedger`, with the payback date: the day the running
net last turned non-negative, or, for a specialist still short, the day its recent daily
operating net (savings less serving and audits over ``rate_days``; training is the investment,
not the rate) would close the gap — or never at this rate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from specialists.errors import ConfigurationError

PaybackStatus = Literal["paid", "projected", "never", "no_activity"]


@dataclass(frozen=True, slots=True)
class RoiConfig:
    """Prices and the projection window (``UNDERSTUDY_ROI_*``, read by serving)."""

    cpu_hour_usd: float = 0.40
    """USD per hour of a worker training on CPU."""
    gpu_hour_usd: float = 2.50
    """USD per hour of a worker training on CUDA."""
    rate_days: int = 7
    """Recent days whose mean daily operating net projects the payback date."""

    def __post_init__(self) -> None:
        if self.cpu_hour_usd < 0 or self.gpu_hour_usd < 0:
            raise ConfigurationError("ROI hourly prices must be ≥ 0")
        if self.rate_days < 1:
            raise ConfigurationError(f"rate_days must be ≥ 1, got {self.rate_days}")

    def compute_usd(self, seconds: float, device: str | None) -> float:
        """What ``seconds`` of a worker on ``device`` cost. A job that recorded no device (it
        never reached training) is priced as CPU, the cheaper kind."""
        hourly = self.gpu_hour_usd if device == "cuda" else self.cpu_hour_usd
        return seconds / 3600 * hourly


@dataclass(frozen=True, slots=True)
class JobCompute:
    """One distillation job's recorded compute."""

    specialist: str
    version: str | None
    """The version label it produced (``v3-1f2e3d4c``); ``None`` when it produced none."""
    day: date
    train_seconds: float
    evaluate_seconds: float
    device: str | None


@dataclass(frozen=True, slots=True)
class AuditSpend:
    """One day's audit spend on one version of a specialist."""

    specialist: str
    version: str
    day: date
    audits: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class AnswerValue:
    """One day's accepted answers of a specialist and what they were worth."""

    specialist: str
    day: date
    answers: int
    lead_only_usd: float
    """What the lead alone would have cost for them."""
    cost_usd: float
    """What they did cost (the specialist's tokens)."""


@dataclass(frozen=True, slots=True)
class Payback:
    """When the specialist paid for itself, or when it will at its recent rate."""

    status: PaybackStatus
    """``paid`` (on ``day``), ``projected`` (on ``day``), ``never`` (at this rate) or
    ``no_activity`` (nothing spent nor saved in the ledger's period)."""
    day: date | None
    daily_net_usd: float
    """Mean daily operating net over the recent ``rate_days`` (savings less serving and audits)."""

    def describe(self) -> str:
        """How a table says it."""
        if self.status == "paid":
            return f"paid {self.day}"
        if self.status == "projected":
            return f"~{self.day}"
        return "never at this rate" if self.status == "never" else "no activity"


@dataclass(frozen=True, slots=True)
class VersionLedger:
    """One version's own costs (answers are not recorded by version: see the module)."""

    version: str
    train_seconds: float
    evaluate_seconds: float
    device: str | None
    training_usd: float
    audits: int
    audit_usd: float


@dataclass(frozen=True, slots=True)
class SpecialistLedger:
    """A specialist's return on investment over the ledger's period."""

    specialist: str
    train_seconds: float
    evaluate_seconds: float
    training_usd: float
    audits: int
    audit_usd: float
    answers: int
    lead_cost_saved_usd: float
    """What the lead alone would have cost for the accepted answers."""
    serving_usd: float
    """What those answers did cost (specialist tokens at the SLM price)."""
    net_usd: float
    """``lead_cost_saved_usd - serving_usd - audit_usd - training_usd``."""
    payback: Payback
    versions: tuple[VersionLedger, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON-able fields, the same the table shows (``specialists roi --json``)."""
        return {
            "specialist": self.specialist,
            "train_seconds": round(self.train_seconds, 3),
            "evaluate_seconds": round(self.evaluate_seconds, 3),
            "training_usd": round(self.training_usd, 6),
            "audits": self.audits,
            "audit_usd": round(self.audit_usd, 6),
            "answers": self.answers,
            "lead_cost_saved_usd": round(self.lead_cost_saved_usd, 6),
            "serving_usd": round(self.serving_usd, 6),
            "net_usd": round(self.net_usd, 6),
            "payback": {
                "status": self.payback.status,
                "date": self.payback.day.isoformat() if self.payback.day else None,
                "daily_net_usd": round(self.payback.daily_net_usd, 6),
            },
            "versions": [
                {
                    "version": v.version,
                    "train_seconds": round(v.train_seconds, 3),
                    "evaluate_seconds": round(v.evaluate_seconds, 3),
                    "device": v.device,
                    "training_usd": round(v.training_usd, 6),
                    "audits": v.audits,
                    "audit_usd": round(v.audit_usd, 6),
                }
                for v in self.versions
            ],
        }


def ledgers(
    names: Sequence[str],
    jobs: Iterable[JobCompute],
    audits: Iterable[AuditSpend],
    answers: Iterable[AnswerValue],
    config: RoiConfig,
    *,
    today: date,
) -> list[SpecialistLedger]:
    """The ledger of each of ``names`` (in that order) from its recorded figures."""
    jobs_of: dict[str, list[JobCompute]] = defaultdict(list)
    audits_of: dict[str, list[AuditSpend]] = defaultdict(list)
    answers_of: dict[str, list[AnswerValue]] = defaultdict(list)
    for job in jobs:
        jobs_of[job.specialist].append(job)
    for audit in audits:
        audits_of[audit.specialist].append(audit)
    for answer in answers:
        answers_of[answer.specialist].append(answer)
    return [
        ledger(name, jobs_of[name], audits_of[name], answers_of[name], config, today=today)
        for name in names
    ]


def ledger(
    name: str,
    jobs: Sequence[JobCompute],
    audits: Sequence[AuditSpend],
    answers: Sequence[AnswerValue],
    config: RoiConfig,
    *,
    today: date,
) -> SpecialistLedger:
    """One specialist's ledger from its jobs, audit spend and accepted answers."""
    invested: dict[date, float] = defaultdict(float)
    operating: dict[date, float] = defaultdict(float)
    for job in jobs:
        invested[job.day] += _job_usd(job, config)
    for audit in audits:
        operating[audit.day] -= audit.cost_usd
    for answer in answers:
        operating[answer.day] += answer.lead_only_usd - answer.cost_usd
    training = sum(invested.values())
    audit_usd = sum(a.cost_usd for a in audits)
    saved = sum(a.lead_only_usd for a in answers)
    serving = sum(a.cost_usd for a in answers)
    net = saved - serving - audit_usd - training
    return SpecialistLedger(
        specialist=name,
        train_seconds=sum(j.train_seconds for j in jobs),
        evaluate_seconds=sum(j.evaluate_seconds for j in jobs),
        training_usd=training,
        audits=sum(a.audits for a in audits),
        audit_usd=audit_usd,
        answers=sum(a.answers for a in answers),
        lead_cost_saved_usd=saved,
        serving_usd=serving,
        net_usd=net,
        payback=payback(invested, operating, config.rate_days, today=today),
        versions=_versions(jobs, audits, config),
    )


def payback(
    invested: dict[date, float],
    operating: dict[date, float],
    rate_days: int,
    *,
    today: date,
) -> Payback:
    """When the running net (``operating`` less ``invested``, day by day) last turned
    non-negative; else the day the mean operating net of the last ``rate_days`` days (fewer
    for a specialist younger than that) closes the gap, counted from ``today``."""
    days = sorted(set(invested) | set(operating))
    if not days:
        return Payback("no_activity", None, 0.0)
    first = days[0]
    window_start = max(first, today - timedelta(days=rate_days - 1))
    counted = (today - window_start).days + 1
    recent = sum(net for day, net in operating.items() if window_start <= day <= today)
    rate = recent / counted if counted > 0 else 0.0
    running, paid_on = 0.0, None
    for day in days:
        running += operating.get(day, 0.0) - invested.get(day, 0.0)
        if running < 0:
            paid_on = None
        elif paid_on is None:
            paid_on = day
    if paid_on is not None:
        return Payback("paid", paid_on, rate)
    if rate <= 0:
        return Payback("never", None, rate)
    return Payback("projected", today + timedelta(days=math.ceil(-running / rate)), rate)


def _job_usd(job: JobCompute, config: RoiConfig) -> float:
    return config.compute_usd(job.train_seconds + job.evaluate_seconds, job.device)


def _versions(
    jobs: Sequence[JobCompute], audits: Sequence[AuditSpend], config: RoiConfig
) -> tuple[VersionLedger, ...]:
    """Per version label: its job's compute and its audits (jobs without a version are the
    specialist's alone)."""
    labels = sorted({j.version for j in jobs if j.version} | {a.version for a in audits})
    rows = []
    for label in labels:
        own_jobs = [j for j in jobs if j.version == label]
        own_audits = [a for a in audits if a.version == label]
        rows.append(
            VersionLedger(
                version=label,
                train_seconds=sum(j.train_seconds for j in own_jobs),
                evaluate_seconds=sum(j.evaluate_seconds for j in own_jobs),
                device=next((j.device for j in own_jobs if j.device), None),
                training_usd=sum(_job_usd(j, config) for j in own_jobs),
                audits=sum(a.audits for a in own_audits),
                audit_usd=sum(a.cost_usd for a in own_audits),
            )
        )
    return tuple(rows)
