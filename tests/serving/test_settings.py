import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.cli import app
from serving.settings import Settings, mask_url


def test_documented_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "UNDERSTUDY_HOME": str(tmp_path / "h"),
        "UNDERSTUDY_DATABASE_URL": "postgresql+asyncpg://u:pw@127.0.0.1/test",
        "UNDERSTUDY_DATA_DIR": str(tmp_path / "data"),
        "UNDERSTUDY_SLM_BACKEND": "vllm",
        "UNDERSTUDY_SLM_BASE_URL": "http://gpu:8000/v1",
        "UNDERSTUDY_LEAD_MODEL": "openai/gpt-4o-mini",
        "UNDERSTUDY_LEAD_BASE_URL": "http://lead/v1",
        "UNDERSTUDY_LEAD_API_KEY": "sk-secret-123",
        "UNDERSTUDY_SLM_MAX_LORA_RANK": "32",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.home == tmp_path / "h"
    assert settings.database_url == env["UNDERSTUDY_DATABASE_URL"]
    assert settings.data_dir == tmp_path / "data"
    assert (settings.slm.backend, settings.slm.base_url) == ("vllm", "http://gpu:8000/v1")
    assert (settings.lead.model, settings.lead.base_url) == ("openai/gpt-4o-mini", "http://lead/v1")
    assert settings.lead.api_key is not None
    assert settings.lead.api_key.get_secret_value() == "sk-secret-123"
    assert settings.slm.max_lora_rank == 32


def test_audit_settings_reach_the_audit_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.runtime import audit_policy

    for key, value in {
        "UNDERSTUDY_AUDIT_RATE": "0.3",
        "UNDERSTUDY_AUDIT_FLOOR": "0.02",
        "UNDERSTUDY_AUDIT_MIN_COUNT": "12",
        "UNDERSTUDY_AUDIT_TARGET_WIDTH": "0.05",
        "UNDERSTUDY_AUDIT_WINDOW": "200",
        "UNDERSTUDY_AUDIT_WINDOW_DAYS": "7",
    }.items():
        monkeypatch.setenv(key, value)
    policy = audit_policy(Settings())
    assert (policy.rate, policy.floor, policy.min_audits) == (0.3, 0.02, 12)
    assert (policy.target_width, policy.window, policy.window_days) == (0.05, 200, 7.0)


def test_defaults_are_embedded(isolated_env: Path) -> None:
    settings = Settings()
    assert settings.slm.backend == "local" and settings.slm.base_model == "smollm2-135m"
    assert settings.database_url == f"sqlite+aiosqlite:///{isolated_env / 'understudy.db'}"
    assert settings.lead.model is None


def test_dotenv_file_and_specialist_overrides(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        'UNDERSTUDY_SPECIALISTS={"math": {"confidence_threshold": 0.9}}\nUNDERSTUDY_SLM_PORT=9001\n'
    )
    settings = Settings()
    assert settings.slm.port == 9001
    assert settings.catalog().get("math").confidence_threshold == 0.9


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("UNDERSTUDY_SLM_BACKEND", "tgi", "local"),
        ("UNDERSTUDY_SLM_MAX_LORA_RANK", "24", "vLLM supports LoRA ranks"),
        ("UNDERSTUDY_SPECIALISTS", '{"math": {"colour": 1}}', "colour"),
        ("UNDERSTUDY_AUDIT_FLOOR", "0.5", "floor \\(0.5\\) must be at most rate \\(0.1\\)"),
        ("UNDERSTUDY_AUDIT_RATE", "1.5", "audit.rate"),
    ],
)
def test_bad_values_fail_with_the_setting_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        Settings()


def test_mask_url() -> None:
    assert mask_url("postgresql://user:hunter2@db:5432/x") == "postgresql://user:***@db:5432/x"
    assert mask_url("sqlite+aiosqlite:////tmp/a.db") == "sqlite+aiosqlite:////tmp/a.db"


def test_config_show_masks_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNDERSTUDY_LEAD_API_KEY", "sk-lead-secret")
    monkeypatch.setenv("UNDERSTUDY_SLM_API_KEY", "vllm-secret")
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", "postgresql+asyncpg://u:dbpass@h/db")
    runner = CliRunner()
    as_json = runner.invoke(app, ["config", "show", "--json"])
    table = runner.invoke(app, ["config", "show"])
    for result in (as_json, table):
        assert result.exit_code == 0, result.output
        for secret in ("sk-lead-secret", "vllm-secret", "dbpass"):
            assert secret not in result.output
    data = json.loads(as_json.output)
    assert data["lead"]["api_key"] == "**********"
    assert data["database"]["url"] == "postgresql+asyncpg://u:***@h/db"
    assert "UNDERSTUDY_SLM_BASE_URL" in table.output


def test_price_overrides_reach_the_price_book(monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.orchestration import price_book

    monkeypatch.setenv(
        "UNDERSTUDY_LEAD_PRICES", '{"my-lead": {"input_per_million": 2, "output_per_million": 8}}'
    )
    monkeypatch.setenv("UNDERSTUDY_SLM_COST_PER_MILLION", "0.5")
    book = price_book(Settings())
    assert book.lead_cost("my-lead", 1_000_000, 1_000_000) == pytest.approx(10.0)
    assert book.slm_cost(2_000_000) == pytest.approx(1.0)
