"""Fixtures for registry and distillation tests.

``small_model_dir`` is SmolLM2 cut to its first two layers: real embeddings (so a LoRA learns a
narrow task in a few dozen CPU steps, where a random model cannot produce a confident token)
at a tenth of the compute."""

from __future__ import annotations

from pathlib import Path

import pytest

SMALL_MODEL_LAYERS = 2


@pytest.fixture(scope="session")
def small_model_dir(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    model.model.layers = model.model.layers[:SMALL_MODEL_LAYERS]
    model.config.num_hidden_layers = SMALL_MODEL_LAYERS
    out = tmp_path_factory.mktemp("smollm2-2-layers")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(smollm2_dir).save_pretrained(out)
    return out
