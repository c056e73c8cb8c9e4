"""The lead's tools: one per specialist, an exact calculator, and a sandboxed Python runner."""

from tools.calculator import CalculatorError, CalculatorResult, calculate
from tools.context import ToolCall, ToolDeps
from tools.function_tools import build_tools, specialist_tool, specialist_tool_name
from tools.sandbox import SandboxLimits, SandboxResult, run_python

__all__ = [
    "CalculatorError",
    "CalculatorResult",
    "SandboxLimits",
    "SandboxResult",
    "ToolCall",
    "ToolDeps",
    "build_tools",
    "calculate",
    "run_python",
    "specialist_tool",
    "specialist_tool_name",
]
