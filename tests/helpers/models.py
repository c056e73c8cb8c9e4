"""Real (tiny or small) models built for tests: no network beyond PyPI, no mocks."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM


def build_tiny_llama(source_dir: Path, out_dir: Path, *, hidden: int = 64, seed: int = 0) -> Path:
    """A 2-layer random Llama with ``source_dir``'s real tokenizer and chat template."""
    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_random_lora(
    model_dir: Path, out_dir: Path, *, rank: int = 8, seed: int = 1, scale: float = 4.0
) -> Path:
    """A LoRA adapter with random, deliberately large weights: it visibly changes outputs."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=rank,
            lora_alpha=rank * 2,
            target_modules=["q_proj", "v_proj", "o_proj"],
            init_lora_weights=False,
        ),
    )
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(scale)
    peft_model.save_pretrained(out_dir)
    return out_dir


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
