"""``understudy doctor`` tells of transcripts the database refused that still wait in the spool."""

from __future__ import annotations

import asyncio
from pathlib import Path

from orchestrator.transcripts import TranscriptSpool
from tests.helpers.cli import understudy
from tests.orchestrator.test_transcripts import make_run
from tests.serving.test_doctor import checks


def test_doctor_warns_of_spooled_transcripts(isolated_env: Path) -> None:
    assert checks(understudy("doctor", "--json").stdout)["database"]["status"] == "ok"

    asyncio.run(TranscriptSpool(isolated_env / "spool").put(make_run()))

    database = checks(understudy("doctor", "--json").stdout)["database"]
    assert database["status"] == "warning"
    assert f"1 transcript(s) it refused wait in {isolated_env / 'spool'}" in database["detail"]
    assert "understudy worker" in database["fix"]
