import json
import shutil
from pathlib import Path

import pytest

from specialists import ModelDirectoryError, ModelError, ModelStore, validate_model_dir
from specialists.model_store import slug


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def test_a_complete_directory_validates(model_copy: Path) -> None:
    validate_model_dir(model_copy)


def test_missing_config_names_the_file_and_the_fix(model_copy: Path) -> None:
    (model_copy / "config.json").unlink()
    with pytest.raises(ModelDirectoryError) as info:
        validate_model_dir(model_copy, ref="smollm2-135m")
    assert info.value.file == "config.json"
    assert "understudy models pull smollm2-135m --force" in str(info.value)


def test_truncated_weights_are_detected_without_loading(model_copy: Path) -> None:
    weights = model_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelDirectoryError, match="model.safetensors: truncated"):
        validate_model_dir(model_copy)


def test_garbage_weights_header(model_copy: Path) -> None:
    (model_copy / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ModelDirectoryError, match="corrupt safetensors header"):
        validate_model_dir(model_copy)


def test_invalid_json_and_missing_chat_template(model_copy: Path) -> None:
    (model_copy / "config.json").write_text("{not json")
    with pytest.raises(ModelDirectoryError, match="config.json: not valid JSON"):
        validate_model_dir(model_copy)
    (model_copy / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model_copy / "chat_template.jinja").unlink()
    config = json.loads((model_copy / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model_copy / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirectoryError, match="no chat template"):
        validate_model_dir(model_copy)


def test_resolve_by_alias_hub_id_and_path(tmp_path: Path, model_copy: Path) -> None:
    store = ModelStore(tmp_path / "models")
    assert slug("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen--Qwen2.5-1.5B-Instruct"
    with pytest.raises(ModelError, match="understudy models pull smollm2-135m"):
        store.resolve("smollm2-135m")
    shutil.copytree(model_copy, store.path_for("org/tiny"))
    assert store.resolve("org/tiny") == store.root / "org--tiny"
    assert store.resolve(str(model_copy)) == model_copy
    assert store.installed() == [store.root / "org--tiny"]
