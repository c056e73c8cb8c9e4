"""A hostile corpus: every escape a snippet was found to have, attempted for real.

Each test fails if its escape works. Evidence is taken on the host wherever there is some (a
file that appears, a process that dies or lives on, a server that is reached, a secret that
comes back), not from the snippet's word. Each attack runs twice: against the sandbox as it is
shipped, and with the audit hook taken out of the guard — as a snippet that defeated the hook
would find it — so that the OS boundary is shown to hold by itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.helpers.processes import processes_with
from tools.sandbox import SandboxLimits, SandboxResult, launch, run_python

LIMITS = SandboxLimits(timeout_s=10, cpu_s=5, memory_mb=256)
HOOK_INSTALL = "sys.addaudithook(_audit_hook(_ROOT))"


@pytest.fixture(params=["guarded", "kernel only"])
def run(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """``run(code, limits)``: the snippet in the sandbox, with or without the audit hook."""
    if request.param == "kernel only":
        assert launch.GUARD_SOURCE.count(HOOK_INSTALL) == 1
        monkeypatch.setattr(launch, "GUARD_SOURCE", launch.GUARD_SOURCE.replace(HOOK_INSTALL, ""))

    def run_snippet(code: str, limits: SandboxLimits = LIMITS) -> SandboxResult:
        started = time.monotonic()
        result = run_python(textwrap.dedent(code), limits=limits)
        assert time.monotonic() - started < limits.timeout_s + 5  # every attack returns in time
        return result

    return run_snippet


def _attempts(code: str) -> str:
    """Snippet source that tries each ``attempt(label, action)`` and goes on whatever happens."""
    return (
        "import os, sys, time\n"
        "def attempt(label, action):\n"
        "    try:\n"
        "        print(label, 'returned', repr(action())[:200], flush=True)\n"
        "    except BaseException as exc:\n"
        "        print(label, 'refused', type(exc).__name__, exc, flush=True)\n"
        + textwrap.dedent(code)
    )


# --- Process creation, by any route ------------------------------------------------------------

CHILD = "import sys; open('/tmp/child-' + sys.argv[1], 'w').write('ran')"
SPAWN_EVERY_WAY = f"""
import subprocess, _posixsubprocess
CHILD = {CHILD!r}
exe = sys.executable

def fork_then(route):
    pid = route()
    if pid == 0:
        open('/tmp/child-' + ROUTE, 'w').write('ran')
        os._exit(0)
    return pid

def posixsubprocess(label):
    argv = [exe, '-c', CHILD, label]
    base = (argv, [exe.encode()], True, (), None, None, -1, -1, -1, -1, -1, -1,
            *os.pipe(), False, True, -1, None, None, None, -1, None)
    try:
        return _posixsubprocess.fork_exec(*base)
    except TypeError:  # Python 3.12+ takes one more argument (allow_vfork)
        return _posixsubprocess.fork_exec(*base, True)

attempt('subprocess', lambda: subprocess.run([exe, '-c', CHILD, 'subprocess']))
attempt('os.system', lambda: os.system(f'{{exe}} -c "{{CHILD}}" system'))
attempt('os.posix_spawn', lambda: os.posix_spawn(exe, [exe, '-c', CHILD, 'spawn'], {{}}))
ROUTE = 'fork'
attempt('os.fork', lambda: fork_then(os.fork))
attempt('_posixsubprocess', lambda: posixsubprocess('posixsubprocess'))
try:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
except PermissionError as exc:  # the audit hook, when it is there
    print('ctypes refused', exc)
else:
    ROUTE = 'ctypes'
    attempt('ctypes fork', lambda: fork_then(libc.fork))
    attempt('ctypes clone syscall', lambda: fork_then(lambda: libc.syscall(56, 17, 0, 0, 0, 0)))
import threading
attempt('thread', lambda: threading.Thread(target=lambda: open('/tmp/child-thread', 'w')).start())
time.sleep(0.5)
print('CHILDREN', sorted(name for name in os.listdir('/tmp') if name.startswith('child-')))
"""


def test_no_process_or_thread_can_be_started(run) -> None:
    result = run(_attempts(SPAWN_EVERY_WAY))
    children = [line for line in result.stdout.splitlines() if line.startswith("CHILDREN")]
    assert children == ["CHILDREN []"], result.stdout + result.stderr


def test_a_fork_bomb_is_contained(run) -> None:
    """Every process forks again, generation after generation — at most ten of them, so that a
    broken boundary fails this test instead of taking the machine down."""
    bomb = """
    import os, time
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        def fork():
            pid = libc.fork()
            if pid < 0:
                raise OSError(ctypes.get_errno(), 'fork failed')
            return pid
    except PermissionError:  # the audit hook refuses ctypes; go through os
        fork = os.fork
    for generation in range(10):
        fork()
    time.sleep(1)
    """
    result = run(bomb)
    assert not result.ok and result.limit is None and result.duration_s < 5
    assert "PermissionError" in result.stderr  # the very first fork was refused


# --- Nothing outlives the run -------------------------------------------------------------------


def test_no_child_survives_the_timeout_setsid_or_not(run) -> None:
    marker = f"survivor-{uuid.uuid4().hex}"
    daemon = f"""
    import subprocess
    sleeper = [sys.executable, '-c', 'import time; time.sleep(120)', {marker!r}]
    attempt('setsid popen', lambda: subprocess.Popen(sleeper, start_new_session=True))
    def double_fork():
        import ctypes
        libc = ctypes.CDLL(None)
        if libc.fork() == 0:
            os.setsid()
            if libc.fork() == 0:
                os.execv(sys.executable, sleeper)
            os._exit(0)
    attempt('double fork', double_fork)
    while True:
        pass
    """
    result = run(_attempts(daemon), SandboxLimits(timeout_s=2, cpu_s=30))
    assert result.limit == "timeout"
    deadline = time.monotonic() + 3
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)  # the namespace's init may still be on its way out
    survivors = processes_with(marker)
    for pid in survivors:  # a failing test leaves nothing behind either
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


# --- Signals cannot leave the sandbox -----------------------------------------------------------


@pytest.fixture
def sentinel() -> Iterator[subprocess.Popen[bytes]]:
    """A host process of the same user, in its own process group, for the snippet to shoot at."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    yield process
    process.kill()
    process.wait()


def test_signals_reach_no_process_outside(run, sentinel: subprocess.Popen[bytes]) -> None:
    """The sentinel gets SIGKILL; everything else only signal 0, which delivers nothing but
    succeeds where a real signal would (so a broken boundary fails the test, not the machine)."""
    attack = f"""
    import signal
    attempt('kill sentinel', lambda: os.kill({sentinel.pid}, signal.SIGKILL))
    attempt('killpg sentinel', lambda: os.killpg({sentinel.pid}, signal.SIGKILL))
    attempt('reach test runner', lambda: os.kill({os.getpid()}, 0))
    attempt('reach parent group', lambda: os.killpg(os.getpgid(os.getppid()), 0))
    attempt('reach every process', lambda: os.kill(-1, 0))
    """
    result = run(_attempts(attack))
    time.sleep(0.2)
    assert sentinel.poll() is None  # alive
    assert "returned" not in result.stdout, result.stdout


# --- Writes stay in the scratch directory -------------------------------------------------------


@pytest.fixture
def planted() -> Iterator[list[Path]]:
    """Host paths a snippet must not create; removed afterwards should a broken boundary let it."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)


def test_no_write_reaches_the_host(run, tmp_path: Path, planted: list[Path]) -> None:
    target = tmp_path / "outside"
    target.mkdir()
    stdlib = Path(os.__file__).parent  # mounted read-only in the sandbox: writable would be fatal
    token = uuid.uuid4().hex
    names = {
        "open": target / "open.txt",
        "os.open": target / "os-open.txt",
        "sqlite": target / "db.sqlite",
        "rename": target / "renamed.txt",
        "mkdir": target / "made",
        "stdlib": stdlib / f"planted-{token}.py",
    }
    victim = tmp_path / "keep.txt"
    victim.write_text("data")
    victim.chmod(0o644)
    kept = tmp_path / "kept"
    kept.mkdir()
    folders = ["/", str(target), str(stdlib), "/usr/lib", "/dev", "/dev/shm"]
    planted += [names["stdlib"], *(Path(f) / f"relative-{token}.txt" for f in folders)]
    attack = f"""
    import sqlite3
    names = {json.dumps({k: str(v) for k, v in names.items()})}
    attempt('open', lambda: open(names['open'], 'w').write('x'))
    attempt('os.open', lambda: os.open(names['os.open'], os.O_CREAT | os.O_WRONLY))
    attempt('sqlite', lambda: sqlite3.connect(names['sqlite']).execute('create table t(x)'))
    open('/tmp/local.txt', 'w').write('x')
    attempt('rename', lambda: os.rename('/tmp/local.txt', names['rename']))
    attempt('mkdir', lambda: os.mkdir(names['mkdir']))
    attempt('stdlib', lambda: open(names['stdlib'], 'w').write('import os'))
    attempt('remove', lambda: os.remove({str(victim)!r}))
    attempt('truncate', lambda: os.truncate({str(victim)!r}, 0))
    attempt('chmod', lambda: os.chmod({str(victim)!r}, 0))
    attempt('rmtree', lambda: __import__('shutil').rmtree({str(kept)!r}))
    for folder in {folders!r}:
        def relative(folder=folder):
            os.chdir(folder)
            return open('relative-{token}.txt', 'w').write('x')
        attempt('chdir ' + folder, relative)
    """
    result = run(_attempts(attack))
    assert list(target.iterdir()) == [], result.stdout
    assert [path for path in planted if path.exists()] == []
    assert victim.read_text() == "data" and victim.stat().st_mode & 0o777 == 0o644
    assert kept.is_dir()
    wrote = [line for line in result.stdout.splitlines() if " returned " in line]
    assert wrote == [], result.stdout  # no write succeeded even inside the sandbox's own tree


# --- Reads: no host file, no other process's environment ----------------------------------------


def test_host_files_cannot_be_read(run, isolated_env: Path) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "understudy.db").write_text(secret)
    paths = [
        isolated_env / "understudy.db",
        Path("/etc/passwd"),
        Path("/etc/hostname"),
        Path(__file__),
        REPO_ROOT / "pyproject.toml",
        Path(sys.prefix) / "pyvenv.cfg",  # the service's virtual environment
    ]
    readable_secrets = {str(path): path.read_text().strip().splitlines()[0] for path in paths}
    attack = f"""
    for path in {sorted(readable_secrets)!r}:
        attempt('read ' + path, lambda path=path: open(path).read())
    attempt('list home', lambda: os.listdir({str(isolated_env)!r}))
    attempt('list repo', lambda: os.listdir({str(REPO_ROOT)!r}))
    """
    result = run(_attempts(attack))
    output = result.stdout + result.stderr
    for path, content in readable_secrets.items():
        assert content not in output, path
    assert "returned" not in result.stdout, result.stdout


ENVIRON_SPY = r"""
import os, sys
from tools.sandbox import run_python
attack = '''
import os
found = []
for path in ['/proc/self/environ', '/proc/1/environ', f'/proc/{os.getppid()}/environ']:
    try:
        found.append(open(path, 'rb').read().decode(errors='replace'))
    except OSError as exc:
        found.append(type(exc).__name__)
for entry in (os.listdir('/proc') if os.path.isdir('/proc') else []):
    try:
        found.append(open(f'/proc/{entry}/environ', 'rb').read().decode(errors='replace'))
    except OSError:
        pass
found.append(repr(dict(os.environ)))
print(found)
'''
print(run_python(attack).stdout)
"""


def test_no_process_environment_can_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's own environment (where the lead's key and the database password live in
    the compose setup) is the process that starts the sandbox: a real parent process here."""
    secret = f"sk-{uuid.uuid4().hex}"
    env = {**os.environ, "UNDERSTUDY_LEAD_API_KEY": secret, "POSTGRES_PASSWORD": secret}
    for guard in ("guarded", "kernel only"):
        spy = ENVIRON_SPY
        if guard == "kernel only":
            spy = (
                "from tools.sandbox import launch\n"
                f"launch.GUARD_SOURCE = launch.GUARD_SOURCE.replace({HOOK_INSTALL!r}, '')\n" + spy
            )
        result = subprocess.run(
            [sys.executable, "-c", spy], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "HOME" in result.stdout and secret not in result.stdout + result.stderr


# --- No database, no local service, no host socket ----------------------------------------------


@pytest.fixture
def listeners() -> Iterator[dict[str, object]]:
    """A TCP server on 127.0.0.1 and an abstract unix socket on the host, counting connections."""
    tcp = socket.create_server(("127.0.0.1", 0))
    abstract = socket.socket(socket.AF_UNIX)
    name = f"\0understudy-test-{uuid.uuid4().hex}"
    abstract.bind(name)
    abstract.listen()
    accepted: list[str] = []

    def serve(server: socket.socket, label: str) -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(label)
            connection.close()

    for server, label in ((tcp, "tcp"), (abstract, "abstract")):
        threading.Thread(target=serve, args=(server, label), daemon=True).start()
    yield {"port": tcp.getsockname()[1], "abstract": name, "accepted": accepted}
    tcp.close()
    abstract.close()


def test_no_socket_reaches_the_host(run, listeners: dict[str, object]) -> None:
    attack = f"""
    import socket
    def unix(path):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
    def tcp(port):
        with socket.create_connection(('127.0.0.1', port), timeout=2):
            pass
    attempt('postgres socket', lambda: unix('/var/run/postgresql/.s.PGSQL.5432'))
    attempt('postgres tcp', lambda: tcp(5432))
    attempt('redis tcp', lambda: tcp(6379))
    attempt('test server', lambda: tcp({listeners["port"]}))
    attempt('abstract socket', lambda: unix({listeners["abstract"]!r}))
    attempt('dns', lambda: socket.getaddrinfo('pypi.org', 443))
    """
    result = run(_attempts(attack))
    time.sleep(0.2)
    assert listeners["accepted"] == []
    assert "returned" not in result.stdout, result.stdout


# --- The audit hook cannot be switched off into an escape --------------------------------------


def test_removing_the_audit_hook_opens_nothing(tmp_path: Path) -> None:
    """Walk from a refusal's traceback into the hook and empty what it checks — then try again."""
    attack = f"""
    import subprocess, types
    try:
        subprocess.run(['id'])
    except PermissionError as exc:
        tb = exc.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        hook_locals = tb.tb_frame.f_locals
        for name, value in list(hook_locals.items()):
            for emptied in (dict.clear, set.clear):
                try:
                    emptied(value)
                except TypeError:
                    pass
        print('hook state', sorted(hook_locals))
    attempt('subprocess again', lambda: subprocess.run([sys.executable, '-c', 'print(1)']))
    attempt('write outside', lambda: open({str(tmp_path / "x")!r}, 'w').write('x'))
    attempt('read passwd', lambda: open('/etc/passwd').read())
    """
    result = run_python(_attempts(attack), limits=LIMITS)
    assert "hook state" in result.stdout, result.stderr
    assert "returned" not in result.stdout, result.stdout
    assert list(tmp_path.iterdir()) == []


# --- Floods: memory, CPU, output ----------------------------------------------------------------


@pytest.mark.parametrize(
    "hog",
    [
        "x = bytearray(8 * 1024**3)",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024**2))",
        "import os\nfd = os.memfd_create('hog')\nwhile True:\n    os.write(fd, b'0' * 1024**2)",
        "import mmap\nm = mmap.mmap(-1, 8 * 1024**3)\nm[:] = b'0' * len(m)",
    ],
    ids=["one allocation", "many allocations", "memfd", "mmap"],
)
def test_memory_hogs_are_stopped(run, hog: str) -> None:
    result = run(hog)
    assert not result.ok and result.limit in {"memory", None}, result.stderr
    assert (
        "MemoryError" in result.stderr
        or "Operation not permitted" in result.stderr
        or ("Cannot allocate memory" in result.stderr)
    ), result.stderr


def test_filling_dev_shm_or_the_root_is_refused(run, planted: list[Path]) -> None:
    token = uuid.uuid4().hex
    paths = [f"/dev/shm/fill-{token}", f"/fill-{token}", f"/dev/fill-{token}"]
    planted += map(Path, paths)
    attack = f"""
    for path in {paths!r}:
        attempt(path, lambda path=path: open(path, 'wb').write(b'0' * 1024**2))
    """
    result = run(_attempts(attack))
    assert "returned" not in result.stdout, result.stdout


def test_a_cpu_spin_is_stopped_by_the_cpu_limit(run) -> None:
    result = run("while True:\n    pass", SandboxLimits(timeout_s=20, cpu_s=1))
    assert result.limit == "cpu" and result.duration_s < 5


def test_an_output_flood_is_cut_and_stopped(run) -> None:
    limits = SandboxLimits(timeout_s=20, file_bytes=1024**2, output_bytes=4096)
    result = run("while True:\n    print('x' * 10_000)", limits)
    assert not result.ok and result.limit == "output" and result.truncated
    assert len(result.stdout) == 4096 and result.duration_s < 10


def test_signals_to_itself_still_end_in_a_result(run) -> None:
    result = run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
    assert not result.ok and result.exit_code is not None
