"""The lead's tools: one per specialist, an exact calculator, and a sandboxed Python runner."""

from tools.calculator import CalculatorError, CalculatorResult, calculate
from tools.calculator_pool import CalculatorPool, shared_pool
from tools.context import ToolCall, ToolDeps
from tools.function_tools import build_tools, specialist_tool, specialist_tool_name
from tools.sandbox import (
    SandboxLimits,
    SandboxResult,
    SandboxUnavailable,
    SandboxVerdict,
    run_python,
    sandbox_verdict,
)

__all__ = [
    "CalculatorError",
    "CalculatorPool",
    "CalculatorResult",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailable",
    "SandboxVerdict",
    "ToolCall",
    "ToolDeps",
    "build_tools",
    "calculate",
    "run_python",
    "sandbox_verdict",
    "shared_pool",
    "specialist_tool",
    "specialist_tool_name",
]
