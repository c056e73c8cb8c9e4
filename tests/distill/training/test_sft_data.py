"""Only assistant tokens carry labels, and the fast loss equals the model's own loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from distill.training.lora import answer_loss
from distill.training.sft_data import IGNORE, pad_batch, tokenize_chat

CHAT = [
    {"role": "system", "content": "Reply with the number."},
    {"role": "user", "content": "What is 17 * 24?"},
    {"role": "assistant", "content": "408"},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def labelled_text(tokenizer, example) -> str:
    return tokenizer.decode([label for label in example.labels if label != IGNORE])


def test_labels_cover_the_answer_and_its_end_of_turn_only(tokenizer) -> None:
    example = tokenize_chat(tokenizer, CHAT)
    assert labelled_text(tokenizer, example) == "408<|im_end|>"
    assert len(example.labels) == len(example.input_ids)
    labelled = [i for i, label in enumerate(example.labels) if label != IGNORE]
    assert [example.input_ids[i] for i in labelled] == [example.labels[i] for i in labelled]
    assert tokenizer.decode(example.input_ids[: labelled[0]]).endswith("<|im_start|>assistant\n")


def test_every_assistant_turn_of_a_conversation_is_labelled(tokenizer) -> None:
    conversation = [
        *CHAT,
        {"role": "user", "content": "And 408 / 8?"},
        {"role": "assistant", "content": "51"},
    ]
    example = tokenize_chat(tokenizer, conversation)
    assert labelled_text(tokenizer, example) == "408<|im_end|>51<|im_end|>"
    assert "And 408 / 8?" in tokenizer.decode(example.input_ids)


def test_padding_adds_no_labels(tokenizer) -> None:
    short = tokenize_chat(tokenizer, CHAT)
    long = tokenize_chat(tokenizer, [*CHAT[:2], {"role": "assistant", "content": "408 " * 10}])
    ids, mask, labels = pad_batch([short, long], pad_id=tokenizer.pad_token_id)
    assert ids.shape == labels.shape == mask.shape == (2, len(long.input_ids))
    assert int(mask[0].sum()) == len(short.input_ids)
    assert (labels[0, len(short.input_ids) :] == IGNORE).all()


def test_the_answer_only_projection_gives_the_models_own_loss(tiny_model_dir: Path, tokenizer):
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    ).eval()
    examples = [
        tokenize_chat(tokenizer, CHAT),
        tokenize_chat(tokenizer, [*CHAT[:2], {"role": "assistant", "content": "It is 408."}]),
    ]
    ids, mask, labels = pad_batch(examples, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        ours, count = answer_loss(model, ids, mask, labels)
        reference = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert count == sum(e.answer_tokens for e in examples)
    assert torch.allclose(ours, reference, atol=1e-5)
