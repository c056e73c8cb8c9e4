"""Batch throughput and memory: ``understudy batch`` against a scripted upstream with latency.

Throughput. For each concurrency C, ``understudy batch run`` sends C * ``--requests-per-slot``
requests (``--mode llm``: the lead alone) to the scripted lead, which answers after
``--latency-ms`` from its own process. The rate is read from the database — from the first
request's start to the last committed result — so process start-up and writing the output file
do not count; it is compared with the ideal, C / latency. The same requests sent through
``Orchestrator.run`` alone (same concurrency, same transcript store, no batch machinery) show
how much of any gap is the orchestrator's path rather than the batch runner's. CPU per request
leaves out start-up (a one-request job's CPU is subtracted).

Memory. Peak RSS (``wait4``) of ``batch submit`` (checking and storing the file) and ``batch
results`` (rendering every line; the job is cancelled first, so all of them are rendered) for
growing files, and of ``batch run`` for a small and a larger job at the same concurrency.

    python benchmarks/batch_throughput.py [--concurrency 64 256] [--latency-ms 200]
        [--requests-per-slot 10] [--memory-lines 1000 10000 100000] [--mode llm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from database.engine import create_engine
from database.tables import BatchItemRow, RunRow

REPO = Path(__file__).resolve().parent.parent
UNDERSTUDY = [sys.executable, "-m", "serving"]

UPSTREAM = """
import sys, time
from orchestrator.testing import ScriptedLead, reply
step = reply("ok", prompt_tokens=20, completion_tokens=5, delay_s=float(sys.argv[1]))
lead = ScriptedLead([step], repeat_last=True, model="gpt-4o-mini").start()
print(lead.port, flush=True)
while True:
    time.sleep(3600)
"""

ORCHESTRATOR_ALONE = """
import asyncio, json, sys, time
from database import Database
from serving.orchestration import open_orchestrator
from serving.settings import Settings

async def main(requests: int, concurrency: int, mode: str) -> None:
    settings = Settings()
    async with (
        await Database.open(settings.database_url) as database,
        open_orchestrator(settings, database) as orchestrator,
    ):
        slots = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with slots:
                result = await orchestrator.run(f"Say ok ({index})", mode)
                assert result.answer is not None, result.error

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(requests)))
        seconds, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu_s": cpu_s}))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
"""


MACHINERY_ONLY = """
import asyncio, json, sys, time
from database import Database
from orchestrator.outcome import RunResult
from serving.batch.store import BatchStore, ItemResult, WorkerInfo, WorkerStore
from serving.batch.validation import load_requests
from serving.batch.worker import BatchWorker
from serving.protocol import served_models
from serving.settings import Settings

class Sleeper:  # stands in for the orchestrator: waits as long as the upstream, then answers
    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s

    async def run(self, item):
        await asyncio.sleep(self.latency_s)
        answered = RunResult(
            f"sleep-{item.line}", "llm", "ok", "lead", [], False, False, None, 0, 0, 0, 0,
            0.0, 0.0, self.latency_s * 1000,
        )
        return ItemResult(json.dumps({"custom_id": item.custom_id, "ok": True}), answered)

async def main(source: str, concurrency: int, latency_s: float) -> None:
    settings = Settings()
    async with await Database.open(settings.database_url) as store_database:
        store = BatchStore(store_database)
        job = await store.create_job(mode="llm", input_name=source)
        with open(source, "rb") as stream:
            report = await load_requests(
                store, job, stream, served=served_models(settings.catalog()),
                limits=settings.batch, request_limits=settings.api.request_limits,
            )
        worker = BatchWorker(
            store, WorkerStore(store_database), Sleeper(latency_s),
            info=WorkerInfo.this_process(), concurrency=concurrency,
            lease_s=60, poll_s=1, job_id=job.id,
        )
        cpu, wall = time.process_time(), time.perf_counter()
        await worker.run()
        seconds, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu_s": cpu_s, "requests": report.requests}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""


@dataclass
class Process:
    """What one finished subprocess used."""

    seconds: float
    cpu_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def run_process(command: list[str], env: dict[str, str]) -> Process:
    """Run to completion; CPU and peak RSS from ``wait4`` (this child only)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:])} failed ({proc.returncode}):\n{stderr}")
    return Process(
        seconds=time.perf_counter() - started,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        stdout=stdout,
        stderr=stderr,
    )


def write_requests(path: Path, count: int) -> Path:
    with path.open("w") as file:
        for index in range(count):
            line = {
                "custom_id": f"req-{index}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"Say ok ({index})"}],
                },
            }
            file.write(json.dumps(line) + "\n")
    return path


def environment(home: Path, lead_url: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
    return {
        **kept,
        "UNDERSTUDY_HOME": str(home),
        "UNDERSTUDY_LEAD_BASE_URL": lead_url,
        "UNDERSTUDY_LEAD_MODEL": "gpt-4o-mini",
        # llm mode never calls a specialist; a vLLM URL keeps the local model from loading.
        "UNDERSTUDY_SLM_BACKEND": "vllm",
        "UNDERSTUDY_SLM_BASE_URL": "http://127.0.0.1:9/v1",
    }


async def job_rate(database: Path) -> float:
    """Requests committed per second, from the first request's start (its transcript's time
    less its latency; the process's start-up and the file check come before) to the last
    committed result."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with engine.connect() as connection:
            runs = (await connection.execute(select(RunRow.created_at, RunRow.latency_ms))).all()
            finished = await connection.scalar(select(func.max(BatchItemRow.finished_at)))
            count = await connection.scalar(select(func.count()).select_from(BatchItemRow))
    finally:
        await engine.dispose()
    started = min(created - timedelta(milliseconds=latency) for created, latency in runs)
    return count / (finished - started).total_seconds()


def batch_run(
    work: Path, lead_url: str, requests: int, concurrency: int, mode: str
) -> tuple[Process, float]:
    home = work / f"run-{requests}-{concurrency}-{time.monotonic_ns()}"
    env = environment(home, lead_url)
    source = write_requests(home.with_suffix(".jsonl"), requests)
    command = [
        *UNDERSTUDY,
        "batch",
        "run",
        str(source),
        "--mode",
        mode,
        "--concurrency",
        str(concurrency),
        "--output",
        str(home.with_suffix(".out")),
    ]
    process = run_process(command, env)
    return process, asyncio.run(job_rate(home / "understudy.db"))


def throughput(args: argparse.Namespace, work: Path, lead_url: str) -> list[dict[str, float]]:
    baseline, _rate = batch_run(work, lead_url, 1, 1, args.mode)
    rows = []
    for concurrency in args.concurrency:
        requests = concurrency * args.requests_per_slot
        ideal = concurrency / (args.latency_ms / 1000)
        process, rate = batch_run(work, lead_url, requests, concurrency, args.mode)
        alone = run_process(
            [sys.executable, "-c", ORCHESTRATOR_ALONE, str(requests), str(concurrency), args.mode],
            environment(work / f"alone-{concurrency}", lead_url),
        )
        alone_figures = json.loads(alone.stdout.strip().splitlines()[-1])
        source = write_requests(work / f"machinery-{concurrency}.jsonl", requests)
        machinery = run_process(
            [
                sys.executable,
                "-c",
                MACHINERY_ONLY,
                str(source),
                str(concurrency),
                str(args.latency_ms / 1000),
            ],
            environment(work / f"machinery-{concurrency}", lead_url),
        )
        machinery_figures = json.loads(machinery.stdout.strip().splitlines()[-1])
        rows.append(
            {
                "concurrency": concurrency,
                "requests": requests,
                "ideal": ideal,
                "batch_rate": rate,
                "batch_cpu_ms": (process.cpu_s - baseline.cpu_s) * 1000 / (requests - 1),
                "batch_rss_mb": process.peak_rss_mb,
                "alone_rate": requests / alone_figures["seconds"],
                "alone_cpu_ms": alone_figures["cpu_s"] * 1000 / requests,
                "machinery_rate": requests / machinery_figures["seconds"],
                "machinery_cpu_ms": machinery_figures["cpu_s"] * 1000 / requests,
            }
        )
        print(f"  concurrency {concurrency}: {rate:.1f} requests/s ({rate / ideal:.1%} of ideal)")
    return rows


def memory(args: argparse.Namespace, work: Path, lead_url: str) -> list[dict[str, float]]:
    rows = []
    for lines in args.memory_lines:
        home = work / f"memory-{lines}"
        env = environment(home, lead_url)
        source = write_requests(home.with_suffix(".jsonl"), lines)
        submit = run_process(
            [*UNDERSTUDY, "batch", "submit", str(source), "--mode", args.mode], env
        )
        job = submit.stdout.strip()
        run_process([*UNDERSTUDY, "batch", "cancel", job], env)
        results = run_process(
            [*UNDERSTUDY, "batch", "results", job, "--output", str(home.with_suffix(".out"))], env
        )
        rows.append(
            {
                "lines": lines,
                "megabytes": source.stat().st_size / 1e6,
                "submit_s": submit.seconds,
                "submit_rss_mb": submit.peak_rss_mb,
                "results_s": results.seconds,
                "results_rss_mb": results.peak_rss_mb,
            }
        )
        print(
            f"  {lines} lines: submit {submit.peak_rss_mb:.0f} MB, results "
            f"{results.peak_rss_mb:.0f} MB"
        )
    return rows


def run_memory(args: argparse.Namespace, work: Path, lead_url: str) -> list[dict[str, float]]:
    rows = []
    for requests in args.run_memory_requests:
        process, rate = batch_run(work, lead_url, requests, args.run_memory_concurrency, args.mode)
        rows.append({"requests": requests, "rss_mb": process.peak_rss_mb, "rate": rate})
        print(f"  batch run of {requests}: {process.peak_rss_mb:.0f} MB")
    return rows


def report(args: argparse.Namespace, speed, files, runs) -> None:  # type: ignore[no-untyped-def]
    print()
    print(
        f"scripted upstream answering after {args.latency_ms:.0f} ms (own process), --mode "
        f"{args.mode}, SQLite; {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print("requests/s (share of the ideal) and CPU ms per request of:")
    print("  batch run - `understudy batch run`, the whole path")
    print("  orchestrator alone - the same requests through Orchestrator.run, no batch machinery")
    print("  machinery alone - claims, commits, files; the orchestrator replaced by a sleep")
    print(
        f"{'concurrency':>11} {'requests':>8} {'ideal/s':>8} | {'batch run':>11} {'CPU':>5} "
        f"{'peak MB':>7} | {'orch. alone':>11} {'CPU':>5} | {'machinery':>11} {'CPU':>5}"
    )
    for row in speed:
        ideal = row["ideal"]
        print(
            f"{row['concurrency']:>11} {row['requests']:>8} {ideal:>8.0f} | "
            f"{_rate(row['batch_rate'], ideal):>11} {row['batch_cpu_ms']:>5.1f} "
            f"{row['batch_rss_mb']:>7.0f} | {_rate(row['alone_rate'], ideal):>11} "
            f"{row['alone_cpu_ms']:>5.1f} | {_rate(row['machinery_rate'], ideal):>11} "
            f"{row['machinery_cpu_ms']:>5.1f}"
        )
    print()
    print(
        f"{'lines':>8} {'file MB':>8} {'submit s':>9} {'submit peak MB':>15} "
        f"{'results s':>10} {'results peak MB':>16}"
    )
    for row in files:
        print(
            f"{row['lines']:>8} {row['megabytes']:>8.1f} {row['submit_s']:>9.1f} "
            f"{row['submit_rss_mb']:>15.0f} {row['results_s']:>10.1f} "
            f"{row['results_rss_mb']:>16.0f}"
        )
    print()
    for row in runs:
        print(
            f"batch run, {row['requests']} requests at concurrency {args.run_memory_concurrency}: "
            f"peak {row['rss_mb']:.0f} MB ({row['rate']:.1f} requests/s)"
        )
    print("reproduce: " + " ".join(["python", "benchmarks/batch_throughput.py", *sys.argv[1:]]))


def _rate(rate: float, ideal: float) -> str:
    return f"{rate:.0f} ({rate / ideal:.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--requests-per-slot", type=int, default=10)
    parser.add_argument("--memory-lines", type=int, nargs="*", default=[1000, 10_000, 100_000])
    parser.add_argument("--run-memory-requests", type=int, nargs="*", default=[640, 2560])
    parser.add_argument("--run-memory-concurrency", type=int, default=64)
    parser.add_argument("--mode", default="llm", choices=["llm", "router", "cascade"])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="understudy-batch-bench-"))
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM, str(args.latency_ms / 1000)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=(work / "upstream.log").open("wb"),
        text=True,
    )
    try:
        assert upstream.stdout is not None
        lead_url = f"http://127.0.0.1:{int(upstream.stdout.readline())}/v1"
        print("throughput ...")
        speed = throughput(args, work, lead_url)
        print("memory of whole-file commands ...")
        files = memory(args, work, lead_url)
        print("memory of batch run ...")
        runs = run_memory(args, work, lead_url)
    finally:
        upstream.terminate()
        upstream.wait(timeout=20)
    report(args, speed, files, runs)
    print(f"work files: {work}")


if __name__ == "__main__":
    main()
