"""CORS: off unless origins are configured (``UNDERSTUDY_API_CORS_ORIGINS``); then browsers on
those origins — and only those — may call the API, preflight included."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.batch.conftest import batch_server

ALLOWED = "https://app.example.com"


def _preflight(base_url: str, origin: str) -> httpx.Response:
    return httpx.options(
        f"{base_url}/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_configured_origins_may_call_the_api_cross_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNDERSTUDY_API_CORS_ORIGINS", f'["{ALLOWED}"]')
    with batch_server(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", monkeypatch) as server:
        allowed = _preflight(server.base_url, ALLOWED)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ALLOWED
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()

        refused = _preflight(server.base_url, "https://evil.example.com")
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers

        listed = httpx.get(
            f"{server.base_url}/models",
            headers={"Origin": ALLOWED, "Authorization": f"Bearer {server.key}"},
        )
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == ALLOWED


def test_cors_is_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNDERSTUDY_API_CORS_ORIGINS", raising=False)
    with batch_server(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", monkeypatch) as server:
        preflight = _preflight(server.base_url, ALLOWED)
        assert "access-control-allow-origin" not in preflight.headers
        assert preflight.status_code in {404, 405}  # no route answers OPTIONS
        listed = httpx.get(
            f"{server.base_url}/models",
            headers={"Origin": ALLOWED, "Authorization": f"Bearer {server.key}"},
        )
        assert listed.status_code == 200
        assert "access-control-allow-origin" not in listed.headers
