"""The lead's tools as openai-agents ``FunctionTool`` objects.

Tools never crash a run: every failure — expected ("the math specialist is unavailable — answer
yourself") or not (any exception at all) — becomes text the lead can read and act on, and no
call outlives the run's time budget (:meth:`tools.context.ToolDeps.remaining_s`). Every call is
logged on the run context (:class:`tools.context.ToolDeps`) with its latency, confidence and
error for the transcript. Specialist tools are built from the catalog, so a newly promoted
specialist is a tool at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agents import FunctionTool, RunContextWrapper, Tool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from specialists.catalog import Catalog, Specialist
from specialists.errors import SpecialistError, UnderstudyError
from tools.calculator import MAX_EXPRESSION_CHARS, CalculatorError
from tools.calculator_pool import shared_pool
from tools.context import ToolCall, ToolDeps
from tools.sandbox import MAX_CODE_CHARS, SandboxLimits, run_python, sandbox_verdict

logger = logging.getLogger(__name__)

MAX_REQUEST_CHARS = 8000


class SpecialistArgs(BaseModel):
    """Arguments of a specialist tool."""

    model_config = ConfigDict(extra="forbid")
    request: str = Field(
        min_length=1,
        max_length=MAX_REQUEST_CHARS,
        description="The complete, self-contained task for the specialist, with all the "
        "numbers, names and text it needs (it does not see the conversation).",
    )


class CalculatorArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expression: str = Field(
        min_length=1,
        max_length=MAX_EXPRESSION_CHARS,
        description="A math expression, e.g. '17*24 + 3/4', 'sqrt(2)**2', "
        "'solve(x**2 - 5*x + 6, x)'.",
    )


class RunPythonArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=MAX_CODE_CHARS, description="Python source.")
    tests: str = Field(
        "",
        max_length=MAX_CODE_CHARS,
        description="Test statements run after the code, e.g. 'assert f(2) == 4'.",
    )


def specialist_tool_name(specialist: Specialist) -> str:
    return f"{specialist.name}_specialist"


def build_tools(catalog: Catalog, sandbox: SandboxLimits | None = None) -> list[Tool]:
    """One tool per specialist, plus the exact tools.

    ``run_python`` only where snippets can run: behind the OS boundary, or without it when
    ``sandbox.allow_unsandboxed`` says so. Elsewhere the lead is never offered it.
    """
    tools: list[Tool] = [*(specialist_tool(s) for s in catalog), calculator_tool()]
    if sandbox_verdict().available or (sandbox is not None and sandbox.allow_unsandboxed):
        tools.append(run_python_tool())
    return tools


def specialist_tool(specialist: Specialist) -> FunctionTool:
    """A tool that asks ``specialist`` and returns its answer with its confidence."""

    async def invoke(deps: ToolDeps, args: SpecialistArgs, call: ToolCall) -> str:
        call.specialist = specialist.name
        try:
            generation = await deps.backend.generate(
                specialist, [{"role": "user", "content": args.request}]
            )
        except UnderstudyError as exc:  # a refused call, or a model that cannot load
            call.error = str(exc)
            reason = exc.reason if isinstance(exc, SpecialistError) else "its model cannot load"
            return (
                f"ERROR: the {specialist.name} specialist could not answer ({reason}). "
                "Answer the request yourself."
            )
        call.confidence = generation.confidence.mean_prob
        call.slm_prompt_tokens = generation.usage.prompt_tokens
        call.slm_completion_tokens = generation.usage.completion_tokens
        verdict = specialist.validate(generation.text)
        return json.dumps(
            {
                "specialist": specialist.name,
                "answer": generation.text,
                "confidence": round(generation.confidence.mean_prob, 3),
                "lowest_token_probability": round(generation.confidence.min_prob, 3),
                "format_check": "passed" if verdict.ok else f"failed: {verdict.reason}",
            },
            ensure_ascii=False,
        )

    return _tool(specialist_tool_name(specialist), specialist.description, SpecialistArgs, invoke)


def calculator_tool() -> FunctionTool:
    async def invoke(_deps: ToolDeps, args: CalculatorArgs, call: ToolCall) -> str:
        try:
            result = await shared_pool().evaluate(args.expression)
        except CalculatorError as exc:
            call.error = str(exc)
            return f"ERROR: {exc}"
        if result.decimal is None:
            return result.exact
        return f"{result.exact} (≈ {result.decimal})"

    return _tool(
        "calculator",
        "Exact arithmetic and algebra (sympy): big integers, fractions, roots, solve(), "
        "simplify(), factor(). Use it to check every number before you state it.",
        CalculatorArgs,
        invoke,
    )


def run_python_tool() -> FunctionTool:
    async def invoke(deps: ToolDeps, args: RunPythonArgs, call: ToolCall) -> str:
        remaining = deps.remaining_s()
        # A thread cannot be cancelled: the sandbox's own wall clock must end with the run.
        limits = deps.sandbox if remaining is None else deps.sandbox.within(remaining)
        result = await asyncio.to_thread(run_python, args.code, args.tests, limits=limits)
        if not result.ok:
            call.error = result.limit or f"exit code {result.exit_code}"
        return result.summary()

    return _tool(
        "run_python",
        "Runs Python code followed by test statements in a sandbox (standard library only, "
        "one process and one thread, no network, no files outside a scratch directory, time "
        "and memory limits) and reports pass/fail with output. Use it to verify code before "
        "you give it to the user.",
        RunPythonArgs,
        invoke,
    )


Invoke = Callable[[ToolDeps, Any, ToolCall], Awaitable[str]]


def _tool(name: str, description: str, schema: type[BaseModel], invoke: Invoke) -> FunctionTool:
    """Wrap ``invoke`` with argument validation and logging on the run context."""

    async def on_invoke(ctx: RunContextWrapper[ToolDeps], raw_args: str) -> str:
        deps = ctx.context
        started = time.perf_counter()
        try:
            parsed_input = json.loads(raw_args or "{}")
        except ValueError:
            parsed_input = {"raw": raw_args}
        call = ToolCall(name=name, input=parsed_input, output="", latency_ms=0.0)
        try:
            try:
                args = schema.model_validate(parsed_input)
            except ValidationError as exc:
                call.error = "invalid arguments"
                output = f"ERROR: invalid arguments for {name}: {exc.errors(include_url=False)}"
            else:
                output = await _within_budget(name, invoke, deps, args, call)
        except asyncio.CancelledError:
            # The run ended around the call (its deadline struck the lead and the tool at
            # once, a stop, a client gone): the transcript still shows what was being waited on.
            call.error = "the run ended before the tool finished"
            raise
        else:
            call.output = output
            return output
        finally:
            call.latency_ms = (time.perf_counter() - started) * 1000
            deps.calls.append(call)

    params = schema.model_json_schema()
    params.pop("title", None)
    params.pop("description", None)  # the tool description says it, for the lead to read
    return FunctionTool(
        name=name,
        description=description,
        params_json_schema=params,
        on_invoke_tool=on_invoke,
        strict_json_schema=False,
    )


async def _within_budget(
    name: str, invoke: Invoke, deps: ToolDeps, args: BaseModel, call: ToolCall
) -> str:
    """``invoke``, stopped when the run's budget runs out, with any failure as tool output."""
    budget = asyncio.timeout(deps.remaining_s())
    try:
        async with budget:
            return await invoke(deps, args, call)
    except Exception as exc:  # a tool must never take the run down; the lead reads what failed
        if isinstance(exc, TimeoutError) and budget.expired():
            call.error = "the run's time budget ran out"
            return (
                f"ERROR: the run's time budget ran out before {name} finished. "
                "Answer with what you have."
            )
        logger.exception("tool %s failed", name)
        call.error = f"{type(exc).__name__}: {exc}"
        return f"ERROR: {name} failed ({type(exc).__name__}: {exc}). Do without it."
