"""``run_python``: a snippet and its tests, run behind the OS boundary or not at all."""

from __future__ import annotations

import logging
import signal

from specialists.errors import UnderstudyError
from tools.sandbox.bubblewrap import run_bubblewrapped
from tools.sandbox.launch import EXIT_CODES, Completed, run_unsandboxed
from tools.sandbox.limits import SandboxLimits, SandboxResult
from tools.sandbox.verdict import SandboxVerdict, sandbox_verdict

logger = logging.getLogger(__name__)

MAX_CODE_CHARS = 200_000
_LIMIT_BY_EXIT = {code: limit for limit, code in EXIT_CODES.items()}
_LIMIT_BY_SIGNAL: dict[int, str] = {signal.SIGXCPU.value: "cpu", signal.SIGKILL.value: "cpu"}
"""The kernel sends SIGXCPU at the soft CPU limit, SIGKILL at the hard one a second later."""


class SandboxUnavailable(UnderstudyError):
    """Snippets cannot run: the OS boundary is missing and running without it is not allowed."""

    def __init__(self, verdict: SandboxVerdict) -> None:
        self.verdict = verdict
        super().__init__(f"the code sandbox is unavailable: {verdict}")


def run_python(code: str, tests: str = "", *, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run ``code`` followed by ``tests`` (e.g. ``assert f(2) == 4`` lines) in the sandbox.

    Blocks for up to ``limits.timeout_s``; async callers use a worker thread.

    Raises:
        ValueError: the code and tests are larger than ``MAX_CODE_CHARS``.
        SandboxUnavailable: there is no OS boundary here and ``limits.allow_unsandboxed`` is off.
    """
    limits = limits or SandboxLimits()
    if len(code) + len(tests) > MAX_CODE_CHARS:
        raise ValueError(f"code and tests exceed {MAX_CODE_CHARS} characters")
    source = f"{code}\n\n{tests}\n" if tests else f"{code}\n"
    verdict = sandbox_verdict()
    if verdict.bwrap is not None:
        return _result(run_bubblewrapped(verdict.bwrap, source, limits), sandboxed=True)
    if not limits.allow_unsandboxed:
        raise SandboxUnavailable(verdict)
    logger.warning(
        "RUNNING A SNIPPET WITHOUT THE SANDBOX (UNDERSTUDY_SANDBOX_ALLOW_UNSANDBOXED is on): "
        "it can read what this service can read. %s",
        verdict,
    )
    return _result(run_unsandboxed(source, limits), sandboxed=False)


def _result(completed: Completed, *, sandboxed: bool) -> SandboxResult:
    ok = completed.exit_code == 0
    return SandboxResult(
        ok=ok,
        exit_code=completed.exit_code,
        stdout=completed.stdout,
        stderr=completed.stderr,
        duration_s=completed.duration_s,
        limit=None if ok else _which_limit(completed),
        truncated=completed.truncated,
        sandboxed=sandboxed,
    )


def _which_limit(completed: Completed) -> str | None:
    if completed.exit_code is None:
        return "timeout"
    if completed.output_full:
        return "output"
    if completed.signal is not None:
        return _LIMIT_BY_SIGNAL.get(completed.signal)
    return None if completed.exit_code is None else _LIMIT_BY_EXIT.get(completed.exit_code)
