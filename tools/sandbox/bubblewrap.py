"""The OS boundary: the snippet's interpreter inside bubblewrap (``bwrap``, Flatpak's sandbox).

What the snippet gets:

- its own user, pid, network, ipc, uts and cgroup namespaces (``--unshare-all``, with the user
  namespace required rather than tried, and no further user namespaces inside): uid and gid
  65534, no capabilities, no network but an unconfigured loopback, no view of any other
  process — so nothing to signal, no ``/proc/<pid>/environ`` to read, no socket to reach;
- a filesystem of its own, read-only except its scratch directory: the interpreter's prefix (its
  standard library; the prefix's ``site-packages`` hidden under an empty read-only mount — the
  service's own virtual environment and packages are not there), the system's shared libraries
  and ``/etc/ld.so.cache``, a minimal read-only ``/dev``, and a size-limited private tmpfs at
  ``/tmp`` as scratch and ``HOME``. No ``/proc`` and no ``/sys`` (a snippet needs neither, and a
  fresh procfs cannot be mounted in an unprivileged container), no ``/etc`` (no ``passwd``), no
  home, no data directory, no ``/run`` (no database socket);
- an empty environment but ``PATH``, ``HOME`` and ``LANG``;
- the seccomp filter of :mod:`tools.sandbox.seccomp` (one process, one thread);
- a new session (no terminal to push input into) and death with its parent: killing ``bwrap``
  kills the pid namespace's init, and with it every process in the namespace.

The resource limits are set inside, by the guard (:mod:`tools.sandbox.guard`), once the user
namespace exists: ``RLIMIT_NPROC`` then counts the snippet's own tasks, not the service's.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.sandbox import seccomp
from tools.sandbox.launch import (
    ENVIRONMENT,
    SCRIPT_NAME,
    Completed,
    guard_argv,
    run_captured,
    workspace,
)
from tools.sandbox.limits import SandboxLimits

MIN_VERSION = (0, 8, 0)
"""``--disable-userns`` and ``--size`` (a bounded scratch tmpfs) came with bubblewrap 0.8.0."""
SANDBOX_ID = "65534"
SCRATCH = "/tmp"
SYSTEM_LIBRARIES = ("/lib", "/lib32", "/lib64", "/libx32", "/usr/lib", "/usr/lib32", "/usr/lib64")
"""Where the C library and the interpreter's shared libraries live (merged-/usr systems make the
top-level ones symbolic links, which are mirrored as links)."""
LOADER_CACHE = "/etc/ld.so.cache"
"""The dynamic loader's index: it finds libraries outside the default path (``/usr/local/lib``
in the ``python`` container images)."""
BWRAP_SIGNAL_OFFSET = 128
"""bubblewrap exits with 128 + N when the snippet died of signal N."""


@dataclass(frozen=True, slots=True)
class Interpreter:
    """This Python as the sandbox mounts it: the real interpreter, not a virtual environment."""

    executable: Path
    prefix: Path
    hidden: tuple[Path, ...]
    """The prefix's ``site-packages``, masked inside the sandbox: snippets get the stdlib."""


@functools.cache
def this_interpreter() -> Interpreter:
    """The interpreter running this process; in a virtual environment, the one it was made from
    (``--copies`` environments too)."""
    executable = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    prefix = Path(sys.base_prefix).resolve()
    variables = {"base": str(prefix), "platbase": str(prefix)}
    packages = {
        Path(sysconfig.get_path(name, vars=variables)).resolve() for name in ("purelib", "platlib")
    }
    hidden = tuple(sorted(p for p in packages if p.is_dir() and p.is_relative_to(prefix)))
    return Interpreter(executable=executable, prefix=prefix, hidden=hidden)


def version(bwrap: str) -> tuple[int, ...]:
    """bubblewrap's version, e.g. ``(0, 8, 0)``.

    Raises:
        OSError: it cannot be run.
        subprocess.TimeoutExpired: it does not answer.
        ValueError: it does not print a version.
    """
    output = subprocess.run(
        [bwrap, "--version"], capture_output=True, text=True, timeout=10, env={}, check=False
    ).stdout
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", output)
    if match is None:
        raise ValueError(f"{bwrap} --version printed {output.strip()!r}")
    return tuple(int(part or 0) for part in match.groups())


def run_bubblewrapped(bwrap: str, source: str, limits: SandboxLimits) -> Completed:
    """Run ``source`` as ``/tmp/main.py`` inside the sandbox.

    Raises:
        seccomp.UnsupportedMachine: no seccomp filter for this CPU architecture.
    """
    program = seccomp.filter_program()
    interpreter = this_interpreter()
    with workspace() as folder:
        script = folder / SCRIPT_NAME
        script.write_text(source, encoding="utf-8")
        with script.open("rb") as script_file, _readable_pipe(program) as filter_fd:
            command = [
                bwrap,
                *mounts(interpreter, scratch_bytes=limits.file_bytes + script.stat().st_size),
                "--file",
                str(script_file.fileno()),
                f"{SCRATCH}/{SCRIPT_NAME}",
                *isolation(filter_fd),
                "--",
                *guard_argv(
                    str(interpreter.executable), root=SCRATCH, limits=limits, single_task=True
                ),
            ]
            return run_captured(
                command,
                folder=folder,
                limits=limits,
                pass_fds=(script_file.fileno(), filter_fd),
                exit_signal_offset=BWRAP_SIGNAL_OFFSET,
            )


def mounts(interpreter: Interpreter, *, scratch_bytes: int) -> list[str]:
    """The sandbox's filesystem, in the order bubblewrap builds it."""
    args: list[str] = []
    for path in SYSTEM_LIBRARIES:
        if interpreter.prefix == Path(path) or Path(path).is_relative_to(interpreter.prefix):
            continue  # the prefix mount brings it
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--ro-bind-try", LOADER_CACHE, LOADER_CACHE]
    args += ["--ro-bind", str(interpreter.prefix), str(interpreter.prefix)]
    if not interpreter.executable.is_relative_to(interpreter.prefix):
        folder = str(interpreter.executable.parent)
        args += ["--ro-bind", folder, folder]
    for hidden in map(str, interpreter.hidden):
        args += ["--tmpfs", hidden, "--remount-ro", hidden]
    args += ["--size", str(scratch_bytes), "--tmpfs", SCRATCH]
    args += ["--dev", "/dev", "--remount-ro", "/dev"]
    return args


def isolation(filter_fd: int) -> list[str]:
    """Namespaces, identity, environment and the seccomp filter; the root made read-only."""
    args = [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        SANDBOX_ID,
        "--gid",
        SANDBOX_ID,
        "--hostname",
        "sandbox",
        "--remount-ro",
        "/",
        "--chdir",
        SCRATCH,
        "--clearenv",
    ]
    for name, value in {**ENVIRONMENT, "HOME": SCRATCH}.items():
        args += ["--setenv", name, value]
    return [*args, "--seccomp", str(filter_fd)]


@contextlib.contextmanager
def _readable_pipe(data: bytes) -> Iterator[int]:
    """The read end of a pipe that holds ``data`` (small: it must fit the pipe's buffer)."""
    read_fd, write_fd = os.pipe()
    try:
        with os.fdopen(write_fd, "wb") as writer:
            writer.write(data)
        yield read_fd
    finally:
        os.close(read_fd)
