"""The lead's tools as the agents SDK calls them: any failure is tool output the lead reads, no
call outlives the run's budget, and ``run_python`` is offered only where snippets can run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from agents import FunctionTool, RunContextWrapper

from specialists.backend import ChatMessage, Generation, SLMBackend
from specialists.catalog import Catalog, Specialist
from specialists.sampling import Sampling
from tests.helpers.processes import spinning_calculator_workers
from tools.context import ToolDeps
from tools.function_tools import build_tools


class BrokenBackend(SLMBackend):
    """A backend with a bug: it raises what no tool expects."""

    name = "broken"

    async def generate(
        self,
        specialist: Specialist,
        messages: Sequence[ChatMessage],
        *,
        sampling: Sampling | None = None,
    ) -> Generation:
        raise RuntimeError("index out of range in the batcher")

    async def load_adapter(self, name: str, path: Path) -> None:
        raise NotImplementedError


def tools_and_deps(deadline_in_s: float | None = None) -> tuple[dict[str, FunctionTool], ToolDeps]:
    catalog = Catalog.default()
    deadline = None if deadline_in_s is None else time.monotonic() + deadline_in_s
    deps = ToolDeps(backend=BrokenBackend(), catalog=catalog, deadline=deadline)
    return {tool.name: tool for tool in build_tools(catalog)}, deps


async def call(tool: FunctionTool, deps: ToolDeps, **arguments: object) -> str:
    return await tool.on_invoke_tool(RunContextWrapper(deps), json.dumps(arguments))


async def test_an_unexpected_exception_becomes_output_and_is_recorded() -> None:
    tools, deps = tools_and_deps()
    output = await call(tools["math_specialist"], deps, request="What is 2 + 2?")
    assert output == (
        "ERROR: math_specialist failed (RuntimeError: index out of range in the batcher). "
        "Do without it."
    )
    (recorded,) = deps.calls
    assert recorded.error == "RuntimeError: index out of range in the batcher"
    assert recorded.output == output and recorded.specialist == "math"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("factorial(3000)", "4149359603437854085556867093086612170951"),  # 9,131 digits
        ("-" * 1999 + "1", "ERROR: the expression is nested more than 100 levels deep"),
        ("binomial(10**6, 500000)", "ERROR: the result would have more than 10,000 digits"),
    ],
)
async def test_the_calculators_hard_cases_are_answers_or_readable_errors(
    expression: str, expected: str
) -> None:
    tools, deps = tools_and_deps()
    output = await call(tools["calculator"], deps, expression=expression)
    assert output.startswith(expected)
    assert (deps.calls[0].error is None) == (not expected.startswith("ERROR"))


async def test_a_calculation_stops_when_the_runs_budget_runs_out() -> None:
    tools, deps = tools_and_deps(deadline_in_s=1.0)
    started = time.monotonic()
    output = await call(tools["calculator"], deps, expression="expand((a+b+c+d+e+f)**30)")
    assert time.monotonic() - started < 2
    assert output.startswith("ERROR: the run's time budget ran out before calculator finished.")
    assert deps.calls[0].error == "the run's time budget ran out"
    assert spinning_calculator_workers() == []  # cancelled with its worker, not left computing


async def test_a_snippet_stops_when_the_runs_budget_runs_out() -> None:
    tools, deps = tools_and_deps(deadline_in_s=1.0)
    started = time.monotonic()
    output = await call(tools["run_python"], deps, code="while True:\n    pass")
    assert time.monotonic() - started < 2.5
    assert output.startswith(("ERROR: the run's time budget ran out", "run failed (timeout)"))


async def test_a_spent_budget_runs_nothing() -> None:
    tools, deps = tools_and_deps(deadline_in_s=-1)
    output = await call(tools["run_python"], deps, code="print('ran')")
    assert output.startswith("ERROR: the run's time budget ran out before run_python finished")


async def test_run_python_reports_pass_and_fail() -> None:
    tools, deps = tools_and_deps()
    code = "def double(x):\n    return 2 * x"
    assert (await call(tools["run_python"], deps, code=code, tests="assert double(2) == 4")) == (
        deps.calls[0].output
    )
    assert deps.calls[0].output.startswith("run passed") and deps.calls[0].error is None
    failed = await call(tools["run_python"], deps, code=code, tests="assert double(2) == 5")
    assert failed.startswith("run failed (exit code 1)") and "AssertionError" in failed


OFFERED = """
import json
from specialists.catalog import Catalog
from tools.function_tools import build_tools
from tools.sandbox import SandboxLimits
for sandbox in (None, SandboxLimits(allow_unsandboxed=True)):
    print(json.dumps([tool.name for tool in build_tools(Catalog.default(), sandbox)]))
"""


def test_run_python_is_offered_only_where_snippets_can_run() -> None:
    here = {tool.name for tool in build_tools(Catalog.default())}
    assert "run_python" in here  # this machine has the OS boundary
    without_bwrap = subprocess.run(
        [sys.executable, "-c", OFFERED],
        env={**os.environ, "PATH": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    default, allowed = map(json.loads, without_bwrap.stdout.splitlines())
    assert "run_python" not in default and "calculator" in default
    assert "run_python" in allowed
