"""Runs inside the sandbox's interpreter before the user's code (see :mod:`tools.sandbox`).

An audit hook turns the operations a snippet must not perform — network, child processes,
native code loading, writes outside its working directory — into ``PermissionError`` with a
clear message. It complements the kernel-level fences the parent sets (a network namespace
when available, resource limits, a throw-away directory); Python code cannot remove the hook.

Usage: ``python -I -B -c "$(cat sandbox_guard.py)" SANDBOX_DIR SCRIPT`` (as source, so that the
snippet's ``sys.path[0]`` is its own working directory rather than this package).
"""

import os
import runpy
import sys

_ROOT = os.path.realpath(sys.argv[1])
_SCRIPT = sys.argv[2]

_BLOCKED = {
    "socket.connect": "network access",
    "socket.bind": "network access",
    "socket.sendto": "network access",
    "socket.sendmsg": "network access",
    "socket.getaddrinfo": "network access",
    "socket.gethostbyname": "network access",
    "subprocess.Popen": "starting processes",
    "os.system": "starting processes",
    "os.exec": "starting processes",
    "os.spawn": "starting processes",
    "os.posix_spawn": "starting processes",
    "os.fork": "starting processes",
    "os.forkpty": "starting processes",
    "os.kill": "signalling processes",
    "ctypes.dlopen": "loading native code",
    "ctypes.dlsym": "loading native code",
}
_PATH_EVENTS = {
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.symlink",
    "os.link",
    "os.chmod",
    "os.chown",
    "os.truncate",
    "os.utime",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.move",
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _inside(path: object) -> bool:
    if isinstance(path, int):  # an already-open descriptor
        return True
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    resolved = os.path.realpath(os.path.join(_ROOT, str(path)))
    return resolved == _ROOT or resolved.startswith(_ROOT + os.sep)


def _hook(event: str, args: tuple) -> None:
    reason = _BLOCKED.get(event)
    if reason is not None:
        raise PermissionError(f"{reason} is disabled in the sandbox ({event})")
    if event == "open" and args:
        path, mode, flags = ([*list(args), None, None, 0])[:3]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writes and path is not None and not _inside(path):
            raise PermissionError(f"writing outside the sandbox directory is disabled ({path})")
    elif event in _PATH_EVENTS:
        for arg in args[:2]:
            if isinstance(arg, str | bytes | os.PathLike) and not _inside(os.fspath(arg)):
                raise PermissionError(
                    f"changing files outside the sandbox directory is disabled ({arg})"
                )


sys.addaudithook(_hook)
sys.path.insert(0, _ROOT)  # as `python main.py` would: the script's directory comes first
del sys.argv[:2]
runpy.run_path(_SCRIPT, run_name="__main__")
