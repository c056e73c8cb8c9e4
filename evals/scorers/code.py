"""pass@1 for code answers: extract the program from a reply, run the data set's own tests on it
in the sandbox (:func:`tools.sandbox.run_python`).

Extraction, because models wrap code in prose: the fenced block that defines the function under
test; else the first Python block; else the whole reply (a bare completion). HumanEval asks to
*complete* a function, so an answer may be the whole function or only its body: a body is joined
to the prompt (as the official harness does), a whole function is placed after the prompt (so
the prompt's imports and helper functions stay defined).

These functions block (one sandboxed process per call); async callers use ``asyncio.to_thread``.
Where the sandbox cannot run, they raise :class:`~tools.sandbox.SandboxUnavailable`, which says
why and how to fix it: model-written code is never run without the OS boundary.
"""

from __future__ import annotations

import re
import textwrap

from evals.samples import NO_ANSWER, Score
from tools.sandbox import SandboxLimits, SandboxResult, run_python

CODE_LIMITS = SandboxLimits(timeout_s=20.0, cpu_s=10)
"""Generous for a shared CPU: the official tests take well under a second on a free core."""

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.M | re.S)
_PYTHON_TAGS = frozenset({"", "python", "python3", "py"})
_STDERR_TAIL = 1500


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The code in a reply: the fenced block defining ``entry_point``, else the first Python
    block, else the whole text."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text)]
    python = [body for tag, body in blocks if tag in _PYTHON_TAGS] or [b for _, b in blocks]
    if entry_point is not None:
        defining = [body for body in python if defines(body, entry_point)]
        if defining:
            return defining[0]
    return python[0] if python else text


def defines(code: str, name: str) -> bool:
    """Whether ``code`` defines a function called ``name`` (at any indentation)."""
    return (
        re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.M)
        is not None
    )


def humaneval_program(prompt: str, entry_point: str, answer: str) -> str:
    """The program to test for a HumanEval answer: prompt + body, or prompt then the function."""
    code = extract_code(answer, entry_point)
    if defines(code, entry_point):
        return f"{prompt}\n{code}"
    return prompt + _as_body(code)


def _as_body(code: str) -> str:
    """A function body indented under the prompt's signature, however the model indented it."""
    body = code.strip("\n")
    if body[:1] in (" ", "\t"):  # already indented as a body
        return body + "\n"
    return textwrap.indent(body, "    ") + "\n"


def run_tests(program: str, tests: str, *, limits: SandboxLimits = CODE_LIMITS) -> Score:
    """1 when ``program`` followed by ``tests`` exits cleanly in the sandbox, else 0."""
    result = run_python(program, tests, limits=limits)
    return Score(float(result.ok), _details(result))


def score_humaneval(
    answer: str | None,
    *,
    prompt: str,
    entry_point: str,
    test: str,
    limits: SandboxLimits = CODE_LIMITS,
) -> Score:
    """pass@1 of one HumanEval answer with the problem's ``check(candidate)`` tests."""
    if answer is None:
        return NO_ANSWER
    program = humaneval_program(prompt, entry_point, answer)
    return run_tests(program, f"{test}\n\ncheck({entry_point})\n", limits=limits)


def score_mbpp(
    answer: str | None,
    *,
    tests: list[str],
    setup: str = "",
    entry_point: str | None = None,
    limits: SandboxLimits = CODE_LIMITS,
) -> Score:
    """pass@1 of one MBPP answer with the task's ``assert`` lines (after its setup code)."""
    if answer is None:
        return NO_ANSWER
    program = extract_code(answer, entry_point)
    return run_tests(f"{program}\n{setup}", "\n".join(tests), limits=limits)


def _details(result: SandboxResult) -> dict[str, object]:
    details: dict[str, object] = {"passed": result.ok, "duration_s": round(result.duration_s, 3)}
    if not result.ok:
        stderr = result.stderr.strip()
        details["error"] = result.limit or (stderr.splitlines()[-1] if stderr else "failed")
        details["stderr"] = stderr[-_STDERR_TAIL:]
    return details
