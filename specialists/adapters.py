"""LoRA adapter directories: the checks before they touch a model or a server, and their names.

peft injects adapter layers into the base model *before* it copies the weights in, so a
mismatched adapter would leave the base altered when loading fails half-way. Checking shapes
against the base first keeps a bad adapter from changing anything.

Every adapter is served under a name of its own that stands for one set of weights
(:func:`served_adapter_name`: ``email@v3-1f2e3d4c``), never reloaded in place: a new version is
a new name, so a run that started on ``email@v2`` finishes on it whatever is promoted meanwhile, and
no server can mix an old name with new weights (stale prefix-cache blocks, say).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specialists.errors import ModelError

if TYPE_CHECKING:
    from specialists.catalog import Specialist

_PREFIX = "base_model.model."
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""What a server loads from an adapter directory, and so what its hash covers."""
CONTENT_TAG_LENGTH = 8
"""Hex digits of an adapter's SHA-256 in its served name."""


def adapter_sha256(path: Path) -> str:
    """SHA-256 over the adapter's config and weights (names and contents, in a fixed order).

    Raises:
        ModelError: A file is missing.
    """
    digest = hashlib.sha256()
    for name in ADAPTER_FILES:
        file = path / name
        if not file.is_file():
            raise ModelError(f"{file}: missing; is {path} a LoRA adapter directory?")
        digest.update(f"{name}\n".encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def adapter_name(specialist: str, tag: str) -> str:
    """The served name of ``specialist``'s adapter version ``tag``: ``email@v3-1f2e3d4c``."""
    return f"{specialist}@{tag}"


def content_tag(sha256: str) -> str:
    """The part of an adapter's SHA-256 its served name carries."""
    return sha256[:CONTENT_TAG_LENGTH]


def served_adapter_name(specialist: Specialist) -> str:
    """The name ``specialist``'s adapter is served under, on every backend and every process.

    A registry version names it with the start of its SHA-256 (``email@v3-1f2e3d4c``: the
    number for people, the hash so that a registry started afresh against a running server
    cannot reuse ``v3`` for other weights); an adapter from the settings has no version, so its
    hash alone does (``email@1f2e3d4c``), and editing its files gives it a new name rather than
    new weights under the old one.

    Raises:
        ModelError: The specialist has no adapter, or its files are missing.
    """
    if specialist.adapter is None:
        raise ModelError(f"specialist {specialist.name!r} has no adapter to name")
    tag = specialist.version or _content_tag(specialist.adapter.resolve())
    return adapter_name(specialist.name, tag)


def _content_tag(path: Path) -> str:
    """The adapter's short content hash, hashed again only when its files change."""
    signature = []
    for name in ADAPTER_FILES:
        try:
            stat = (path / name).stat()
        except OSError:
            raise ModelError(
                f"{path / name}: missing; is {path} a LoRA adapter directory?"
            ) from None
        signature.append((name, stat.st_mtime_ns, stat.st_size))
    return _hashed_tag(path, tuple(signature))


@functools.lru_cache(maxsize=256)
def _hashed_tag(path: Path, _signature: tuple[tuple[str, int, int], ...]) -> str:
    return content_tag(adapter_sha256(path))


def read_adapter_config(path: Path) -> dict[str, Any]:
    """The adapter's ``adapter_config.json``; a clear error when it is missing or unreadable."""
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise ModelError(f"{config_file}: missing; is {path} a LoRA adapter directory?")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_file}: unreadable ({exc})") from exc
    if not isinstance(config, dict) or "r" not in config:
        raise ModelError(f"{config_file}: not a LoRA config (no rank 'r')")
    return config


def check_adapter_fits(base: Any, path: Path, *, name: str, base_ref: str) -> None:
    """Raise :class:`ModelError` unless every LoRA matrix in ``path`` fits a layer of ``base``.

    Args:
        base: The plain base model (a ``torch.nn.Module``; for a ``PeftModel`` pass
            ``get_base_model()``).
        path: The adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``).
    """
    from safetensors import safe_open

    read_adapter_config(path)
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights}: missing; the adapter has no safetensors weights")
    with safe_open(str(weights), framework="pt") as tensors:
        for key in tensors.keys():  # noqa: SIM118 - safe_open is not a mapping
            _check_one(base, key, tuple(tensors.get_slice(key).get_shape()), name, base_ref)


def _check_one(base: Any, key: str, shape: tuple[int, ...], name: str, base_ref: str) -> None:
    for kind in ("lora_A", "lora_B"):
        marker = f".{kind}."
        if marker not in key:
            continue
        module_name = key.split(marker)[0].removeprefix(_PREFIX)
        try:
            layer = base.get_submodule(module_name)
        except AttributeError:
            raise ModelError(
                f"adapter {name!r} does not fit base {base_ref!r}: it targets {module_name!r}, "
                "which the base model does not have"
            ) from None
        expected = layer.in_features if kind == "lora_A" else layer.out_features
        actual = shape[1] if kind == "lora_A" else shape[0]
        if actual != expected:
            raise ModelError(
                f"adapter {name!r} does not fit base {base_ref!r}: {module_name} expects "
                f"{expected} features, the adapter's {kind} has {actual}"
            )
