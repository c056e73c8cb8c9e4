"""CPU time the orchestrator spends per router-mode request with one tool call.

The scripted lead answers instantly from a separate process (so its CPU is not counted); the
tool is the calculator (the SLM is excluded); transcripts are written to SQLite as in
production. As a floor, the same two chat-completion calls made with the bare ``openai`` client
are measured in the same run.

    python benchmarks/orchestrator_overhead.py [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from openai import AsyncOpenAI
from tqdm import tqdm

from database import Database
from orchestrator import LeadConfig, Orchestrator
from orchestrator.transcripts import TranscriptStore
from specialists import Catalog
from specialists.vllm_client import VLLMBackend

LEAD_SERVER = """
import sys, time
from orchestrator.testing import ScriptedLead, reply, tool_calls
def step(body):
    if body["messages"][-1]["role"] == "tool":
        return reply("17 * 24 = 408", prompt_tokens=300, completion_tokens=12)
    call = ("calculator", {"expression": "17*24"})
    return tool_calls(call, prompt_tokens=250, completion_tokens=20)
lead = ScriptedLead([step], repeat_last=True).start()
print(lead.base_url, flush=True)
while True:
    time.sleep(3600)
"""


async def measure(label: str, requests: int, call) -> tuple[float, float]:
    """(CPU ms per request, wall ms per request) over ``requests`` sequential calls."""
    for _ in range(20):
        await call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in tqdm(range(requests), desc=label, leave=False):
        await call()
    return (
        (time.process_time() - cpu) * 1000 / requests,
        (time.perf_counter() - wall) * 1000 / requests,
    )


async def main(requests: int) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", LEAD_SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            database = await Database.open(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
            store = TranscriptStore(database)
            unused_slm = VLLMBackend("http://127.0.0.1:9/v1", base_model_name="none")
            orchestrator = Orchestrator(
                catalog=Catalog.default(),
                backend=unused_slm,
                lead=LeadConfig(model="gpt-4o-mini", base_url=base_url, api_key="x"),
                store=store,
            )
            client = AsyncOpenAI(base_url=base_url, api_key="x", http_client=httpx.AsyncClient())
            messages = [{"role": "user", "content": "What is 17 * 24?"}]

            async def raw_pair() -> None:
                await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
                await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[*messages, {"role": "tool", "tool_call_id": "c", "content": "408"}],
                )

            async def routed() -> None:
                result = await orchestrator.run("What is 17 * 24?", "router")
                assert result.answer == "17 * 24 = 408", result

            raw_cpu, raw_wall = await measure("raw openai x2", requests, raw_pair)
            ours_cpu, ours_wall = await measure("router mode", requests, routed)
            await store.database.close()
    finally:
        server.kill()
    print(
        f"requests: {requests} sequential, lead = scripted HTTP server at 0 ms in another process"
    )
    print(f"raw openai client, 2 calls : {raw_cpu:6.2f} ms CPU/request, {raw_wall:6.2f} ms wall")
    print(f"router mode, 1 tool call   : {ours_cpu:6.2f} ms CPU/request, {ours_wall:6.2f} ms wall")
    print(f"orchestrator's own CPU     : {ours_cpu - raw_cpu:6.2f} ms/request above the raw calls")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    asyncio.run(main(parser.parse_args().requests))
