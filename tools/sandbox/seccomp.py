"""The sandbox's seccomp filter: a snippet stays one process with one thread, and keeps off the
kernel interfaces it has no use for.

bubblewrap loads the filter (``--seccomp FD``) right before it starts the interpreter, so it
binds the snippet, and nothing the snippet does can lift it. Every system call is allowed but:

- new tasks — ``fork``, ``vfork``, ``clone``, ``clone3`` — fail with ``EPERM``: no child
  process by any route (``subprocess``, ``os.fork``, ``_posixsubprocess``, ``ctypes``), so no
  fork bomb and nothing to outlive the run; no threads either (``RLIMIT_NPROC``, which would
  bound them, is not applied when the service runs as root);
- memory the kernel holds outside the process's address space, which ``RLIMIT_AS`` does not
  count: ``memfd_create``, System V shared memory and message queues;
- ``ptrace``, the kernel keyrings (not namespaced), ``bpf``, ``perf_event_open``,
  ``userfaultfd``, ``io_uring_setup``, and namespace or mount changes (``unshare``, ``setns``,
  ``mount``) — container runtimes deny these too;
- a call made through another ABI (32-bit ``int 0x80``, x32) ends the process.

The program is classic BPF, assembled here: libseccomp would add a C library and a Python
binding that is no longer maintained, for a score of instructions.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET = 0x06  # BPF_RET | BPF_K

_RET_ALLOW = 0x7FFF_0000
_RET_EPERM = 0x0005_0000 | errno.EPERM  # SECCOMP_RET_ERRNO
_RET_KILL_PROCESS = 0x8000_0000

_NR, _ARCH = 0, 4  # offsets in struct seccomp_data
_X32_SYSCALL_BIT = 0x4000_0000


@dataclass(frozen=True, slots=True)
class _Abi:
    audit_arch: int
    denied: dict[str, int]
    """Refused system calls by name (for reading) and number."""
    foreign_from: int | None = None
    """System call numbers from here on belong to another ABI (x32 on x86_64)."""


_ABIS = {
    "x86_64": _Abi(
        audit_arch=0xC000_003E,
        denied={
            "clone": 56,
            "clone3": 435,
            "fork": 57,
            "vfork": 58,
            "memfd_create": 319,
            "shmget": 29,
            "msgget": 68,
            "ptrace": 101,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "bpf": 321,
            "perf_event_open": 298,
            "userfaultfd": 323,
            "io_uring_setup": 425,
            "unshare": 272,
            "setns": 308,
            "mount": 165,
        },
        foreign_from=_X32_SYSCALL_BIT,
    ),
    "aarch64": _Abi(  # the generic table: no fork or vfork system call
        audit_arch=0xC000_00B7,
        denied={
            "clone": 220,
            "clone3": 435,
            "memfd_create": 279,
            "shmget": 194,
            "msgget": 186,
            "ptrace": 117,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "bpf": 280,
            "perf_event_open": 241,
            "userfaultfd": 282,
            "io_uring_setup": 425,
            "unshare": 97,
            "setns": 268,
            "mount": 40,
        },
    ),
}
SUPPORTED_MACHINES = tuple(_ABIS)


class UnsupportedMachine(Exception):
    """No filter is written for this CPU architecture."""


def filter_program(machine: str | None = None) -> bytes:
    """The filter as bubblewrap reads it: ``struct sock_filter`` records in native byte order.

    Raises:
        UnsupportedMachine: ``machine`` (default: this one) is not x86_64 or aarch64.
    """
    machine = machine or platform.machine()
    abi = _ABIS.get(machine)
    if abi is None:
        raise UnsupportedMachine(
            f"the sandbox's seccomp filter is written for {', '.join(SUPPORTED_MACHINES)}, "
            f"not {machine}"
        )
    # (opcode, operand, label if true, label if false); no label: the next instruction.
    code: list[tuple[int, int, str | None, str | None]] = [
        (_LD_W_ABS, _ARCH, None, None),
        (_JEQ, abi.audit_arch, None, "kill"),
        (_LD_W_ABS, _NR, None, None),
    ]
    if abi.foreign_from is not None:
        code.append((_JGE, abi.foreign_from, "kill", None))
    code += [(_JEQ, number, "deny", None) for number in abi.denied.values()]
    returns = {"allow": _RET_ALLOW, "deny": _RET_EPERM, "kill": _RET_KILL_PROCESS}
    at_label = {label: len(code) + index for index, label in enumerate(returns)}

    def offset(label: str | None, at: int) -> int:
        return 0 if label is None else at_label[label] - at - 1

    jumps = b"".join(
        struct.pack("=HBBI", op, offset(true, at), offset(false, at), operand)
        for at, (op, operand, true, false) in enumerate(code)
    )
    return jumps + b"".join(struct.pack("=HBBI", _RET, 0, 0, value) for value in returns.values())
