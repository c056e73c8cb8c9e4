"""compose.yaml wires vLLM (with runtime LoRA) and PostgreSQL, each with a healthcheck."""

import yaml

from tests.conftest import REPO_ROOT


def test_compose_services_have_healthchecks_and_lora() -> None:
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"vllm", "postgres"} <= set(services)
    assert all("healthcheck" in service for service in services.values())
    vllm = services["vllm"]
    assert "--enable-lora" in vllm["command"]
    assert vllm["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert set(compose["volumes"]) >= {"adapters", "pgdata"}


def test_compose_file_passes_a_full_compose_spec_validation() -> None:
    """Stands in for `docker compose config`, which needs a Docker engine this machine lacks:
    the compose_spec parser validates every key, type and enum of the Compose Specification."""
    from compose_spec import PyCompose

    compose = PyCompose.from_yaml((REPO_ROOT / "compose.yaml").read_text())
    assert sorted(compose.service_names()) == ["api", "postgres", "vllm"]
