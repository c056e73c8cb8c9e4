"""Start the snippet's interpreter under the guard, stop it at the wall clock, keep its output.

Shared by both ways of running a snippet — inside bubblewrap (:mod:`tools.sandbox.bubblewrap`)
and, where an operator allowed it, without the OS boundary (:func:`run_unsandboxed`).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.sandbox.limits import SandboxLimits

GUARD_SOURCE = Path(__file__).with_name("guard.py").read_text(encoding="utf-8")
"""Run as ``-c`` source, so that the snippet's import path is its own directory, not ours."""
EXIT_CODES = {"memory": 101, "file size": 102}
"""Exit statuses the guard ends the interpreter with when a limit stopped the snippet."""
SCRIPT_NAME = "main.py"
ENVIRONMENT = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
"""All the environment a snippet gets (plus ``HOME``, its scratch directory)."""


@dataclass(frozen=True, slots=True)
class Completed:
    """A finished (or stopped) snippet process."""

    exit_code: int | None
    """The exit status; ``None`` when the wall clock stopped it."""
    signal: int | None
    """The signal that ended it, if one did."""
    stdout: str
    stderr: str
    truncated: bool
    """stdout or stderr was longer than the limits keep."""
    output_full: bool
    """stdout or stderr reached the file size limit (an output flood)."""
    duration_s: float


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A private host directory for one run (the script, the output files), removed after."""
    with tempfile.TemporaryDirectory(prefix="understudy-sandbox-") as path:
        yield Path(path)


def guard_argv(python: str, *, root: str, limits: SandboxLimits, single_task: bool) -> list[str]:
    """The interpreter's command line: the guard, told where the script is and what limits to set.

    ``single_task`` adds ``RLIMIT_NPROC`` = 1, which only makes sense in a user namespace of
    the snippet's own (elsewhere it would count every process of the service's user).
    """
    cpu = limits.cpu_s
    memory = limits.memory_mb * 1024 * 1024
    rlimits = {
        "RLIMIT_CPU": (cpu, cpu + 1),
        "RLIMIT_AS": (memory, memory),
        "RLIMIT_FSIZE": (limits.file_bytes, limits.file_bytes),
        "RLIMIT_NOFILE": (limits.open_files, limits.open_files),
        "RLIMIT_CORE": (0, 0),
    }
    if single_task:
        rlimits["RLIMIT_NPROC"] = (1, 1)
    return [
        python,
        "-I",
        "-B",
        "-c",
        GUARD_SOURCE,
        root,
        f"{root}/{SCRIPT_NAME}",
        str(EXIT_CODES["memory"]),
        str(EXIT_CODES["file size"]),
        *(f"{name}={soft}:{hard}" for name, (soft, hard) in rlimits.items()),
    ]


def run_captured(
    command: Sequence[str],
    *,
    folder: Path,
    limits: SandboxLimits,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    exit_signal_offset: int | None = None,
) -> Completed:
    """Run ``command`` with stdout and stderr in files under ``folder``; kill its process group
    at ``limits.timeout_s``.

    The files are bounded by the snippet's ``RLIMIT_FSIZE``; only ``limits.output_bytes`` of
    each are read back, so an output flood costs neither memory nor more than that much disk.
    ``exit_signal_offset``: a launcher that reports a child's death by signal N as exit status
    offset + N (bubblewrap: 128).
    """
    out_path, err_path = folder / "stdout", folder / "stderr"
    started = time.perf_counter()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env if env is not None else {},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
        try:
            timed_out = not _exits_within(process, limits.timeout_s)
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    duration = time.perf_counter() - started
    stdout, cut_out, full_out = _read_capped(out_path, limits)
    stderr, cut_err, full_err = _read_capped(err_path, limits)
    code = process.returncode
    died_of = -code if code < 0 else None
    if exit_signal_offset is not None and 0 < code - exit_signal_offset < signal.NSIG:
        died_of = code - exit_signal_offset
    return Completed(
        exit_code=None if timed_out else code,
        signal=died_of,
        stdout=stdout,
        stderr=stderr,
        truncated=cut_out or cut_err,
        output_full=full_out or full_err,
        duration_s=duration,
    )


def run_unsandboxed(source: str, limits: SandboxLimits) -> Completed:
    """Run ``source`` in a plain child process: the guard's audit hook and resource limits, a
    throw-away directory, an empty environment — and nothing else. No OS boundary."""
    with workspace() as folder:
        scratch = folder / "scratch"
        scratch.mkdir()
        (scratch / SCRIPT_NAME).write_text(source, encoding="utf-8")
        command = guard_argv(sys.executable, root=str(scratch), limits=limits, single_task=False)
        env = {**ENVIRONMENT, "HOME": str(scratch)}
        return run_captured(command, folder=folder, limits=limits, cwd=scratch, env=env)


def _exits_within(process: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether ``process`` ends within ``seconds``, known the moment it does (a pidfd), where
    ``Popen.wait(timeout)`` polls with growing sleeps — tens of milliseconds late per snippet."""
    pidfd = os.pidfd_open(process.pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], seconds)
    finally:
        os.close(pidfd)
    return bool(ready)


def _read_capped(path: Path, limits: SandboxLimits) -> tuple[str, bool, bool]:
    """The first ``output_bytes`` of ``path``, whether there was more, whether it is full."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        data = handle.read(limits.output_bytes)
    return (
        data.decode("utf-8", errors="replace"),
        size > limits.output_bytes,
        size >= limits.file_bytes,
    )
