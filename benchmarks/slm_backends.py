"""Local vs vLLM backend on SmolLM2-135M: tokens/s and latency at concurrency 1 and 16, and the
overhead of our vLLM client against raw HTTP calls to the same server, measured in one run.

    python benchmarks/slm_backends.py                 # both backends, prints a table
    python benchmarks/slm_backends.py --out bench.json

Needs the model (`understudy models pull smollm2-135m`) and vLLM (`understudy slm install`).
Backends run one after the other so they do not share the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace

import httpx
from tqdm import tqdm

from serving.runtime import resolve_base_model
from serving.settings import Settings
from serving.slm_server import VLLMServer, build_command, build_env, find_vllm, lora_slots
from specialists import Catalog, Generation, SLMBackend
from specialists.catalog import GenerationParams
from specialists.local import LocalBackend
from specialists.vllm_client import VLLMBackend

PROMPTS = [
    "What is 17 * 24?",
    "Write a Python function that reverses a string.",
    "Write a short email asking to move our meeting to Friday.",
    "A pen costs $3. How much do 12 pens cost?",
    "Write a function that checks whether a number is prime.",
    "Summarise: the server was down for two hours due to a full disk.",
]


@dataclass
class Row:
    backend: str
    concurrency: int
    requests: int
    tokens_per_s: float
    p50_ms: float
    p95_ms: float


async def load(
    backend: SLMBackend, concurrency: int, requests: int, max_tokens: int, label: str
) -> Row:
    spec = replace(
        Catalog.default().get("math"), generation=GenerationParams(max_tokens=max_tokens)
    )
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=requests, desc=f"{label} c={concurrency}", leave=False)

    async def one(i: int) -> Generation:
        async with gate:
            result = await backend.generate(
                spec, [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]
            )
            bar.update()
            return result

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(requests)))
    wall = time.perf_counter() - started
    bar.close()
    latencies = sorted(r.latency_s * 1000 for r in results)
    return Row(
        backend=label,
        concurrency=concurrency,
        requests=requests,
        tokens_per_s=sum(r.usage.completion_tokens for r in results) / wall,
        p50_ms=statistics.median(latencies),
        p95_ms=latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
    )


async def client_overhead(root: str, model: str, rounds: int) -> dict[str, float]:
    """Alternate raw httpx calls and VLLMBackend calls with identical payloads; compare means."""
    spec = replace(Catalog.default().get("math"), generation=GenerationParams(max_tokens=8))
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    payload = {
        "model": model,
        "messages": [{"role": "system", "content": spec.system_prompt}, *messages],
        "max_tokens": 8,
        "temperature": 0.0,
        "top_p": 1.0,
        "logprobs": True,
    }
    ours = VLLMBackend(f"{root}/v1", base_model_name=model, timeout_s=120)
    async with httpx.AsyncClient(base_url=f"{root}/v1", timeout=120) as raw:

        async def raw_call() -> None:
            response = await raw.post("/chat/completions", json=payload)
            response.raise_for_status()
            response.json()["choices"][0]["message"]["content"]

        async def our_call() -> None:
            await ours.generate(spec, messages)

        timings: dict[str, list[float]] = {"raw": [], "ours": []}
        calls: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("raw", raw_call),
            ("ours", our_call),
        ]
        for _ in range(3):  # warm both connection pools
            for _, call in calls:
                await call()
        for i in tqdm(range(rounds), desc="client overhead", leave=False):
            for name, call in calls if i % 2 == 0 else calls[::-1]:
                started = time.perf_counter()
                await call()
                timings[name].append(time.perf_counter() - started)
    await ours.aclose()
    raw_ms = statistics.median(timings["raw"]) * 1000
    ours_ms = statistics.median(timings["ours"]) * 1000
    return {"raw_p50_ms": raw_ms, "ours_p50_ms": ours_ms, "overhead_ratio": ours_ms / raw_ms - 1}


async def main(args: argparse.Namespace) -> dict:
    settings = Settings()
    model_dir = resolve_base_model(settings, log=print)
    rows: list[Row] = []
    local = LocalBackend(model_dir, base_ref=settings.slm.base_model, max_batch_size=16)
    await local.warm_up()
    for concurrency, requests in ((1, args.requests_c1), (16, args.requests_c16)):
        rows.append(await load(local, concurrency, requests, args.max_tokens, "local"))
    await local.aclose()

    vllm = find_vllm(settings)
    port = args.port
    settings = settings.model_copy(update={"slm": settings.slm.model_copy(update={"port": port})})
    catalog = settings.catalog()
    slots = lora_slots(settings, catalog, canaries=0)
    command = build_command(vllm, model_dir, settings, catalog, slots)
    root = f"http://127.0.0.1:{port}"
    log = settings.home / "logs" / "bench-vllm.log"
    with VLLMServer(command, build_env(vllm), root, log_path=log) as server:
        print(f"starting vLLM ({'cpu' if vllm.cpu_build else 'gpu'}), log: {log}")
        server.wait_ready(600)
        client = VLLMBackend(f"{root}/v1", base_model_name=settings.slm.base_model, timeout_s=300)
        await load(client, 1, 2, args.max_tokens, "warm-up")
        for concurrency, requests in ((1, args.requests_c1), (16, args.requests_c16)):
            rows.append(await load(client, concurrency, requests, args.max_tokens, "vllm"))
        await client.aclose()
        overhead = await client_overhead(root, settings.slm.base_model, args.overhead_rounds)
    return {
        "rows": [asdict(r) for r in rows],
        "client_overhead": overhead,
        "max_tokens": args.max_tokens,
    }


def report(result: dict) -> str:
    lines = [
        f"SmolLM2-135M, greedy, max_tokens={result['max_tokens']}",
        "| backend | concurrency | requests | tokens/s | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['backend']} | {r['concurrency']} | {r['requests']} | {r['tokens_per_s']:.1f} "
        f"| {r['p50_ms']:.0f} | {r['p95_ms']:.0f} |"
        for r in result["rows"]
    ]
    o = result["client_overhead"]
    lines.append(
        "\nvLLM client overhead vs raw HTTP (p50, same server, interleaved): "
        f"raw {o['raw_p50_ms']:.1f} ms, "
        f"ours {o['ours_p50_ms']:.1f} ms → {o['overhead_ratio'] * 100:+.1f} %"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests-c1", type=int, default=8)
    parser.add_argument("--requests-c16", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--overhead-rounds", type=int, default=60)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", help="Write the figures as JSON here too.")
    arguments = parser.parse_args()
    outcome = asyncio.run(main(arguments))
    print(report(outcome))
    if arguments.out:
        with open(arguments.out, "w") as handle:
            json.dump(outcome, handle, indent=2)
