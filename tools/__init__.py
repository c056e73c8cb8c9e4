"""The lead's tools: one per specialist, an exact calculator, and a sandboxed Python runner.

Names are imported lazily: the transcript store imports ``tools.context`` for
:class:`ToolCall`, and must not pay for the agents SDK or sympy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "CalculatorError": "tools.calculator",
    "CalculatorPool": "tools.calculator_pool",
    "CalculatorResult": "tools.calculator",
    "SandboxLimits": "tools.sandbox",
    "SandboxResult": "tools.sandbox",
    "SandboxUnavailable": "tools.sandbox",
    "SandboxVerdict": "tools.sandbox",
    "ToolCall": "tools.context",
    "ToolDeps": "tools.context",
    "build_tools": "tools.function_tools",
    "calculate": "tools.calculator",
    "run_python": "tools.sandbox",
    "sandbox_verdict": "tools.sandbox",
    "shared_pool": "tools.calculator_pool",
    "specialist_tool": "tools.function_tools",
    "specialist_tool_name": "tools.function_tools",
}

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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tools' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
