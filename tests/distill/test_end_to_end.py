"""Distillation end to end on a CPU, with real processes talking only through the database.

A scripted lead keeps answering one narrow task correctly (the museum's opening hours) among
other traffic. Then, as users run it: ``distill propose`` finds the task; ``distill start``
queues a job; ``understudy worker`` builds the dataset, trains a LoRA on a small model
(SmolLM2 cut to two layers) and evaluates it; ``specialists promote`` serves it. A running
``understudy serve`` picks the new specialist up without a restart — a tool for the lead, a
route for the pre-router — and answers the task in cascade mode without the lead; after
``specialists rollback`` the lead answers it again.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from database import Database
from distill.jobs import DistillJob, DistillJobStore
from orchestrator.testing import ScriptedLead, Step, reply
from serving.orchestration import open_orchestrator
from serving.settings import get_settings
from tests.distill.helpers import HOURS_ANSWER, museum_hours_questions
from tests.helpers.cli import UNDERSTUDY, understudy
from tests.helpers.http_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MUSEUM_RUNS = 100
OTHER_QUESTIONS = (
    "Write a haiku about autumn.",
    "Who painted the Mona Lisa?",
    "Translate 'good night' into French.",
    "Suggest a name for a bakery.",
    "Give me three tips for better sleep.",
)


def lead_answer(body: dict[str, Any]) -> Step:
    """The scripted lead: the museum's hours for museum questions, something else otherwise."""
    question = next(m for m in reversed(body["messages"]) if m["role"] == "user")["content"]
    return reply(HOURS_ANSWER if "museum" in str(question) else "Here you go.")


@pytest.fixture
def lead() -> Iterator[ScriptedLead]:
    with ScriptedLead([lead_answer], repeat_last=True) as scripted:
        yield scripted


@pytest.fixture
def env(
    small_model_dir: Path, lead: ScriptedLead, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Settings for every process of the test (this one and the subprocesses)."""
    values = {
        "UNDERSTUDY_SLM_BASE_MODEL": str(small_model_dir),
        "UNDERSTUDY_SLM_AUTO_PULL": "false",
        "UNDERSTUDY_LEAD_BASE_URL": lead.base_url,
        "UNDERSTUDY_LEAD_MODEL": "scripted-lead",
        "UNDERSTUDY_LEAD_API_KEY": "sk-test",
        "UNDERSTUDY_LEAD_MAX_RETRIES": "0",
        "UNDERSTUDY_LEAD_PRICES": '{"scripted-lead": {"input_per_million": 2.5, '
        '"output_per_million": 10}}',
        "UNDERSTUDY_API_AUTH": "false",
        "UNDERSTUDY_BATCH_API_WORKER": "false",
        "UNDERSTUDY_BATCH_POLL_S": "0.2",
        "UNDERSTUDY_DISTILL_MIN_CLUSTER_RUNS": "40",
        "UNDERSTUDY_DISTILL_VAL_FRACTION": "0.15",
        "UNDERSTUDY_DISTILL_TEST_FRACTION": "0.15",
        "UNDERSTUDY_DISTILL_MIN_EXAMPLES": "40",
        "UNDERSTUDY_DISTILL_EPOCHS": "5",
        "UNDERSTUDY_DISTILL_LEARNING_RATE": "0.006",
        "UNDERSTUDY_DISTILL_DEVICE": "cpu",
        "UNDERSTUDY_DISTILL_MIN_ACCEPTED": "5",
        "UNDERSTUDY_DISTILL_REGISTRY_POLL_S": "0.2",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return values


def succeeds(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``understudy ARGS``, which must exit 0."""
    result = understudy(*args, timeout=timeout)
    assert result.returncode == 0, f"understudy {' '.join(args)}: {result.stderr}"
    return result


async def seed_transcripts() -> None:
    """The lead answers museum questions (and a few others) itself, in router mode."""
    questions = museum_hours_questions(MUSEUM_RUNS) + list(OTHER_QUESTIONS)
    settings = get_settings()
    async with (
        await Database.open(settings.database_url) as database,
        open_orchestrator(settings, database) as orchestrator,
    ):
        for question in questions:
            result = await orchestrator.run(question, "router")
            assert result.route == "router" and result.specialists == []


@contextmanager
def running(*args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``understudy ARGS`` in the background, stopped with SIGTERM (as a supervisor would)."""
    with log.open("wb") as out:
        process = subprocess.Popen([*UNDERSTUDY, *args], stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; log:\n{log.read_text()[-4000:]}")


def job_state(job_id: str) -> DistillJob:
    async def read() -> DistillJob:
        async with await Database.open(get_settings().database_url) as jobs_database:
            jobs = DistillJobStore(jobs_database)
            return await jobs.get(job_id)

    return asyncio.run(read())


def test_a_narrow_task_the_lead_keeps_answering_becomes_a_specialist_and_back(
    env: dict[str, str], lead: ScriptedLead, tmp_path: Path
) -> None:
    asyncio.run(seed_transcripts())

    # propose: one task, priced at the lead's observed rate
    proposals = json.loads(succeeds("distill", "propose", "--json").stdout)["proposals"]
    assert len(proposals) == 1, proposals
    proposal = proposals[0]
    name = proposal["name"]
    assert "museum" in name and proposal["run_count"] == MUSEUM_RUNS
    assert proposal["monthly_savings_usd"] == pytest.approx(proposal["lead_cost_usd"] * 30)
    assert proposal["lead_cost_usd"] > 0

    # start → the worker builds, trains and evaluates
    succeeds("distill", "start", "--proposal", str(proposal["id"]))
    job_id = json.loads(succeeds("distill", "jobs", "--json").stdout)[0]["id"]
    worker_log = tmp_path / "worker.log"
    with running("worker", "--kind", "distill", log=worker_log):
        job = wait_for(
            lambda: (state := job_state(job_id)).finished and state,
            timeout=800,
            what="the distillation job",
            log=worker_log,
        )
    assert job.status == "succeeded", f"{job.error}\n{worker_log.read_text()[-4000:]}"
    assert job.stage == "evaluate" and job.dataset_path and job.adapter_path

    listed = json.loads(succeeds("specialists", "list", "--json").stdout)
    entry = next(s for s in listed if s["name"] == name)
    (version,) = entry["versions"]
    assert entry["source"] == "registry" and entry["active_version"] is None
    assert version["status"] == "candidate" and version["gate_passed"] is True
    metrics = version["metrics"]
    assert metrics["test"]["candidate"]["precision"] >= 0.9
    assert metrics["test"]["candidate"]["coverage"] >= 0.8  # it generalises to new wordings
    assert metrics["test"]["candidate"]["accuracy"] > metrics["test"]["current"]["accuracy"]
    assert 0 < version["threshold"] <= 1

    # a running API picks promotions and rollbacks up without a restart
    port = free_port()
    api = f"http://127.0.0.1:{port}/v1"
    api_log = tmp_path / "api.log"
    question = repeated_question(Path(job.dataset_path))
    with running("serve", "--port", str(port), log=api_log), httpx.Client(timeout=120) as http:
        wait_for(lambda: _models(http, api), timeout=120, what="the API", log=api_log)
        before = _ask(http, api, question)
        assert before["understudy"]["route"] == "cascade:lead"
        assert before["choices"][0]["message"]["content"] == HOURS_ANSWER

        succeeds("specialists", "promote", name, "--now")
        wait_for(
            lambda: f"understudy-{name}" in _models(http, api),
            timeout=30,
            what="the promotion to reach the API",
            log=api_log,
        )
        calls_before = len(lead.requests)
        after = _ask(http, api, question)
        assert after["understudy"]["route"] == f"cascade:accepted:{name}", after
        assert after["choices"][0]["message"]["content"] == HOURS_ANSWER
        assert len(lead.requests) == calls_before  # answered without the lead
        _ask(http, api, "Write a haiku about autumn.", model="understudy-router")
        tools = [tool["function"]["name"] for tool in lead.requests[-1]["tools"]]
        assert f"{name}_specialist" in tools  # and the lead can delegate to it

        succeeds("specialists", "rollback", name)
        wait_for(
            lambda: f"understudy-{name}" not in _models(http, api),
            timeout=30,
            what="the rollback to reach the API",
            log=api_log,
        )
        calls_before = len(lead.requests)
        rolled_back = _ask(http, api, question)
        assert rolled_back["understudy"]["route"] == "cascade:lead"
        assert len(lead.requests) == calls_before + 1
    entry = next(
        s for s in json.loads(succeeds("specialists", "list", "--json").stdout) if s["name"] == name
    )
    assert entry["active_version"] is None and entry["versions"][0]["status"] == "retired"


def repeated_question(dataset: Path) -> str:
    """A question the lead answered before (the task repeats): the first training example's."""
    first = json.loads((dataset / "train.jsonl").read_text().splitlines()[0])
    return next(m["content"] for m in first["messages"] if m["role"] == "user")


def _models(http: httpx.Client, api: str) -> list[str]:
    try:
        response = http.get(f"{api}/models")
    except httpx.TransportError:
        return []
    return [model["id"] for model in response.json()["data"]] if response.is_success else []


def _ask(
    http: httpx.Client, api: str, question: str, *, model: str = "understudy-cascade"
) -> dict[str, Any]:
    response = http.post(
        f"{api}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": question}]},
    )
    assert response.status_code == 200, response.text
    return response.json()
