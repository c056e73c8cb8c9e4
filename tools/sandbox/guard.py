"""Runs inside the sandbox's interpreter before the snippet (see :mod:`tools.sandbox`).

1. Applies the resource limits the parent passes. The kernel enforces them, and a snippet cannot
   raise them again.
2. Installs an audit hook that turns what a snippet has no business doing — network, child
   processes, signals, native code, writes outside its scratch directory — into a
   ``PermissionError`` the lead can read. Defence in depth only: Python's audit hooks are not a
   security boundary (a determined snippet removes this one); the OS boundary around the
   interpreter is what stops these operations.
3. Runs the snippet as ``__main__`` from its scratch directory. A ``MemoryError``, a file grown
   past ``RLIMIT_FSIZE`` or a full scratch directory that reaches this level ends the process
   with the exit status the parent chose for it, so the parent knows which limit stopped the
   snippet without reading its output.

Usage (as source, so that the snippet's ``sys.path[0]`` is its own scratch directory rather
than this package; plain arguments rather than JSON, whose imports would cost every snippet)::

    python -I -B -c "$(cat guard.py)" ROOT SCRIPT MEMORY_EXIT FILE_EXIT RLIMIT=SOFT:HARD...
"""

import errno
import os
import resource
import sys
from types import MappingProxyType, ModuleType

_ROOT, _SCRIPT = os.path.realpath(sys.argv[1]), sys.argv[2]
_EXIT = {"memory": int(sys.argv[3]), "file size": int(sys.argv[4])}
for _limit in sys.argv[5:]:
    _name, _values = _limit.split("=")
    _soft, _hard = map(int, _values.split(":"))
    resource.setrlimit(getattr(resource, _name), (_soft, _hard))


def _audit_hook(root: str) -> object:
    blocked = MappingProxyType(
        {
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
            "os.killpg": "signalling processes",
            "signal.pthread_kill": "signalling processes",
            "ctypes.dlopen": "loading native code",
            "ctypes.dlsym": "loading native code",
            "gc.get_referrers": "inspecting the interpreter",
            "gc.get_referents": "inspecting the interpreter",
            "gc.get_objects": "inspecting the interpreter",
        }
    )
    path_events = frozenset(
        {
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
            "sqlite3.connect",
        }
    )
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    realpath, fspath, sep = os.path.realpath, os.fspath, os.sep

    def inside(path: object) -> bool:
        if isinstance(path, int) or path in (":memory:", ""):  # open descriptor, no file
            return True
        resolved = realpath(fspath(path))  # type: ignore[call-overload]  # relative: from the cwd
        if isinstance(resolved, bytes):
            resolved = os.fsdecode(resolved)
        return resolved == root or resolved.startswith(root + sep)

    def hook(event: str, args: tuple) -> None:
        reason = blocked.get(event)
        if reason is not None:
            raise PermissionError(f"{reason} is disabled in the sandbox ({event})")
        if event == "open" and args:
            path, mode, flags = ([*list(args), None, None, 0])[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags
            )
            if writes and path is not None and not inside(path):
                raise PermissionError(f"writing outside the sandbox directory is disabled ({path})")
        elif event in path_events:
            for arg in args[:2]:
                if isinstance(arg, str | bytes | os.PathLike) and not inside(arg):
                    message = "changing files outside the sandbox directory is disabled"
                    raise PermissionError(f"{message} ({arg!s})")

    return hook


def _run_as_main(path: str) -> None:
    """Run the script as ``python path`` would: in a fresh ``__main__`` module (as ``runpy``
    does, without the imports ``runpy`` costs)."""
    with open(path, encoding="utf-8") as source:
        code = compile(source.read(), path, "exec")
    main = ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _exit_for(limit: str) -> None:
    """End the process with the exit status that names ``limit``, after the traceback if it can
    still be written (stderr may be the file that is full)."""
    try:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
    except (OSError, MemoryError):
        pass
    os._exit(_EXIT[limit])


sys.addaudithook(_audit_hook(_ROOT))  # type: ignore[arg-type]  # typed loosely: no imports here
os.chdir(_ROOT)
sys.path.insert(0, _ROOT)  # as `python main.py` would: the script's directory comes first
sys.argv[:] = [_SCRIPT]
try:
    _run_as_main(_SCRIPT)
except MemoryError:
    _exit_for("memory")
except OSError as exc:
    if exc.errno not in (errno.EFBIG, errno.ENOSPC):  # a file too large, scratch space full
        raise
    _exit_for("file size")
