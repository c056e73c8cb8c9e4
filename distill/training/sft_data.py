"""Chat examples → token ids with labels on the assistant turns only.

The model must learn to *answer*, not to predict system prompts and questions, so every token
outside an assistant turn gets the label :data:`IGNORE`. Assistant spans are found through the
chat template itself: the prompt up to a turn (with the generation prompt) must be a prefix of the
conversation including that turn, and the span is what lies between, up to and including the
end-of-turn token — so the model also learns to stop. This works for any template that renders
turns left to right (ChatML: SmolLM2, Qwen2.5), with no generation markers needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from specialists.errors import TrainingError

IGNORE = -100
"""The label PyTorch's cross-entropy skips."""

Messages = Sequence[dict[str, str]]


@dataclass(frozen=True, slots=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    """``IGNORE`` everywhere but on assistant tokens, where it equals the input id."""

    @property
    def answer_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def tokenize_chat(tokenizer: Any, messages: Messages) -> TokenizedExample:
    """Token ids of ``messages`` with labels on each assistant turn.

    Raises:
        TrainingError: The chat template does not render turns as prefixes of each other, so
            assistant spans cannot be found.
    """
    full = _render(tokenizer, messages, add_generation_prompt=False)
    labels = [IGNORE] * len(full)
    end_of_turn = tokenizer.eos_token_id
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:index], add_generation_prompt=True)
        upto = _render(tokenizer, messages[: index + 1], add_generation_prompt=False)
        if upto[: len(prompt)] != prompt or full[: len(upto)] != upto:
            raise TrainingError(
                "the model's chat template does not render a conversation as a prefix of its "
                "continuation; assistant turns cannot be located for training"
            )
        span = upto[len(prompt) :]
        if end_of_turn in span:
            span = span[: span.index(end_of_turn) + 1]
        start = len(prompt)
        labels[start : start + len(span)] = span
    return TokenizedExample(full, labels)


def _render(tokenizer: Any, messages: Messages, *, add_generation_prompt: bool) -> list[int]:
    return list(
        tokenizer.apply_chat_template(
            list(messages),
            tokenize=True,
            add_generation_prompt=add_generation_prompt,
            return_dict=False,
        )
    )


def pad_batch(examples: Sequence[TokenizedExample], pad_id: int) -> tuple[Any, Any, Any]:
    """``input_ids``, ``attention_mask`` and ``labels`` tensors, right-padded to the longest."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        ids[row, :length] = torch.tensor(example.input_ids)
        mask[row, :length] = 1
        labels[row, :length] = torch.tensor(example.labels)
    return ids, mask, labels
