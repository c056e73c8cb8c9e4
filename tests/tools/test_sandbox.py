"""What a snippet sees and what it gets back: results, limits, scratch space, the verdict.

The escapes each fence exists for are attacked in ``test_sandbox_hostile.py``.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tools.sandbox import SandboxLimits, check_boundary, run_python, sandbox_verdict

FAST = SandboxLimits(timeout_s=5, cpu_s=5, memory_mb=256)


def test_this_machine_has_the_os_boundary() -> None:
    """The suite runs where bubblewrap works (.ci/run installs it); everything else assumes so."""
    verdict = sandbox_verdict()
    assert verdict.available and verdict.fix is None, str(verdict)
    assert verdict.detail.startswith("bubblewrap ")


def test_passing_tests_and_failing_tests() -> None:
    code = "def add(a, b):\n    return a + b"
    passed = run_python(code, "assert add(2, 3) == 5\nprint('ok')", limits=FAST)
    assert passed.ok and passed.stdout == "ok\n" and passed.sandboxed
    failed = run_python(code, "assert add(2, 2) == 5", limits=FAST)
    assert not failed.ok and failed.exit_code == 1 and "AssertionError" in failed.stderr
    assert failed.limit is None and "failed (exit code 1)" in failed.summary()


def test_the_snippet_gets_the_stdlib_a_scratch_home_and_an_empty_environment() -> None:
    code = (
        "import os, sys, json, sqlite3, decimal, fractions, re\n"
        "print(json.dumps({'cwd': os.getcwd(), 'env': dict(os.environ), 'uid': os.getuid(),\n"
        "                  'argv': sys.argv, 'prefix': sys.prefix}))"
    )
    result = run_python(code, limits=FAST)
    assert result.ok, result.stderr
    seen = __import__("json").loads(result.stdout)
    assert seen["cwd"] == "/tmp" and seen["uid"] == 65534 and seen["argv"] == ["/tmp/main.py"]
    assert set(seen["env"]) <= {"PATH", "LANG", "HOME", "PWD"} and seen["env"]["HOME"] == "/tmp"
    assert seen["prefix"] == sys.base_prefix  # the base interpreter, not the service's venv


def test_third_party_packages_are_not_importable() -> None:
    result = run_python("import sympy", limits=FAST)
    assert not result.ok and "ModuleNotFoundError" in result.stderr


def test_an_infinite_loop_is_killed_at_the_timeout() -> None:
    result = run_python("while True:\n    pass", limits=SandboxLimits(timeout_s=1, cpu_s=30))
    assert not result.ok and result.limit == "timeout" and result.exit_code is None
    assert 0.9 < result.duration_s < 4


def test_cpu_limit_stops_a_busy_loop_even_with_a_long_timeout() -> None:
    result = run_python("while True:\n    pass", limits=SandboxLimits(timeout_s=30, cpu_s=1))
    assert not result.ok and result.limit == "cpu" and result.duration_s < 10


def test_a_socket_connect_fails_with_a_readable_error() -> None:
    code = "import socket\nsocket.create_connection(('127.0.0.1', 5432), timeout=2)"
    result = run_python(code, limits=FAST)
    assert not result.ok and "network access is disabled in the sandbox" in result.stderr


def test_scratch_files_can_be_written_and_read_back() -> None:
    code = "open('notes.txt', 'w').write('x')\nprint(open('/tmp/notes.txt').read())"
    inside = run_python(code, limits=FAST)
    assert inside.ok and inside.stdout == "x\n"


def test_writing_outside_scratch_fails_with_a_readable_error() -> None:
    target = Path(sys.base_prefix) / "escaped.txt"  # the interpreter, mounted read-only
    result = run_python(f"open({str(target)!r}, 'w').write('x')", limits=FAST)
    assert not result.ok and "outside the sandbox directory" in result.stderr
    assert not target.exists()


def test_removing_files_outside_fails_with_a_readable_error() -> None:
    # Not under /tmp: inside the sandbox that is the scratch directory, where removing is fine.
    with tempfile.TemporaryDirectory(dir="/var/tmp") as folder:
        victim = Path(folder) / "keep.txt"
        victim.write_text("data")
        result = run_python(f"import os\nos.remove({str(victim)!r})", limits=FAST)
        assert not result.ok and "outside the sandbox directory" in result.stderr
        assert victim.read_text() == "data"


def test_a_memory_bomb_is_stopped() -> None:
    result = run_python("x = bytearray(2 * 1024**3)", limits=FAST)
    assert not result.ok and result.limit == "memory" and "MemoryError" in result.stderr


def test_child_processes_are_refused() -> None:
    result = run_python("import subprocess\nsubprocess.run(['id'])", limits=FAST)
    assert not result.ok and "starting processes is disabled" in result.stderr


def test_output_is_capped() -> None:
    limits = SandboxLimits(timeout_s=10, output_bytes=1000)
    result = run_python("print('x' * 100_000)", limits=limits)
    assert result.ok and result.truncated and len(result.stdout) == 1000


def test_huge_files_hit_the_file_size_limit() -> None:
    limits = SandboxLimits(timeout_s=10, file_bytes=1024 * 1024)
    result = run_python("open('big', 'wb').write(b'0' * 5_000_000)", limits=limits)
    assert not result.ok and result.limit == "file size"


def test_many_files_fill_the_bounded_scratch_directory() -> None:
    limits = SandboxLimits(timeout_s=10, file_bytes=1024 * 1024)
    code = "for i in range(100):\n    open(f'part{i}', 'wb').write(b'0' * 500_000)"
    result = run_python(code, limits=limits)
    assert not result.ok and result.limit == "file size" and "No space left" in result.stderr


def test_oversized_code_is_refused_before_running() -> None:
    with pytest.raises(ValueError, match="exceed"):
        run_python("x = 1\n" * 100_000)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="memory_mb must be positive"):
        SandboxLimits(memory_mb=0)
    assert SandboxLimits(timeout_s=10).within(2.5).timeout_s == 2.5
    assert SandboxLimits(timeout_s=10).within(60).timeout_s == 10


def test_the_snippet_imports_from_its_own_directory_not_ours() -> None:
    code = (
        "open('helper.py', 'w').write('VALUE = 42')\n"
        "import helper, importlib.util\n"
        "assert helper.VALUE == 42\n"
        "assert importlib.util.find_spec('tools') is None"
    )
    result = run_python(code, limits=FAST)
    assert result.ok, result.stderr


# --- Failing closed ----------------------------------------------------------------------------


def test_without_bubblewrap_the_verdict_says_why_and_how_to_fix_it() -> None:
    verdict = check_boundary(None)
    assert not verdict.available and verdict.bwrap is None
    assert "not installed" in verdict.detail and "apt-get install bubblewrap" in str(verdict.fix)


def test_a_bubblewrap_that_cannot_start_the_sandbox_is_not_available(tmp_path: Path) -> None:
    """A bwrap that reports a recent version but refuses namespaces, as in a default container."""
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "bubblewrap 0.9.0"; exit 0; fi\n'
        'echo "bwrap: No permissions to create new namespace" >&2; exit 1\n'
    )
    fake.chmod(0o755)
    verdict = check_boundary(str(fake))
    assert not verdict.available
    assert "No permissions to create new namespace" in verdict.detail
    assert "seccomp=unconfined" in str(verdict.fix)
    old = tmp_path / "old-bwrap"
    old.write_text('#!/bin/sh\necho "bubblewrap 0.6.1"\n')
    old.chmod(0o755)
    assert check_boundary(str(old)).detail == "bubblewrap 0.6.1 is too old"


UNAVAILABLE = """
import json, sys
from tools.sandbox import SandboxLimits, SandboxUnavailable, run_python
try:
    run_python("print(1)")
except SandboxUnavailable as exc:
    print("refused:", exc)
allowed = SandboxLimits(allow_unsandboxed=True)
result = run_python("print(open(__file__).read() != '')", limits=allowed)
print(json.dumps({"ok": result.ok, "sandboxed": result.sandboxed, "stdout": result.stdout}))
"""


def test_without_the_boundary_nothing_runs_unless_allowed_explicitly() -> None:
    """A process whose PATH has no bwrap: refused by default; run, marked, logged when allowed."""
    result = subprocess.run(
        [sys.executable, "-c", UNAVAILABLE],
        env={**os.environ, "PATH": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    refused, ran = result.stdout.splitlines()
    assert refused.startswith("refused: the code sandbox is unavailable: bubblewrap (bwrap)")
    assert __import__("json").loads(ran) == {"ok": True, "sandboxed": False, "stdout": "True\n"}
    assert "RUNNING A SNIPPET WITHOUT THE SANDBOX" in result.stderr
