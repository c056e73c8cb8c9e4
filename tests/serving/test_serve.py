"""``understudy serve`` lets requests in flight finish for at least the run budget when stopped,
and gives uvicorn's drain time beyond the app's own to answer what the app stops."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from serving.api.drain import ANSWER_S
from serving.cli import app
from specialists.errors import ConfigurationError


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What `serve` hands uvicorn, instead of serving."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    return calls


@pytest.mark.parametrize(
    ("environment", "app_drain_s"),
    [
        ({}, 125),  # the default run budget (120 s) and a margin for the reply
        ({"UNDERSTUDY_RUN_MAX_SECONDS": "30"}, 35),
        ({"UNDERSTUDY_API_SHUTDOWN_DRAIN_S": "300"}, 300),
    ],
)
def test_the_drain_covers_the_run_budget(
    uvicorn_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    app_drain_s: int,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    expected = app_drain_s + ANSWER_S
    assert [call["timeout_graceful_shutdown"] for call in uvicorn_calls] == [expected]


def test_a_drain_shorter_than_the_run_budget_is_refused(
    uvicorn_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNDERSTUDY_API_SHUTDOWN_DRAIN_S", "30")
    result = CliRunner().invoke(app, ["serve"])
    assert isinstance(result.exception, ConfigurationError)
    assert "UNDERSTUDY_API_SHUTDOWN_DRAIN_S" in str(result.exception.setting)
    assert "run.max_seconds (120 s)" in str(result.exception)
    assert uvicorn_calls == []
