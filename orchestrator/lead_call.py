"""One run's turn with the lead: the agent loop, whole or streamed, with the caller's tools.

The lead's agents are built once per lineup (:class:`~orchestrator.run_state.Lineup`); a run
whose caller sent its own function tools gets a copy of the agent that also offers them and
stops at them (:mod:`orchestrator.app_tools`). The lead's calls are captured for the transcript
whatever happens; a lead that fails becomes :class:`~orchestrator.lead.LeadFailed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from agents import (
    Agent,
    ModelSettings,
    RunConfig,
    RunItem,
    Runner,
    RunResultStreaming,
    StopAtTools,
    StreamEvent,
)
from openai.types.responses import ResponseCompletedEvent, ResponseTextDeltaEvent

from orchestrator.app_tools import AppTools, function_tools, hand_over, lead_items
from orchestrator.budget import RunBudget, TokenBudget
from orchestrator.lead import LEAD_FAILURES, call_settings, lead_failed
from orchestrator.recorder import TranscriptProcessor
from orchestrator.run_state import RunState
from specialists.backend import ChatMessage
from tools.context import ToolDeps


@dataclass(frozen=True, slots=True)
class LeadCall:
    """What a run needs to ask its lead: the budget every call is held to, the lead's name for
    its failures, and the processor that captures its calls."""

    budget: RunBudget
    lead_name: str
    processor: TranscriptProcessor

    async def ask(
        self,
        state: RunState,
        deps: ToolDeps,
        agent: Agent[ToolDeps],
        messages: list[ChatMessage],
        *,
        with_tools: bool,
    ) -> None:
        """Run the lead loop on ``messages`` and set ``state``'s answer — or, when the lead
        called the caller's tools, its ``app_tool_calls`` (finish reason ``tool_calls``; the
        text the lead wrote beside them is not an answer, and is dropped from it) and the
        ``lead_turn`` that made them, which the caller's next request continues
        (:mod:`orchestrator.handover`).

        ``with_tools``: ``agent`` has our tools (router), so turns are held when streaming.

        Raises:
            LeadFailed: The lead failed, after its retries.
        """
        app = state.options.tools
        offered = app if app is not None and (app.callable or not with_tools) else None
        if offered is not None:
            agent = agent.clone(
                tools=[*agent.tools, *function_tools(offered)],
                tool_use_behavior=StopAtTools(stop_at_tool_names=offered.names),
            )
        trace_id = f"trace_{state.run_id}"
        config = RunConfig(
            trace_id=trace_id,
            workflow_name="understudy",
            trace_include_sensitive_data=True,
            model_settings=_settings(state, offered),
        )
        arguments: dict[str, Any] = {
            "context": deps,
            "hooks": TokenBudget(self.budget.max_lead_tokens),
            "max_turns": self.budget.max_lead_turns,
            "run_config": config,
        }
        items = lead_items(messages)
        with self.processor.capture(trace_id) as capture:
            try:
                async with asyncio.timeout(state.remaining_s()):
                    if state.on_delta is None:
                        result = await Runner.run(agent, items, **arguments)
                        final_output, new_items = result.final_output, result.new_items
                    else:
                        streaming = Runner.run_streamed(agent, items, **arguments)
                        try:
                            await _forward_answer_text(
                                state,
                                streaming.stream_events(),
                                hold_turns=with_tools or offered is not None,
                            )
                        finally:
                            await _settled(streaming)
                        final_output, new_items = streaming.final_output, streaming.new_items
            except LEAD_FAILURES as exc:
                raise lead_failed(exc, self.lead_name) from exc
            finally:
                state.lead_calls.extend(capture.lead_calls)
        _conclude(state, offered, final_output, new_items)


def _settings(state: RunState, offered: AppTools | None) -> ModelSettings | None:
    """The caller's sampling and attribution, and how the lead may use the caller's tools."""
    settings = call_settings(state.options)
    if offered is None:
        return settings
    tools = ModelSettings(tool_choice=offered.choice, parallel_tool_calls=offered.parallel)
    return settings.resolve(tools) if settings is not None else tools


def _conclude(
    state: RunState, offered: AppTools | None, final_output: Any, items: Sequence[RunItem]
) -> None:
    calls, turn = hand_over(items, offered) if offered is not None else ((), [])
    if calls:
        state.app_tool_calls = calls
        state.lead_turn = turn
        state.finish_reason = "tool_calls"
        state.answer = ""
    else:
        state.answer = str(final_output)


async def _settled(streaming: RunResultStreaming) -> None:
    """Let a streamed lead run's own task (the SDK runs the agent loop in one) finish unwinding.

    A stream cut short (the run's deadline, a stop) only asks that task to cancel; the lead call
    and the tool call it was waiting on are logged as it unwinds, and must be before the run's
    transcript is made.
    """
    task = streaming.run_loop_task
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task})


async def _forward_answer_text(
    state: RunState, events: AsyncIterator[StreamEvent], *, hold_turns: bool
) -> None:
    """Hand the answering turn's text to ``state.on_delta``, and no other turn's.

    With ``hold_turns`` (a lead with tools), a turn's text is held until the turn ends: a turn
    that also calls tools (the lead thinking aloud before delegating) is not the answer, and its
    text is dropped; the answer arrives when its turn is complete, in the deltas it streamed as.
    A lead without tools answers in its one turn, as it streams.
    """
    assert state.on_delta is not None
    held: list[str] = []
    async for event in events:
        if event.type != "raw_response_event":
            continue
        if isinstance(event.data, ResponseTextDeltaEvent) and not hold_turns:
            state.streamed = True
            await state.on_delta(event.data.delta)
        elif isinstance(event.data, ResponseTextDeltaEvent):
            held.append(event.data.delta)
        elif isinstance(event.data, ResponseCompletedEvent):
            turn, held = held, []
            if any(item.type == "function_call" for item in event.data.response.output):
                continue
            for delta in turn:
                state.streamed = True
                await state.on_delta(delta)
