"""Capture every lead call of a run through the SDK's tracing, and send nothing to OpenAI.

``set_trace_processors`` *replaces* the SDK's default exporter (``add_trace_processor`` would
keep it), so transcripts stay on this machine. Tracing is process-wide in the SDK; the one
processor routes spans to the run that owns their trace id.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agents import set_trace_processors
from agents.tracing import GenerationSpanData, Span, Trace, TracingProcessor

from orchestrator.transcripts import LeadCallRecord


@dataclass(slots=True)
class RunCapture:
    """Lead calls collected for one trace."""

    trace_id: str
    lead_calls: list[LeadCallRecord] = field(default_factory=list)
    """As the SDK traced them; the orchestrator prices them (``cost_usd`` is 0 here)."""


class TranscriptProcessor(TracingProcessor):
    """Routes finished generation spans to the :class:`RunCapture` of their trace."""

    def __init__(self) -> None:
        self._captures: dict[str, RunCapture] = {}
        self._lock = threading.Lock()

    @contextmanager
    def capture(self, trace_id: str) -> Iterator[RunCapture]:
        run = RunCapture(trace_id)
        with self._lock:
            self._captures[trace_id] = run
        try:
            yield run
        finally:
            with self._lock:
                self._captures.pop(trace_id, None)

    def on_span_end(self, span: Span[Any]) -> None:
        data = span.span_data
        if not isinstance(data, GenerationSpanData):
            return
        with self._lock:
            run = self._captures.get(span.trace_id)
        if run is None:
            return
        usage = data.usage or {}
        error = span.error
        run.lead_calls.append(
            LeadCallRecord(
                model=str(data.model or ""),
                messages=[dict(item) for item in data.input or []],
                output=[dict(item) for item in data.output or []],
                input_tokens=int(usage.get("input_tokens") or usage.get("prompt_tokens") or 0),
                output_tokens=int(
                    usage.get("output_tokens") or usage.get("completion_tokens") or 0
                ),
                cost_usd=0.0,
                latency_ms=_duration_ms(span.started_at, span.ended_at),
                error=error.get("message") if isinstance(error, dict) else None,
            )
        )

    def on_trace_start(self, trace: Trace) -> None:
        pass

    def on_trace_end(self, trace: Trace) -> None:
        pass

    def on_span_start(self, span: Span[Any]) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


@functools.cache
def transcript_processor() -> TranscriptProcessor:
    """The process's processor, installed (replacing OpenAI's exporter) on first use.

    Call it while setting up (the orchestrator does, in its constructor), not from racing tasks.
    """
    processor = TranscriptProcessor()
    set_trace_processors([processor])
    return processor


def _duration_ms(started: str | None, ended: str | None) -> float:
    if not started or not ended:
        return 0.0
    try:
        return (
            datetime.fromisoformat(ended) - datetime.fromisoformat(started)
        ).total_seconds() * 1000
    except ValueError:
        return 0.0
