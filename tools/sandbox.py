"""Run untrusted Python (a specialist's code plus its tests) in a fenced child process.

Fences, each enforced outside the snippet's control:

- a fresh process in its own session, killed with its whole group at the wall-clock timeout;
- resource limits: CPU seconds, address space (memory), file size (caps output too), open files,
  no core dumps;
- no network: a new network namespace (``unshare -rn``) where the kernel allows it, plus an audit
  hook (``sandbox_guard.py``) that refuses sockets, child processes, native code and writes outside
  the throw-away working directory, with messages the lead can read;
- an isolated interpreter (``-I``: no site-packages of the user, no ``PYTHON*`` variables) and an
  empty environment.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GUARD = Path(__file__).with_name("sandbox_guard.py")
MAX_CODE_CHARS = 200_000


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Bounds of one sandboxed run."""

    timeout_s: float = 10.0
    """Wall-clock limit; the process group is killed after it."""
    cpu_s: int = 10
    memory_mb: int = 512
    output_bytes: int = 64 * 1024
    """stdout and stderr are each cut to this many bytes."""
    file_bytes: int = 16 * 1024 * 1024
    """Largest file the snippet may write (its own output included)."""


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """What happened to the snippet."""

    ok: bool
    """Exited with status 0 (every test assertion passed)."""
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    limit: str | None = None
    """Which limit stopped it: ``timeout``, ``cpu``, ``memory`` or ``file size``; else ``None``."""
    truncated: bool = False
    network_isolated: bool = False
    """Whether a network namespace was used (the audit hook applies either way)."""

    def summary(self, max_chars: int = 2000) -> str:
        """A compact report for a model to read."""
        state = "passed" if self.ok else f"failed ({self.limit or f'exit code {self.exit_code}'})"
        parts = [f"run {state} in {self.duration_s:.2f}s"]
        if self.stdout.strip():
            parts.append(f"stdout:\n{self.stdout[-max_chars:]}")
        if self.stderr.strip():
            parts.append(f"stderr:\n{self.stderr[-max_chars:]}")
        return "\n".join(parts)


def run_python(code: str, tests: str = "", *, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run ``code`` followed by ``tests`` (e.g. ``assert f(2) == 4`` lines) in the sandbox."""
    limits = limits or SandboxLimits()
    if len(code) + len(tests) > MAX_CODE_CHARS:
        raise ValueError(f"code and tests exceed {MAX_CODE_CHARS} characters")
    workdir = Path(tempfile.mkdtemp(prefix="understudy-sandbox-"))
    try:
        script = workdir / "main.py"
        script.write_text(f"{code}\n\n{tests}\n" if tests else f"{code}\n", encoding="utf-8")
        return _run(workdir, script, limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@functools.lru_cache(maxsize=1)
def network_namespace_prefix() -> tuple[str, ...]:
    """``unshare -rn`` when this kernel lets us create a network namespace, else nothing."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10)
    return (unshare, "-rn") if probe.returncode == 0 else ()


def _run(workdir: Path, script: Path, limits: SandboxLimits) -> SandboxResult:
    prefix = network_namespace_prefix()
    # The guard runs as `-c` source so the snippet's import path is its own directory, not ours.
    guard = GUARD.read_text(encoding="utf-8")
    command = [*prefix, sys.executable, "-I", "-B", "-c", guard, str(workdir), str(script)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    out_path, err_path = workdir / ".stdout", workdir / ".stderr"
    started = time.perf_counter()
    timed_out = False
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=lambda: _apply_limits(limits),
        )
        try:
            process.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process.pid)
            process.wait()
    duration = time.perf_counter() - started
    stdout, cut_out = _read_capped(out_path, limits.output_bytes)
    stderr, cut_err = _read_capped(err_path, limits.output_bytes)
    code = process.returncode
    return SandboxResult(
        ok=code == 0 and not timed_out,
        exit_code=None if timed_out else code,
        stdout=stdout,
        stderr=stderr,
        duration_s=duration,
        limit=_which_limit(code, stderr, timed_out),
        truncated=cut_out or cut_err,
        network_isolated=bool(prefix),
    )


def _apply_limits(limits: SandboxLimits) -> None:
    """Runs in the child between fork and exec."""
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _read_capped(path: Path, cap: int) -> tuple[str, bool]:
    size = path.stat().st_size
    with path.open("rb") as handle:
        data = handle.read(cap)
    return data.decode("utf-8", errors="replace"), size > cap


def _which_limit(code: int | None, stderr: str, timed_out: bool) -> str | None:
    if timed_out:
        return "timeout"
    if code == -signal.SIGXCPU or code == -signal.SIGKILL:
        return "cpu"
    if code == -signal.SIGXFSZ or (code and "File too large" in stderr):
        return "file size"
    if code and "MemoryError" in stderr:
        return "memory"
    return None
