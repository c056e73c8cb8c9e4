"""Request ids, JSON access lines, metrics and probes, through a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from prometheus_client.parser import text_string_to_metric_families

from serving.api.observability import (
    JsonFormatter,
    Metrics,
    ReadinessCheck,
    RequestContextMiddleware,
    configure_json_logging,
    current_request_id,
    router,
)
from specialists.errors import ConfigurationError
from tests.helpers.http_server import free_port

SECRET = "sk-us-live-0123456789abcdefSECRET"


@dataclass(frozen=True)
class FakeRun:
    """Shaped like orchestrator.RunResult, as far as the metrics read it."""

    route: str = "cascade:escalated:math"
    specialists: list[str] = field(default_factory=lambda: ["math"])
    escalated: bool = True
    degraded: bool = False
    confidence: float | None = 0.42
    lead_tokens: int = 120
    slm_tokens: int = 30
    cost_usd: float = 0.002
    saved_usd: float = 0.0005


def build_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.include_router(router)
    app.state.metrics = metrics
    app.state.readiness = {}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, str | None]:
        request.state.model = "understudy-cascade"
        request.state.route = "slm:math"
        request.state.api_key_prefix = "us-abcd1234-and-more"
        logging.getLogger("tests.handler").warning("inside the handler")
        return {"request_id": current_request_id()}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for index in range(3):
                yield f"data: {index}\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FastAPI]]:
    app = build_app(Metrics())
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False)
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", app
    instance.should_exit = True
    thread.join(timeout=10)


class _Lines(logging.Handler):
    """Formats at emit time, in the server's context, as a real log handler would."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    handler, root = _Lines(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def readiness(server: tuple[str, FastAPI]) -> Iterator[dict[str, ReadinessCheck]]:
    checks: dict[str, ReadinessCheck] = {}
    server[1].state.readiness = checks
    yield checks
    server[1].state.readiness = {}


def access_lines(lines: list[str]) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in lines]
    return [entry for entry in entries if entry["logger"] == "understudy.access"]


async def test_request_id_is_generated_echoed_or_replaced(server: tuple[str, FastAPI]) -> None:
    base, _ = server
    async with httpx.AsyncClient(base_url=base) as client:
        generated = await client.post("/v1/chat/completions", json={})
        echoed = await client.post(
            "/v1/chat/completions", json={}, headers={"X-Request-ID": "client.trace-42_a"}
        )
        replaced = await client.post(
            "/v1/chat/completions", json={}, headers={"X-Request-ID": "bad id\\with spaces"}
        )
        too_long = await client.get("/healthz", headers={"X-Request-ID": "a" * 65})

    new_id = generated.headers["x-request-id"]
    assert len(new_id) == 32 and int(new_id, 16) >= 0
    assert generated.json() == {"request_id": new_id}  # the handler sees it via the contextvar
    assert echoed.headers["x-request-id"] == "client.trace-42_a"
    assert echoed.json() == {"request_id": "client.trace-42_a"}
    assert replaced.headers["x-request-id"] not in {"bad id\\with spaces", ""}
    assert len(replaced.headers["x-request-id"]) == 32
    assert too_long.headers["x-request-id"] != "a" * 65


async def test_streamed_response_keeps_the_id_and_every_chunk(server: tuple[str, FastAPI]) -> None:
    async with (
        httpx.AsyncClient(base_url=server[0]) as client,
        client.stream("GET", "/stream", headers={"X-Request-ID": "s-1"}) as response,
    ):
        body = "".join([chunk async for chunk in response.aiter_text()])
    assert response.headers["x-request-id"] == "s-1"
    assert body == "data: 0\n\ndata: 1\n\ndata: 2\n\n"


async def test_access_line_is_json_with_context_and_no_secrets(
    server: tuple[str, FastAPI], log_lines: list[str]
) -> None:
    async with httpx.AsyncClient(base_url=server[0]) as client:
        response = await client.post(
            f"/v1/chat/completions?api_key={SECRET}",
            json={"messages": [{"role": "user", "content": SECRET}]},
            headers={"Authorization": f"Bearer {SECRET}", "X-Request-ID": "req-7"},
        )
    assert response.status_code == 200

    entries = [json.loads(line) for line in log_lines]  # every line parses
    (access,) = access_lines(log_lines)
    assert access["request_id"] == "req-7"
    assert access["method"] == "POST"
    assert access["path"] == "/v1/chat/completions"
    assert access["status"] == 200
    assert isinstance(access["duration_ms"], float)
    assert access["model"] == "understudy-cascade"
    assert access["route"] == "slm:math"
    assert access["api_key_prefix"] == "us-abcd1234-"  # cut: a prefix, never a key
    handler_line = next(entry for entry in entries if entry["logger"] == "tests.handler")
    assert handler_line["request_id"] == "req-7"
    server_lines = [line for line in log_lines if json.loads(line)["logger"] != "httpx"]
    assert server_lines  # (httpx's lines are this test's client, not the server)
    assert not any(SECRET in line or "Bearer" in line for line in server_lines)


async def test_metrics_count_runs_and_requests(server: tuple[str, FastAPI]) -> None:
    base, app = server
    metrics: Metrics = app.state.metrics
    metrics.observe_run("understudy-cascade", FakeRun())
    metrics.observe_run("understudy-cascade", FakeRun(degraded=True, confidence=None))
    async with httpx.AsyncClient(base_url=base) as client:
        before = await scrape(client)
        await client.post("/v1/chat/completions", json={})
        await client.get("/healthz")
        after = await scrape(client)
    assert after.content_type_ok

    assert after.value("understudy_tokens_total", kind="lead") == 240
    assert after.value("understudy_tokens_total", kind="slm") == 60
    assert after.value("understudy_cost_usd_total") == pytest.approx(0.004)
    assert after.value("understudy_saved_usd_total") == pytest.approx(0.001)
    assert after.value("understudy_escalations_total", specialist="math") == 2
    assert after.value("understudy_degraded_total") == 1
    assert after.value("understudy_specialist_confidence_count", specialist="math") == 1
    assert after.value("understudy_specialist_confidence_sum", specialist="math") == 0.42
    chat = {"model": "understudy-cascade", "route": "slm:math", "status": "200"}
    assert after.value("understudy_requests_total", **chat) == (
        before.value("understudy_requests_total", **chat) + 1
    )
    assert after.value("understudy_request_latency_seconds_count", model="understudy-cascade") >= 1
    assert not any("healthz" in str(labels) for labels in after.samples)


@dataclass
class Scrape:
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    content_type_ok: bool

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return Scrape(samples, response.headers["content-type"].startswith("text/plain"))


async def test_healthz_is_always_ok(server: tuple[str, FastAPI]) -> None:
    async with httpx.AsyncClient(base_url=server[0]) as client:
        response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_ready_when_every_check_passes(
    server: tuple[str, FastAPI], readiness: dict[str, ReadinessCheck]
) -> None:
    async def ok() -> None:
        await asyncio.sleep(0)

    readiness.update(database=ok, orchestrator=ok)
    async with httpx.AsyncClient(base_url=server[0]) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "orchestrator": "ok"},
    }


async def test_readyz_not_ready_on_a_failing_or_hanging_check(
    server: tuple[str, FastAPI], readiness: dict[str, ReadinessCheck]
) -> None:
    async def ok() -> None:
        return None

    async def broken() -> None:
        raise ConnectionRefusedError("connection refused\nsecond line is dropped")

    async def hangs() -> None:
        await asyncio.Event().wait()

    readiness.update(database=ok, slm=broken, lead=hangs)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=server[0], timeout=10) as client:
        response = await client.get("/readyz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["slm"] == "error: ConnectionRefusedError: connection refused"
    assert body["checks"]["lead"] == "error: timed out after 2 s"
    assert 1.9 <= elapsed < 3.5  # checks run concurrently, each bounded by 2 s


def test_multiprocess_dir_without_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PROMETHEUS_MULTIPROC_DIR"):
        Metrics(multiprocess_dir=tmp_path)


def test_two_metrics_instances_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    first.observe_http("m", "lead", 200, 0.1)
    assert b'understudy_requests_total{model="m"' in first.render()[0]
    assert b'understudy_requests_total{model="m"' not in second.render()[0]


def test_configure_json_logging_formats_the_root_logger(capsys: pytest.CaptureFixture) -> None:
    touched = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error")]
    touched += [logging.getLogger(name) for name in ("uvicorn.access", "httpx", "httpx2")]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in touched]
    try:
        configure_json_logging("info")
        logging.getLogger("tests.json").info("hello %s", "world", extra={"run_id": "r1"})
        assert logging.getLogger("httpx").level == logging.WARNING
    finally:
        for lg, handlers, level, propagate in saved:
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "hello world"
    assert line["run_id"] == "r1"
    assert line["level"] == "INFO"
