"""Checks on LoRA adapter directories before they touch a model or a server.

peft injects adapter layers into the base model *before* it copies the weights in, so a
mismatched adapter would leave the base altered when loading fails half-way. Checking shapes
against the base first keeps a bad adapter from changing anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specialists.errors import ModelError

_PREFIX = "base_model.model."


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
