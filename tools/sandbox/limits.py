"""What a sandboxed run may use, and what became of it: the one place sandbox limits live."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Bounds of one sandboxed run, and whether it may run without the OS boundary.

    A snippet is always one process with one thread (the seccomp filter refuses new tasks), so
    there is no process count to choose.
    """

    timeout_s: float = 10.0
    """Wall-clock limit; the whole sandbox is killed after it."""
    cpu_s: int = 10
    """CPU seconds (``RLIMIT_CPU``)."""
    memory_mb: int = 512
    """Address space of the interpreter (``RLIMIT_AS``)."""
    file_bytes: int = 16 * 1024 * 1024
    """Largest file the snippet may write (``RLIMIT_FSIZE``, its stdout and stderr included),
    and the size of its scratch directory."""
    output_bytes: int = 64 * 1024
    """stdout and stderr are each cut to this many bytes in the result."""
    open_files: int = 64
    """Open file descriptors (``RLIMIT_NOFILE``)."""
    allow_unsandboxed: bool = False
    """Where the OS boundary (bubblewrap) is unavailable, run snippets anyway with only the audit
    hook and the resource limits. Unsafe: a snippet can then read every file the service can,
    and more; for development machines that cannot have the boundary."""

    def __post_init__(self) -> None:
        for name in ("timeout_s", "cpu_s", "memory_mb", "file_bytes", "output_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"sandbox limit {name} must be positive, got {getattr(self, name)}"
                )
        if self.open_files < 16:
            raise ValueError(f"sandbox limit open_files must be at least 16, got {self.open_files}")

    def within(self, seconds: float) -> SandboxLimits:
        """These limits with the wall clock cut to ``seconds`` (what is left of a run's budget)."""
        return dataclasses.replace(self, timeout_s=max(0.001, min(self.timeout_s, seconds)))


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """What happened to the snippet."""

    ok: bool
    """Exited with status 0 (every test assertion passed)."""
    exit_code: int | None
    """The interpreter's exit status; ``None`` when the wall clock stopped it."""
    stdout: str
    stderr: str
    duration_s: float
    limit: str | None = None
    """Which limit stopped it: ``timeout``, ``cpu``, ``memory``, ``file size`` or ``output``;
    else ``None``."""
    truncated: bool = False
    """stdout or stderr was longer than ``output_bytes`` and was cut."""
    sandboxed: bool = True
    """Ran inside the OS boundary; ``False`` only under ``allow_unsandboxed``."""

    def summary(self, max_chars: int = 2000) -> str:
        """A compact report for a model to read."""
        state = "passed" if self.ok else f"failed ({self.limit or f'exit code {self.exit_code}'})"
        parts = [f"run {state} in {self.duration_s:.2f}s"]
        if self.stdout.strip():
            parts.append(f"stdout:\n{self.stdout[-max_chars:]}")
        if self.stderr.strip():
            parts.append(f"stderr:\n{self.stderr[-max_chars:]}")
        return "\n".join(parts)
