"""Whether this machine can run snippets behind the OS boundary — checked once per process.

The check runs a real snippet through the real sandbox: bubblewrap present and recent enough,
a seccomp filter for this CPU, and the namespaces actually granted (Docker's default seccomp
profile and AppArmor, for instance, refuse unprivileged user namespaces). The verdict says what
failed and how to fix it; callers fail closed on it (:func:`tools.sandbox.run_python` refuses,
the lead is not offered ``run_python``, ``/readyz`` and ``understudy doctor`` report it).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass

from tools.sandbox import bubblewrap, seccomp
from tools.sandbox.limits import SandboxLimits

INSTALL_FIX = "install bubblewrap 0.8 or newer (apt-get install bubblewrap; dnf install bubblewrap)"
NAMESPACES_FIX = (
    "allow unprivileged user namespaces: on the host, sysctl user.max_user_namespaces=15000 "
    "(and kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 23.10+); in a container, "
    "run it with security_opt seccomp=unconfined and apparmor=unconfined "
    "(README: 'The code sandbox')"
)
_PROBE = "print('sandbox ok')"
_PROBE_LIMITS = SandboxLimits(timeout_s=20, cpu_s=10)


@dataclass(frozen=True, slots=True)
class SandboxVerdict:
    """Whether snippets can run behind the OS boundary, and if not why and how to fix it."""

    available: bool
    detail: str
    """What works (``bubblewrap 0.8.0: …``) or what failed."""
    fix: str | None = None
    """How to make it available; ``None`` when it is."""
    bwrap: str | None = None
    """The bubblewrap executable that passed the check."""

    def __str__(self) -> str:
        return self.detail if self.fix is None else f"{self.detail}. Fix: {self.fix}"


@functools.cache
def sandbox_verdict() -> SandboxVerdict:
    """The verdict for ``bwrap`` on this process's ``PATH``, checked on first use."""
    return check_boundary(shutil.which("bwrap"))


def check_boundary(bwrap: str | None) -> SandboxVerdict:
    """Run a trivial snippet inside ``bwrap`` (``None``: not installed) and judge the result."""
    if bwrap is None:
        return SandboxVerdict(False, "bubblewrap (bwrap) is not installed", INSTALL_FIX)
    try:
        found = bubblewrap.version(bwrap)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return SandboxVerdict(False, f"{bwrap} does not run: {exc}", INSTALL_FIX)
    shown = ".".join(map(str, found))
    if found < bubblewrap.MIN_VERSION:
        return SandboxVerdict(False, f"bubblewrap {shown} is too old", INSTALL_FIX)
    try:
        completed = bubblewrap.run_bubblewrapped(bwrap, _PROBE, _PROBE_LIMITS)
    except seccomp.UnsupportedMachine as exc:
        return SandboxVerdict(
            False, str(exc), "run the service on x86_64 or aarch64 to run code sandboxed"
        )
    if completed.exit_code != 0 or completed.stdout != "sandbox ok\n":
        said = completed.stderr.strip().splitlines()
        reason = said[-1] if said else f"exit status {completed.exit_code}"
        return SandboxVerdict(
            False, f"bubblewrap cannot start the sandbox ({reason})", NAMESPACES_FIX
        )
    return SandboxVerdict(
        True,
        f"bubblewrap {shown}: user, pid, network, ipc and uts namespaces, read-only filesystem, "
        "seccomp, resource limits",
        bwrap=bwrap,
    )
