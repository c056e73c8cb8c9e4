"""Run untrusted Python (a specialist's code plus its tests) behind an OS boundary.

:func:`run_python` runs the snippet inside bubblewrap (:mod:`tools.sandbox.bubblewrap`): its own
user, pid, network, ipc and uts namespaces, a read-only filesystem holding only the interpreter
and its standard library, a bounded private scratch directory, an empty environment, a seccomp
filter that keeps it to one process and one thread (:mod:`tools.sandbox.seccomp`), and resource
limits (CPU, memory, file size, open files) set inside. The wall clock kills the whole sandbox.
An audit hook (:mod:`tools.sandbox.guard`) turns forbidden operations into readable errors, as
defence in depth only.

Where the boundary cannot be had (:func:`sandbox_verdict`), nothing runs unless
``SandboxLimits.allow_unsandboxed`` says so.
"""

from tools.sandbox.limits import SandboxLimits, SandboxResult
from tools.sandbox.runner import MAX_CODE_CHARS, SandboxUnavailable, run_python
from tools.sandbox.verdict import SandboxVerdict, check_boundary, sandbox_verdict

__all__ = [
    "MAX_CODE_CHARS",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailable",
    "SandboxVerdict",
    "check_boundary",
    "run_python",
    "sandbox_verdict",
]
