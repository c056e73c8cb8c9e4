"""Each fence of the sandbox, attacked for real."""

import socket
from pathlib import Path

import pytest

from tools.sandbox import SandboxLimits, network_namespace_prefix, run_python

FAST = SandboxLimits(timeout_s=5, cpu_s=5, memory_mb=256)


def test_passing_tests_and_failing_tests() -> None:
    code = "def add(a, b):\n    return a + b"
    assert run_python(code, "assert add(2, 3) == 5\nprint('ok')", limits=FAST).stdout == "ok\n"
    failed = run_python(code, "assert add(2, 2) == 5", limits=FAST)
    assert not failed.ok and failed.exit_code == 1 and "AssertionError" in failed.stderr
    assert "failed (exit code 1)" in failed.summary()


def test_an_infinite_loop_is_killed_at_the_timeout() -> None:
    result = run_python("while True:\n    pass", limits=SandboxLimits(timeout_s=1, cpu_s=30))
    assert not result.ok and result.limit == "timeout"
    assert 0.9 < result.duration_s < 4


def test_cpu_limit_stops_a_busy_loop_even_with_a_long_timeout() -> None:
    result = run_python("while True:\n    pass", limits=SandboxLimits(timeout_s=30, cpu_s=1))
    assert not result.ok and result.limit == "cpu" and result.duration_s < 10


def test_a_socket_connect_fails() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)"
        result = run_python(code, limits=FAST)
    assert not result.ok
    assert "network access is disabled in the sandbox" in result.stderr


def test_the_kernel_fence_blocks_network_without_the_audit_hook() -> None:
    if not network_namespace_prefix():
        pytest.skip("this kernel refuses network namespaces; the audit hook still applies")
    result = run_python("print('isolated')", limits=FAST)
    assert result.network_isolated and result.ok


def test_writing_outside_its_directory_fails(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('x')", limits=FAST)
    assert not result.ok and "outside the sandbox directory" in result.stderr
    assert not target.exists()
    inside = run_python(
        "open('notes.txt', 'w').write('x')\nprint(open('notes.txt').read())", limits=FAST
    )
    assert inside.ok and inside.stdout == "x\n"


def test_removing_files_outside_fails(tmp_path: Path) -> None:
    victim = tmp_path / "keep.txt"
    victim.write_text("data")
    result = run_python(f"import os\nos.remove({str(victim)!r})", limits=FAST)
    assert not result.ok and victim.read_text() == "data"


def test_a_memory_bomb_is_stopped() -> None:
    result = run_python("x = bytearray(2 * 1024**3)", limits=FAST)
    assert not result.ok and result.limit == "memory"


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


def test_oversized_code_is_refused_before_running() -> None:
    with pytest.raises(ValueError, match="exceed"):
        run_python("x = 1\n" * 100_000)


def test_the_snippet_imports_from_its_own_directory_not_ours() -> None:
    code = (
        "open('helper.py', 'w').write('VALUE = 42')\n"
        "import helper, importlib.util\n"
        "assert helper.VALUE == 42\n"
        "assert importlib.util.find_spec('sandbox_guard') is None"
    )
    result = run_python(code, limits=FAST)
    assert result.ok, result.stderr
