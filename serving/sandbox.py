"""The code sandbox as the settings configure it: its limits, and whether snippets can run."""

from __future__ import annotations

import logging

from serving.settings import Settings
from tools.sandbox import SandboxLimits, SandboxUnavailable, SandboxVerdict, sandbox_verdict

logger = logging.getLogger(__name__)

UNSAFE_SETTING = "UNDERSTUDY_SANDBOX_ALLOW_UNSANDBOXED"


def sandbox_limits(settings: Settings) -> SandboxLimits:
    sandbox = settings.sandbox
    return SandboxLimits(
        timeout_s=sandbox.timeout_s,
        cpu_s=sandbox.cpu_s,
        memory_mb=sandbox.memory_mb,
        file_bytes=sandbox.file_bytes,
        output_bytes=sandbox.output_bytes,
        open_files=sandbox.open_files,
        allow_unsandboxed=sandbox.allow_unsandboxed,
    )


def require_sandbox(settings: Settings) -> SandboxVerdict:
    """This machine's sandbox verdict (checked once per process; blocks the first time).

    Raises:
        SandboxUnavailable: the OS boundary cannot be had and the settings do not allow running
            snippets without it; the message says why, and how to fix it.
    """
    verdict = sandbox_verdict()
    if verdict.available:
        return verdict
    if not settings.sandbox.allow_unsandboxed:
        raise SandboxUnavailable(verdict)
    logger.warning(
        "run_python RUNS SNIPPETS WITHOUT THE SANDBOX (%s=true): %s", UNSAFE_SETTING, verdict
    )
    return verdict
