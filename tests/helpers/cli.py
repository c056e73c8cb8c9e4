"""Running ``understudy`` as users do: in a process of its own (``python -m serving``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx

from tests.helpers.http_server import free_port

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


@contextmanager
def understudy_serve(
    *args: str, env: Mapping[str, str], start_timeout_s: float = 90
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``understudy serve ARGS`` on a free port, in a process of its own, until ``/healthz``
    answers; yields (the process, its root URL) and stops it on exit (a test that stops it
    itself, as the shutdown tests do, finds it already gone). ``env`` is added to this
    process's environment. A server that dies while starting fails with its stderr.

    Stopped with SIGTERM, as an operator would: with ``--workers`` its worker processes are
    its children, and a SIGKILL would leave them running without it."""
    port = free_port()
    process = subprocess.Popen(
        [*UNDERSTUDY, "serve", "--port", str(port), *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "server did not start"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
