"""Server CPU per chat request: the bare upstream, Understudy's API, and the LiteLLM proxy.

One instant upstream (the scripted lead answering "ok", 20 + 5 tokens, in its own process) is
hit three ways in the same run, with the same load:

- (a) directly: what answering one HTTP chat request costs a minimal uvicorn server;
- (b) through ``understudy serve`` with model ``understudy-llm`` (the lead alone), auth off,
  transcripts in SQLite, JSON access log on, as deployed;
- (c) through the LiteLLM proxy (its own venv, no database, no telemetry).

CPU is read from ``/proc/<pid>/stat`` (user + system, the server's whole process tree) before
and after the measured requests, so neither the load generator nor the upstream is counted.
The key figure is the proxy overhead ratio
``(ours - upstream) / (litellm - upstream)`` in CPU per request; the goal is <= 0.1.

    python benchmarks/api_overhead.py [--requests 2000] [--concurrency 16]

(b) is reported as skipped while ``understudy serve`` is missing; (c) as skipped when the LiteLLM
proxy cannot be installed (its log is named).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

LITELLM_VERSION = "1.83.0"
"""Pinned: newer releases may require packages the package index here does not carry."""
LITELLM_VENV = Path("~/.understudy/bench/litellm-proxy-venv").expanduser()
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 180.0
PROMPT = [{"role": "user", "content": "Say ok."}]

UPSTREAM = """
import time
from orchestrator.testing import ScriptedLead, reply
step = reply("ok", prompt_tokens=20, completion_tokens=5)
lead = ScriptedLead([step], repeat_last=True, model="gpt-4o-mini").start()
print(lead.port, flush=True)
while True:
    time.sleep(3600)
"""

LITELLM_CONFIG = """model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {api_base}
      api_key: dummy
litellm_settings:
  telemetry: false
  set_verbose: false
"""


@dataclass
class Target:
    """One server under load."""

    label: str
    url: str
    model: str
    pid: int


@dataclass
class Figures:
    """What one target measured."""

    label: str
    completed: int
    errors: int
    seconds: float
    cpu_s: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s * 1000 / self.completed if self.completed else float("nan")

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ------------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of ``root`` and every live descendant (uvicorn may fork workers)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in tree)


@contextlib.contextmanager
def process(
    command: list[str], *, env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server subprocess whose output goes to ``log``, terminated on exit."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {START_TIMEOUT_S:.0f} s; see {log}")


def base_env() -> dict[str, str]:
    """The environment minus Understudy's and LiteLLM's settings, so each server gets only ours."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("UNDERSTUDY_", "LITELLM_", "OPENAI_", "DATABASE_URL"))
    }


def understudy_serve_available() -> Path | None:
    """The ``understudy`` script beside this interpreter, if it has the ``serve`` command."""
    script = Path(sys.executable).with_name("understudy")
    if not script.exists():
        return None
    probe = subprocess.run(
        [str(script), "serve", "--help"], capture_output=True, timeout=120, check=False
    )
    return script if probe.returncode == 0 else None


def ensure_litellm_proxy(log: Path) -> Path | None:
    """The LiteLLM proxy's ``litellm`` script in its own venv, installed on first use."""
    script = LITELLM_VENV / "bin" / "litellm"
    python = LITELLM_VENV / "bin" / "python"
    if script.exists():
        check = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.stdout.strip() == LITELLM_VERSION:
            return script
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (once) ...")
    with log.open("w") as sink:
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)],
            [str(python), "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
        ]
        for step in steps:
            if subprocess.run(step, stdout=sink, stderr=sink, check=False).returncode != 0:
                return None
    return script


# ----------------------------------------------------------------------------------- load


async def drive(
    client: httpx.AsyncClient,
    target: Target,
    *,
    requests: int,
    concurrency: int,
    deadline: float,
    latencies: list[float] | None,
) -> tuple[int, int]:
    """Send ``requests`` chat completions from ``concurrency`` loops; (completed, errors)."""
    body = {"model": target.model, "messages": PROMPT}
    issued = completed = errors = 0

    async def loop() -> None:
        nonlocal issued, completed, errors
        while issued < requests and time.monotonic() < deadline:
            issued += 1
            started = time.perf_counter()
            try:
                response = await client.post(target.url, json=body)
                ok = response.status_code == 200 and b'"ok"' in response.content
            except httpx.HTTPError:
                ok = False
            if not ok:
                errors += 1
                continue
            completed += 1
            if latencies is not None:
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return completed, errors


async def measure(target: Target, args: argparse.Namespace) -> Figures:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        warm_deadline = time.monotonic() + args.max_seconds
        _, warm_errors = await drive(
            client,
            target,
            requests=args.warmup,
            concurrency=args.concurrency,
            deadline=warm_deadline,
            latencies=None,
        )
        if warm_errors == args.warmup:
            raise RuntimeError(f"{target.label}: every warm-up request failed")
        latencies: list[float] = []
        cpu, wall = tree_cpu_seconds(target.pid), time.perf_counter()
        completed, errors = await drive(
            client,
            target,
            requests=args.requests,
            concurrency=args.concurrency,
            deadline=time.monotonic() + args.max_seconds,
            latencies=latencies,
        )
        seconds = time.perf_counter() - wall
        cpu = tree_cpu_seconds(target.pid) - cpu
    return Figures(target.label, completed, errors, seconds, cpu, latencies)


# ----------------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="understudy-api-bench-"))
    repo = Path(__file__).resolve().parent.parent
    results: dict[str, Figures | str] = {}
    env = base_env()
    upstream_log = work / "upstream.log"
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=upstream_log.open("wb"),
        text=True,
    )
    try:
        assert upstream.stdout is not None
        upstream_port = int(upstream.stdout.readline())
        upstream_root = f"http://127.0.0.1:{upstream_port}"
        target = Target(
            "(a) upstream direct", f"{upstream_root}/v1/chat/completions", "gpt-4o-mini", 0
        )
        target.pid = upstream.pid
        results["a"] = await measure(target, args)

        script = understudy_serve_available()
        if "b" in args.skip:
            results["b"] = "skipped (--skip b)"
        elif script is None:
            results["b"] = "skipped: `understudy serve` is not available"
        else:
            results["b"] = await measure_understudy(script, upstream_root, work, args)

        if "c" in args.skip:
            results["c"] = "skipped (--skip c)"
        else:
            results["c"] = await measure_litellm(upstream_root, work, args)
    finally:
        upstream.terminate()
        upstream.wait(timeout=20)
    report(results, args, work)


async def measure_understudy(
    script: Path, upstream_root: str, work: Path, args: argparse.Namespace
) -> Figures | str:
    port = free_port()
    home = work / "understudy-home"
    env = {
        **base_env(),
        "UNDERSTUDY_LEAD_BASE_URL": f"{upstream_root}/v1",
        "UNDERSTUDY_LEAD_MODEL": "gpt-4o-mini",
        "UNDERSTUDY_API_AUTH": "false",
        "UNDERSTUDY_HOME": str(home),
        # llm mode never calls a specialist; a vLLM URL keeps the local model from loading.
        "UNDERSTUDY_SLM_BACKEND": "vllm",
        "UNDERSTUDY_SLM_BASE_URL": "http://127.0.0.1:9/v1",
    }
    command = [str(script), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return await measure_server(
        "(b) understudy-llm", "understudy-llm", command, env, port, "/healthz", work, args
    )


async def measure_litellm(
    upstream_root: str, work: Path, args: argparse.Namespace
) -> Figures | str:
    install_log = work / "litellm-install.log"
    script = ensure_litellm_proxy(install_log)
    if script is None:
        return f"skipped: litellm[proxy]=={LITELLM_VERSION} did not install (see {install_log})"
    config = work / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.format(api_base=f"{upstream_root}/v1"))
    port = free_port()
    env = {
        **base_env(),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price map at start
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
    }
    command = [
        str(script),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
        "--telemetry",
        "False",
    ]
    return await measure_server(
        "(c) litellm proxy", "gpt-4o-mini", command, env, port, "/health/liveliness", work, args
    )


def command_name(command: list[str]) -> str:
    """``understudy`` or ``litellm``: the server's log file name."""
    return Path(command[0]).name


async def measure_server(
    label: str,
    model: str,
    command: list[str],
    env: dict[str, str],
    port: int,
    health_path: str,
    work: Path,
    args: argparse.Namespace,
) -> Figures | str:
    """Start a server, wait for its health endpoint, load it, stop it; log under ``work``."""
    log = work / f"{command_name(command)}.log"
    try:
        with process(command, env=env, cwd=work, log=log) as proc:
            wait_until_up(f"http://127.0.0.1:{port}{health_path}", proc, log)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            return await measure(Target(label, url, model, proc.pid), args)
    except RuntimeError as exc:
        return f"failed: {exc}"


def report(results: dict[str, Figures | str], args: argparse.Namespace, work: Path) -> None:
    print()
    print(
        f"{args.requests} requests after {args.warmup} warm-up, concurrency {args.concurrency}; "
        f"upstream: scripted lead, instant, own process; {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, litellm {LITELLM_VERSION}"
    )
    header = (
        f"{'target':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11} {'errors':>7}"
    )
    print(header)
    print("-" * len(header))
    for figures in results.values():
        if isinstance(figures, str):
            continue
        print(
            f"{figures.label:<22} {figures.rps:>8.0f} {figures.percentile(0.5):>8.1f} "
            f"{figures.percentile(0.99):>8.1f} {figures.cpu_ms_per_request:>11.2f} "
            f"{figures.errors:>7}"
        )
    for key, figures in results.items():
        if isinstance(figures, str):
            print(f"({key}) {figures}")
    a, b, c = (results.get(k) for k in "abc")
    if isinstance(a, Figures) and isinstance(c, Figures):
        litellm_over = c.cpu_ms_per_request - a.cpu_ms_per_request
        print(f"LiteLLM proxy overhead : {litellm_over:6.2f} ms CPU/request above the upstream")
        if isinstance(b, Figures):
            ours_over = b.cpu_ms_per_request - a.cpu_ms_per_request
            print(f"Understudy overhead    : {ours_over:6.2f} ms CPU/request above the upstream")
            print(
                f"ratio (ours - upstream) / (litellm - upstream) = {ours_over / litellm_over:.2f}"
                " (goal <= 0.1)"
            )
    print(f"server logs: {work}")
    print("reproduce: " + " ".join(["python", "benchmarks/api_overhead.py", *sys.argv[1:]]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="wall-clock bound of each phase"
    )
    parser.add_argument(
        "--skip", default="", help="targets to leave out, e.g. 'c' (letters of a, b, c; not a)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
