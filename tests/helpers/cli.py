"""Running ``understudy`` as users do: in a process of its own (``python -m serving``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

UNDERSTUDY = (sys.executable, "-m", "serving")
"""The command line that starts ``understudy`` with this interpreter."""


def understudy(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``understudy ARGS`` run to completion, output captured as text; ``env`` is added to this
    process's environment (which the test fixtures have isolated)."""
    return subprocess.run(
        [*UNDERSTUDY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
