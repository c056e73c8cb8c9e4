"""compose.yaml's api service: built here, wired to vLLM and PostgreSQL, probed on /healthz."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())


def test_api_service_is_built_and_published_on_loopback(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["build"] == "."
    assert api["ports"] == ["127.0.0.1:8080:8080"]
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert 'CMD ["understudy", "serve", "--host", "0.0.0.0", "--port", "8080"]' in dockerfile


def test_api_environment_points_at_the_other_services(compose: dict[str, Any]) -> None:
    env = compose["services"]["api"]["environment"]
    assert env["UNDERSTUDY_DATABASE_URL"] == (
        "postgresql+asyncpg://understudy:${POSTGRES_PASSWORD:-understudy}@postgres:5432/understudy"
    )
    assert env["UNDERSTUDY_SLM_BACKEND"] == "vllm"
    assert env["UNDERSTUDY_SLM_BASE_URL"] == "http://vllm:8000/v1"
    # The same name vLLM serves the base model under.
    assert "${UNDERSTUDY_SLM_BASE_MODEL" in env["UNDERSTUDY_SLM_BASE_MODEL"]
    vllm_command = compose["services"]["vllm"]["command"]
    assert any(
        arg.startswith("--served-model-name=${UNDERSTUDY_SLM_BASE_MODEL") for arg in vllm_command
    )
    for name in ("UNDERSTUDY_LEAD_MODEL", "UNDERSTUDY_LEAD_BASE_URL", "UNDERSTUDY_LEAD_API_KEY"):
        assert env[name] is None, f"{name} must pass through from the host, not be fixed here"


def test_api_waits_for_healthy_dependencies_and_has_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    api = compose["services"]["api"]
    assert api["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "vllm": {"condition": "service_healthy"},
    }
    test = api["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert "http://localhost:8080/healthz" in " ".join(test)


def test_api_and_vllm_see_adapters_at_the_same_path(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "adapters:/understudy/adapters" in services["api"]["volumes"]
    assert "adapters:/understudy/adapters" in services["vllm"]["volumes"]
    assert "UNDERSTUDY_HOME=/understudy" in (REPO_ROOT / "Dockerfile").read_text()


def test_api_can_run_the_code_sandbox(compose: dict[str, Any]) -> None:
    """bubblewrap in the image, and the user namespaces it needs allowed in the container."""
    assert (
        "apt-get install -y --no-install-recommends bubblewrap"
        in (REPO_ROOT / "Dockerfile").read_text()
    )
    assert set(compose["services"]["api"]["security_opt"]) == {
        "seccomp=unconfined",
        "apparmor=unconfined",
    }
