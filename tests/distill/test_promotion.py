"""Adapters into the registry and out to the servers: every refusal leaves the registry as it was.

Real adapters and models, a real registry on SQLite and PostgreSQL. The vLLM server's runtime
LoRA endpoints are played by a scripted HTTP server (real vLLM runs in tests/integration).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from distill.promotion import (
    Promoter,
    ServedBase,
    adapter_sha256,
    register_candidate,
    verify_version,
)
from distill.registry import OutOfRange, PromotionRefused, RegistryStore, SpecialistDefinition
from specialists.catalog import Catalog
from specialists.errors import ConfigurationError, ModelError, UnknownSpecialistError
from specialists.vllm_client import VLLMBackend
from tests.helpers.http_server import serve
from tests.helpers.stores import open_store
from tests.helpers.vllm import ScriptedVLLM


@pytest.fixture
async def registry(database_url: str) -> AsyncIterator[RegistryStore]:
    store = await open_store(RegistryStore, database_url)
    yield store
    await store.database.close()


@pytest.fixture
def tiny_base(tiny_model_dir: Path) -> ServedBase:
    return ServedBase(ref="tiny", model_dir=tiny_model_dir, max_rank=16)


@pytest.fixture
def adapter(tiny_lora_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model's rank-8 LoRA with a ``training.json`` as ``distill train``
    writes it."""
    copy = Path(shutil.copytree(tiny_lora_dir, tmp_path / "adapter"))
    (copy / "training.json").write_text(
        json.dumps({"base_model": "tiny", "dataset": "/datasets/math/abc"})
    )
    return copy


async def test_an_adapter_is_registered_once_with_its_facts(
    registry: RegistryStore, adapter: Path, tiny_base: ServedBase
) -> None:
    catalog = Catalog.default()
    first = await register_candidate(registry, catalog, "math", adapter, tiny_base)
    again = await register_candidate(registry, catalog, "math", adapter, tiny_base)
    assert again == first and first.label == "math@1" and first.status == "candidate"
    assert (first.adapter_sha256, first.lora_rank, first.base_model) == (
        adapter_sha256(adapter),
        8,
        "tiny",
    )
    assert first.dataset_path == "/datasets/math/abc" and first.adapter_path == str(adapter)


@pytest.mark.parametrize(
    ("problem", "error", "message"),
    [
        ("rank", ConfigurationError, "rank 8, above the SLM server's maximum of 1"),
        ("trained elsewhere", ModelError, "trained on base 'other-base'"),
        ("shapes", ModelError, "does not fit base 'smollm2-135m'"),
        ("not an adapter", ModelError, "adapter_config.json: missing"),
        ("unknown specialist", UnknownSpecialistError, "unknown specialist 'nobody'"),
    ],
)
async def test_an_adapter_that_cannot_be_served_is_refused_and_nothing_is_registered(
    registry: RegistryStore,
    adapter: Path,
    tiny_base: ServedBase,
    smollm2_dir: Path,
    problem: str,
    error: type[Exception],
    message: str,
) -> None:
    base, name = tiny_base, "math"
    if problem == "rank":
        base = ServedBase(ref="tiny", model_dir=tiny_base.model_dir, max_rank=1)
    elif problem == "trained elsewhere":
        (adapter / "training.json").write_text(json.dumps({"base_model": "other-base"}))
    elif problem == "shapes":  # a 64-wide adapter on SmolLM2's 576-wide layers
        (adapter / "training.json").unlink()
        base = ServedBase(ref="smollm2-135m", model_dir=smollm2_dir, max_rank=16)
    elif problem == "not an adapter":
        (adapter / "adapter_config.json").unlink()
    else:
        name = "nobody"
    with pytest.raises(error, match=message):
        await register_candidate(registry, Catalog.default(), name, adapter, base)
    assert await registry.list_versions() == []


async def test_promotion_checks_the_gate_and_the_files_first(
    registry: RegistryStore, adapter: Path, tiny_base: ServedBase
) -> None:
    promoter = Promoter(registry, base_catalog=Catalog.default(), served=tiny_base)
    version = await register_candidate(registry, Catalog.default(), "math", adapter, tiny_base)
    with pytest.raises(PromotionRefused, match="has not been evaluated"):
        await promoter.promote(version, share=0.0, actor="test")
    failed = await registry.record_evaluation(
        version.id,
        metrics={"gate": {"passed": False, "reasons": ["test precision 80.0% is below 95%"]}},
        threshold=0.9,
        gate_passed=False,
    )
    with pytest.raises(PromotionRefused, match="test precision 80.0% is below 95%"):
        await promoter.promote(failed, share=0.0, actor="test")
    passed = await registry.record_evaluation(
        version.id, metrics={}, threshold=0.9, gate_passed=True
    )
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": 99}))
    with pytest.raises(ModelError, match="changed since it was registered"):
        await promoter.promote(passed, share=0.0, actor="test")
    assert await registry.generation() == 0 and await registry.active_version("math") is None
    with pytest.raises(ModelError, match="trained on base 'tiny'"):
        verify_version(passed, ServedBase("other", None, 16))


async def evaluated(registry: RegistryStore, name: str, adapter: Path, base: ServedBase) -> Any:
    version = await register_candidate(
        registry, Catalog.default().with_overrides(_definitions()), name, adapter, base
    )
    return await registry.record_evaluation(version.id, metrics={}, threshold=0.7, gate_passed=True)


def _definitions() -> dict[str, dict[str, str]]:
    return {"museum": {"description": "Museum hours.", "system_prompt": "Answer briefly."}}


async def test_each_promoted_version_is_loaded_under_its_own_name_and_rollback_switches_back(
    registry: RegistryStore, adapter: Path, tiny_lora_dir_2: Path, tiny_base: ServedBase
) -> None:
    await registry.define_specialist(
        SpecialistDefinition("museum", "Museum hours.", "Answer briefly.", "nonempty", ())
    )
    second = Path(shutil.copytree(tiny_lora_dir_2, adapter.parent / "second"))
    shutil.copy(adapter / "training.json", second)
    v1, v2 = f"v1-{adapter_sha256(adapter)[:8]}", f"v2-{adapter_sha256(second)[:8]}"
    vllm_server = ScriptedVLLM()
    with serve(vllm_server) as (root, seen):
        vllm = VLLMBackend(f"{root}/v1", base_model_name="tiny", max_retries=0)
        promoter = Promoter(registry, base_catalog=Catalog.default(), served=tiny_base, vllm=vllm)
        math = await promoter.promote(
            await evaluated(registry, "math", adapter, tiny_base), share=0.0, actor="test"
        )
        museum = await promoter.promote(
            await evaluated(registry, "museum", adapter, tiny_base), share=0.0, actor="test"
        )
        await promoter.promote(
            await evaluated(registry, "math", second, tiny_base), share=0.0, actor="test"
        )
        assert vllm_server.loaded == {
            f"math@{v1}": str(adapter),
            f"museum@{v1}": str(adapter),
            f"math@{v2}": str(second),  # next to v1, which runs in flight may still use
        }
        vllm_server.restart()  # vLLM lost every runtime-loaded adapter
        await promoter.rollback("math")  # back to v1, which the server is given again
        assert vllm_server.loaded == {f"math@{v1}": str(adapter), f"museum@{v1}": str(adapter)}
        await promoter.rollback("museum")
        await promoter.rollback("math")  # a built-in one: back to the base model
        await vllm.aclose()
    changes = [(path.rsplit("/", 1)[1], body) for path, body in seen if body]
    assert [(kind, body["lora_name"]) for kind, body in changes] == [
        ("load_lora_adapter", f"math@{v1}"),
        ("load_lora_adapter", f"museum@{v1}"),
        ("load_lora_adapter", f"math@{v2}"),
        ("load_lora_adapter", f"math@{v1}"),  # after the restart
        ("load_lora_adapter", f"museum@{v1}"),
    ]  # never reloaded in place, never unloaded while a process may still use it
    assert not any(body.get("load_inplace") for _, body in changes)
    assert math.status == museum.status == "active"
    assert await registry.active_version("math") is None


async def test_an_adapter_vllm_refuses_is_not_promoted(
    registry: RegistryStore, adapter: Path, tiny_base: ServedBase
) -> None:
    version = await evaluated(registry, "math", adapter, tiny_base)
    served = f"math@v1-{adapter_sha256(adapter)[:8]}"
    with serve(ScriptedVLLM(refuse=frozenset({served}))) as (root, seen):
        vllm = VLLMBackend(f"{root}/v1", base_model_name="tiny", max_retries=0)
        promoter = Promoter(registry, base_catalog=Catalog.default(), served=tiny_base, vllm=vllm)
        with pytest.raises(PromotionRefused, match="greater than max_lora_rank"):
            await promoter.promote(version, share=0.0, actor="test")
        await vllm.aclose()
    assert [body.get("lora_name") for _, body in seen] == [None, served, None]  # list, load
    assert await registry.generation() == 0
    assert (await registry.get_version(version.id)).status == "candidate"


async def test_a_canary_is_loaded_on_vllm_under_its_own_name_before_it_serves(
    registry: RegistryStore, adapter: Path, tiny_lora_dir_2: Path, tiny_base: ServedBase
) -> None:
    second = Path(shutil.copytree(tiny_lora_dir_2, adapter.parent / "canary"))
    shutil.copy(adapter / "training.json", second)
    vllm_server = ScriptedVLLM()
    with serve(vllm_server) as (root, _seen):
        vllm = VLLMBackend(f"{root}/v1", base_model_name="tiny", max_retries=0)
        promoter = Promoter(registry, base_catalog=Catalog.default(), served=tiny_base, vllm=vllm)
        v1 = await evaluated(registry, "math", adapter, tiny_base)
        await promoter.promote(v1, share=0.0, actor="test")
        canary = await promoter.promote(
            await evaluated(registry, "math", second, tiny_base), share=0.3, actor="test"
        )
        with pytest.raises(OutOfRange, match="canary share"):
            await promoter.promote(canary, share=1.0, actor="test")
        await vllm.aclose()
    assert (canary.status, canary.canary_share) == ("canary", 0.3)
    assert f"math@v2-{adapter_sha256(second)[:8]}" in vllm_server.loaded
    assert (await registry.active_version("math")).id == v1.id  # type: ignore[union-attr]
