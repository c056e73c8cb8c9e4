"""What operators see of the API: Prometheus metrics, request ids, JSON logs, health probes.

Three pieces, each usable alone, wired by ``create_app``:

- :class:`Metrics`: counters and histograms on a *private* ``CollectorRegistry``, so several apps
  in one process (tests) never collide on metric names. Multi-worker servers (``serve
  --workers N``) must start every worker with ``PROMETHEUS_MULTIPROC_DIR`` set to one empty
  directory (prometheus_client reads it at import to write values to shared files) and pass
  the same directory as ``multiprocess_dir``, so ``/metrics`` adds up all workers, whichever
  one answers the scrape.
- :class:`RequestContextMiddleware`: a pure ASGI middleware (``BaseHTTPMiddleware`` would
  buffer streamed completions) that gives each request an id, echoes it in ``X-Request-ID``,
  exposes it to every log line through a contextvar, counts the request, and writes one JSON
  access line. It never logs headers, bodies, query strings or keys: only what the app chose
  to put on ``request.state`` (``model``, ``route``, ``api_key_prefix``).
- :data:`router`: ``/metrics``, ``/healthz`` (the process serves) and ``/readyz`` (its
  dependencies answer), the latter running the checks the app puts on
  ``app.state.readiness``. Both tell how many transcripts wait in the app's spool
  (``app.state.spool``) for the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.transcripts import TranscriptSpool
from specialists.errors import ConfigurationError

if TYPE_CHECKING:
    from serving.api.roi_metrics import RoiGauges

__all__ = [
    "READINESS_TIMEOUT_S",
    "JsonFormatter",
    "Metrics",
    "ReadinessCheck",
    "RequestContextMiddleware",
    "configure_json_logging",
    "current_request_id",
    "request_id_var",
    "router",
]

access_logger = logging.getLogger("understudy.access")
logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
KEY_PREFIX_MAX_CHARS = 12
"""A longer ``api_key_prefix`` is cut: a prefix identifies a key, a whole key would leak it."""
READINESS_TIMEOUT_S = 2.0
"""Budget of one readiness check; a probe that hangs longer than this means "not ready"."""
OWN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
"""Probe and scrape paths: logged, but not counted in ``requests_total``."""

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
"""Seconds; chat requests range from a cached specialist answer to a multi-turn lead run."""
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)
"""Mean token probability; fine steps near the 0.8-0.95 thresholds specialists use."""

request_id_var: ContextVar[str | None] = ContextVar("understudy_request_id", default=None)
"""The id of the request being served in this task, ``None`` outside a request."""


def current_request_id() -> str | None:
    """The request id of the running request (for errors, transcripts, upstream headers)."""
    return request_id_var.get()


# ----------------------------------------------------------------------------------- metrics


class RunLike(Protocol):
    """The parts of ``orchestrator.RunResult`` the metrics read (duck-typed: tests use fakes)."""

    route: str
    specialists: Sequence[str]
    escalated: bool
    degraded: bool
    confidence: float | None
    cost_usd: float

    @property
    def lead_tokens(self) -> int: ...

    @property
    def slm_tokens(self) -> int: ...

    @property
    def saved_usd(self) -> float: ...


class Metrics:
    """The API's Prometheus metrics, on a registry of their own.

    Label values must come from bounded sets: ``model`` is one of the served model ids (never
    the raw string a client sent), ``route`` and ``specialist`` come from the catalog.

    Args:
        namespace: Prefix of every metric name (``understudy_requests_total``, …).
        multiprocess_dir: Directory shared by all workers of a multi-worker server; ``render``
            then aggregates every worker's values from it. Each worker's environment must hold
            ``PROMETHEUS_MULTIPROC_DIR`` with the same directory before prometheus_client is
            imported, since the library decides there where values are written.
    """

    def __init__(self, *, namespace: str = "understudy", multiprocess_dir: Path | None = None):
        self.registry = CollectorRegistry(auto_describe=True)
        self._scrape_registry = self.registry
        if multiprocess_dir is not None:
            if values.ValueClass is values.MutexValue:
                raise ConfigurationError(
                    "multi-process metrics need PROMETHEUS_MULTIPROC_DIR in every worker's "
                    f"environment (set to {multiprocess_dir}) before the server starts",
                    setting="PROMETHEUS_MULTIPROC_DIR",
                )
            self._scrape_registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._scrape_registry, path=str(multiprocess_dir))
        registry, ns = self.registry, namespace
        self.requests = Counter(
            "requests",
            "HTTP requests answered, by served model, orchestrator route and status.",
            ["model", "route", "status"],
            namespace=ns,
            registry=registry,
        )
        self.latency = Histogram(
            "request_latency_seconds",
            "Time from request to last response byte (streams included).",
            ["model"],
            namespace=ns,
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.tokens = Counter(
            "tokens",
            "Tokens spent, by who spent them (lead: paid model, slm: our specialists).",
            ["kind"],
            namespace=ns,
            registry=registry,
        )
        self.cost = Counter(
            "cost_usd", "Estimated spend of all runs, USD.", namespace=ns, registry=registry
        )
        self.saved = Counter(
            "saved_usd",
            "Spend avoided versus sending the same tokens to the lead, USD.",
            namespace=ns,
            registry=registry,
        )
        self.escalations = Counter(
            "escalations",
            "Cascade runs whose specialist draft was rejected and sent to the lead.",
            ["specialist"],
            namespace=ns,
            registry=registry,
        )
        self.degraded = Counter(
            "degraded",
            "Runs answered by a specialist because the lead failed.",
            namespace=ns,
            registry=registry,
        )
        self.spooled = Gauge(
            "transcripts_spooled",
            "Run transcripts waiting in the spool for the database to take writes again.",
            namespace=ns,
            registry=registry,
            multiprocess_mode="livemax",  # every worker of a host sees the same spool
        )
        # The ROI ledger per specialist (distill/roi.py), set on a scrape (api/roi_metrics.py).
        roi = {
            "net": "Net to date: lead cost saved less serving, audit and training cost, USD.",
            "training": "Training compute of the specialist's distillation jobs, priced, USD.",
            "audit": "Audit spend: the lead's cost to re-ask the specialist's answers, USD.",
            "saved": "Lead cost its accepted answers avoided, less what they cost, USD.",
        }
        self.roi_net, self.roi_training, self.roi_audit, self.roi_saved = (
            Gauge(
                f"specialist_roi_{figure}_usd",
                help_text,
                ["specialist"],
                namespace=ns,
                registry=registry,
                multiprocess_mode="mostrecent",  # every worker reads the same ledger
            )
            for figure, help_text in roi.items()
        )
        self.confidence = Histogram(
            "specialist_confidence",
            "Confidence of specialist answers (mean token probability).",
            ["specialist"],
            namespace=ns,
            registry=registry,
            buckets=CONFIDENCE_BUCKETS,
        )

    def observe_http(self, model: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(model=model, route=route, status=str(status)).inc()
        self.latency.labels(model=model).observe(seconds)

    def observe_run(self, model: str, result: RunLike) -> None:
        """Add one orchestrator run's tokens, cost, escalation and confidence.

        ``model`` is accepted for symmetry with :meth:`observe_http` (and future per-model
        series); run counters are kept global to keep the series count small.
        """
        del model
        if result.lead_tokens:
            self.tokens.labels(kind="lead").inc(result.lead_tokens)
        if result.slm_tokens:
            self.tokens.labels(kind="slm").inc(result.slm_tokens)
        if result.cost_usd > 0:
            self.cost.inc(result.cost_usd)
        if result.saved_usd > 0:
            self.saved.inc(result.saved_usd)
        specialist = _specialist_label(result.specialists)
        if result.escalated:
            # The drafting specialist is the first one called in an escalated cascade.
            self.escalations.labels(
                specialist=result.specialists[0] if result.specialists else "none"
            ).inc()
        if result.degraded:
            self.degraded.inc()
        if result.confidence is not None:
            self.confidence.labels(specialist=specialist).observe(result.confidence)

    def render(self) -> tuple[bytes, str]:
        """The text exposition of every metric (all workers' in multi-process mode)."""
        return generate_latest(self._scrape_registry), CONTENT_TYPE_LATEST


def _specialist_label(specialists: Sequence[str]) -> str:
    """The specialist a run's confidence belongs to; router runs using several get "multiple"."""
    if not specialists:
        return "none"
    return specialists[0] if len(specialists) == 1 else "multiple"


# ---------------------------------------------------------------------------- request context


class RequestContextMiddleware:
    """Request id, one JSON access line and the HTTP metrics for every request.

    Pure ASGI so streamed responses pass through chunk by chunk; the duration runs to the last
    body chunk. The app reports what only it knows by setting ``request.state.model`` (a served
    model id), ``request.state.route`` (the run's route) and ``request.state.api_key_prefix``.

    Args:
        app: The wrapped ASGI app.
        metrics: Where to count requests; ``None`` only logs.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope.get("headers", ()))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering
        header = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0].lower() != header[0]]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            try:
                self._record(scope, status, time.perf_counter() - started, request_id)
            finally:
                request_id_var.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        state: Mapping[str, Any] = scope.get("state") or {}
        path: str = scope.get("path", "")
        fields: dict[str, Any] = {
            "method": scope.get("method"),
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "request_id": request_id,
        }
        prefix = state.get("api_key_prefix")
        if prefix:
            fields["api_key_prefix"] = str(prefix)[:KEY_PREFIX_MAX_CHARS]
        for name in ("model", "route"):
            if state.get(name):
                fields[name] = str(state[name])
        access_logger.info("request", extra=fields)
        if self.metrics is not None and path not in OWN_PATHS:
            model = str(state.get("model") or "unknown")
            self.metrics.observe_http(model, str(state.get("route") or "none"), status, seconds)


def _request_id(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` when it is a sane token, else a fresh one.

    Arbitrary client text is refused so that ids are safe to log, to put in headers sent
    upstream, and to search for.
    """
    for name, value in headers:
        if name.lower() == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID_RE.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


# ------------------------------------------------------------------------------------ logging

_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)
"""Attributes every LogRecord has (and uvicorn's ANSI-coloured copy of the message); anything
else on a record came from ``extra=``."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the extras and the request id.

    Log shippers parse it without a grok pattern, and the request id ties every line of one
    request together (the access line, the orchestrator's warnings, an upstream error).
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if "request_id" not in entry and (request_id := request_id_var.get()) is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_json_logging(level: int | str = logging.INFO) -> None:
    """Send every log record to stderr as JSON lines (call once per process, at its edge).

    Uvicorn's own loggers are routed to the same handler, and its access log is silenced: the
    middleware's access line replaces it (and, unlike uvicorn's, never shows a query string).
    httpx's per-call INFO lines are silenced too.
    Start uvicorn with ``log_config=None`` so it does not install its own formatters again.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx (and httpx2, the openai client's) log every upstream call at INFO with its full URL:
    # noise, a URL can hold a key, and one line per lead call costs CPU on every request.
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ------------------------------------------------------------------------------------- routes

ReadinessCheck = Callable[[], Awaitable[None]]
"""An async probe of one dependency: returns when it answers, raises when it does not."""

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of ``app.state.metrics``, the ROI gauges refreshed first
    when ``app.state.roi`` holds them and their last reading is stale."""
    spooled = await _spooled(request)
    if spooled is not None:
        request.app.state.metrics.spooled.set(spooled)
    roi: RoiGauges | None = getattr(request.app.state, "roi", None)
    if roi is not None:
        await roi.update(request.app.state.metrics)
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: answering at all is the signal, so nothing is checked."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: every check in ``app.state.readiness`` passes within its time budget."""
    checks: Mapping[str, ReadinessCheck] = getattr(request.app.state, "readiness", {})
    outcomes = await asyncio.gather(*(_run_check(name, check) for name, check in checks.items()))
    results = dict(zip(checks, outcomes, strict=True))
    ready = all(outcome == "ok" for outcome in outcomes)
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": results}
    spooled = await _spooled(request)
    if spooled is not None:
        body["transcripts_spooled"] = spooled
    return JSONResponse(body, status_code=200 if ready else 503)


async def _spooled(request: Request) -> int | None:
    """Transcripts waiting in the app's spool; ``None`` when the app has none, or it cannot be
    read (its readiness check says why)."""
    spool: TranscriptSpool | None = getattr(request.app.state, "spool", None)
    if spool is None:
        return None
    try:
        return await asyncio.to_thread(spool.pending)
    except OSError:
        return None


async def _run_check(name: str, check: ReadinessCheck) -> str:
    """``"ok"`` or ``"error: …"``; the error text names the failure but stays one short line."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            await check()
    except TimeoutError:
        logger.warning("readiness check %s timed out after %.1f s", name, READINESS_TIMEOUT_S)
        return f"error: timed out after {READINESS_TIMEOUT_S:g} s"
    except Exception as exc:
        logger.warning("readiness check %s failed", name, exc_info=True)
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        return f"error: {type(exc).__name__}" + (f": {detail}" if detail else "")
    return "ok"
