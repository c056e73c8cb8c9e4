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
from orchestrator.lead import LEAD_FAILURES, LeadFailed, call_settings, lead_failed
from orchestrator.lead_text import LeadText, last_message
from orchestrator.outcome import Failure, FailureKind
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
        called the caller's tools, its ``app_tool_calls`` (finish reason ``tool_calls``), the
        text the lead wrote beside them as the answer (``""`` when it wrote none: OpenAI
        returns both) and the ``lead_turn`` that made them, which the caller's next request
        continues (:mod:`orchestrator.handover`).

        When the caller asked for ``logprobs``, they are the lead's own for the text it
        answers with (:mod:`orchestrator.lead_text`) — in ``router`` too, where that text may
        repeat a specialist's answer: the tokens are the lead's. Streamed or not, they come
        whole with the result.

        ``with_tools``: ``agent`` has our tools (router), so turns are held when streaming.

        Raises:
            LeadFailed: The lead failed, after its retries; or it answered text without the
                token logprobs the caller asked for (``lead_refused``: its provider does not
                give them, and would not on another try), which must not be handed over as if
                none were asked; ``router`` and ``cascade`` then degrade to a specialist's
                answer, whose logprobs they have.
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
                        responses = result.raw_responses
                    else:
                        streaming = Runner.run_streamed(agent, items, **arguments)
                        try:
                            await _forward_answer_text(
                                state,
                                streaming.stream_events(),
                                hold_turns=with_tools or offered is not None,
                                handed_over=set(offered.names) if offered is not None else set(),
                            )
                        finally:
                            await _settled(streaming)
                        final_output, new_items = streaming.final_output, streaming.new_items
                        responses = streaming.raw_responses
            except LEAD_FAILURES as exc:
                raise lead_failed(exc, self.lead_name) from exc
            finally:
                state.lead_calls.extend(capture.lead_calls)
        _conclude(state, offered, final_output, new_items, last_message(responses), self.lead_name)


def _settings(state: RunState, offered: AppTools | None) -> ModelSettings | None:
    """The caller's sampling and attribution, and how the lead may use the caller's tools."""
    settings = call_settings(state.options)
    if offered is None:
        return settings
    tools = ModelSettings(tool_choice=offered.choice, parallel_tool_calls=offered.parallel)
    return settings.resolve(tools) if settings is not None else tools


def _conclude(
    state: RunState,
    offered: AppTools | None,
    final_output: Any,
    items: Sequence[RunItem],
    last: LeadText,
    lead_name: str,
) -> None:
    """Set ``state``'s answer from the run's end, or raise before touching it.

    Raises:
        LeadFailed: The caller asked for logprobs, and the lead answered text without them.
    """
    calls, turn = hand_over(items, offered) if offered is not None else ((), [])
    answer = last.text if calls else str(final_output)
    asked = state.options.sampling.logprobs
    if asked and answer and last.logprobs is None:
        message = (
            f"lead {lead_name} answered without the token logprobs the request asked for "
            "(logprobs); its provider may not give them"
        )
        raise LeadFailed(Failure(FailureKind.lead_refused, message))
    if calls:
        state.app_tool_calls = calls
        state.lead_turn = turn
        state.finish_reason = "tool_calls"
    state.answer = answer
    if asked:
        state.logprobs = last.logprobs or ()


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
    state: RunState,
    events: AsyncIterator[StreamEvent],
    *,
    hold_turns: bool,
    handed_over: set[str],
) -> None:
    """Hand the answering turn's text to ``state.on_delta``, and no other turn's.

    With ``hold_turns`` (a lead with tools), a turn's text is held until the turn ends: a turn
    that calls only our tools (the lead thinking aloud before delegating) is not the answer, and
    its text is dropped; a turn that calls one of the ``handed_over`` tools (the caller's) ends
    the run, and its text goes out beside those calls. The answer arrives when its turn is
    complete, in the deltas it streamed as. A lead without tools answers in its one turn, as
    it streams.
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
            called = {i.name for i in event.data.response.output if i.type == "function_call"}
            if called and not called & handed_over:
                continue
            for delta in turn:
                state.streamed = True
                await state.on_delta(delta)
