"""One chat API server per client's test module: the clients and what they send are what these
tests vary, and starting a server (SmolLM2 loaded, a database migrated) would otherwise be most
of their time. Each test gets the server's scripted lead fresh, and must consume its script."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import link_smollm2
from tests.helpers.api_server import Api, serving


@pytest.fixture(scope="module")
def served_api(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = link_smollm2(tmp_path_factory.mktemp("home"), smollm2_dir)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("UNDERSTUDY_HOME", str(home))
        with serving(f"sqlite+aiosqlite:///{home / 'understudy.db'}", env) as api:
            yield api


@pytest.fixture
def api(served_api: Api) -> Iterator[Api]:
    served_api.lead.reset()
    yield served_api
    served_api.lead.assert_complete()
