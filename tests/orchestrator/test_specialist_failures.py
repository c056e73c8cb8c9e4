"""Whatever a specialist's backend raises, the run degrades the way a ``SpecialistError`` does:
the router's lead reads the error as tool output, the cascade escalates to the lead, ``slm`` ends
with a typed failure, and every run is recorded. The real local backend (a tiny Llama) wherever
it can be made to fail; a backend with a bug only for what no real backend raises on purpose."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.outcome import FailureKind
from orchestrator.run import Orchestrator
from orchestrator.testing import ScriptedLead, reply, tool_calls
from orchestrator.transcripts import TranscriptStore
from specialists import SLMBackend
from specialists.local import LocalBackend
from tests.helpers.backends import BrokenBackend
from tests.orchestrator.test_modes import catalog, lead_for


@dataclass(frozen=True)
class Fault:
    """A backend that fails every call, and how the failure must show in the run."""

    build: Callable[[Path], Awaitable[SLMBackend]]
    kind: FailureKind
    """The ``slm`` run's failure kind (it has no fallback)."""
    says: str
    """What the recorded error must say."""


async def prompt_too_long(model_dir: Path) -> SLMBackend:
    return LocalBackend(model_dir, base_ref="tiny", max_input_tokens=16)


async def shutting_down(model_dir: Path) -> SLMBackend:
    local = LocalBackend(model_dir, base_ref="tiny")
    await local.warm_up()
    await local.aclose()
    return local


async def buggy(_model_dir: Path) -> SLMBackend:
    return BrokenBackend()


async def timing_out(_model_dir: Path) -> SLMBackend:
    return BrokenBackend(TimeoutError("read timed out"))


FAULTS = {
    "prompt-too-long": Fault(
        prompt_too_long, FailureKind.specialist_failed, "the local backend accepts 16"
    ),
    "shutting-down": Fault(
        shutting_down, FailureKind.specialist_unavailable, "the local backend is shutting down"
    ),
    "unexpected-exception": Fault(
        buggy, FailureKind.specialist_failed, "RuntimeError: index out of range in the batcher"
    ),
    "timeout-raised-by-the-backend": Fault(
        timing_out, FailureKind.specialist_unavailable, "read timed out"
    ),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_any_specialist_failure_degrades_every_mode_and_is_recorded(
    fault: Fault, tiny_model_dir: Path, transcript_store: TranscriptStore
) -> None:
    backend = await fault.build(tiny_model_dir)
    script = [tool_calls(("math_specialist", {"request": "2+2"})), reply("4"), reply("4")]
    try:
        with ScriptedLead(script) as lead:
            orchestrator = Orchestrator(
                catalog=catalog(), backend=backend, lead=lead_for(lead), store=transcript_store
            )
            routed = await orchestrator.run("What is 2+2?", "router")
            cascaded = await orchestrator.run("What is 2+2?", "cascade", specialist="math")
            alone = await orchestrator.run("What is 2+2?", "slm", specialist="math")
        lead.assert_complete()
    finally:
        await backend.aclose()
    assert routed.answer == "4" and routed.error is None
    tool = (await transcript_store.get_run(routed.run_id)).tool_calls[0]
    assert fault.says in tool.error and tool.output.startswith("ERROR:")
    assert tool.output in str(lead.requests[1]["messages"])  # the lead read what failed
    assert cascaded.answer == "4" and cascaded.route == "cascade:escalated:math"
    draft = (await transcript_store.get_run(cascaded.run_id)).tool_calls[0]
    assert fault.says in draft.error
    assert alone.answer is None and alone.failure.kind is fault.kind
    assert fault.says in alone.failure.message
    recorded = await transcript_store.get_run(alone.run_id)
    assert recorded.failure == alone.failure and fault.says in recorded.tool_calls[0].error
