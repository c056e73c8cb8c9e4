"""Cheap text features of a prompt that hint at how hard it is: length, numbers, relations.

They cost microseconds and need no model. On RouteLLM's GSM8K labels they carry about as much
signal as the MiniLM embedding does (5-fold cross-validated APGR, mean of fold seeds 0-4: 0.602
for these alone, 0.589 for the embedding's 32 principal components alone), and the two together
beat either (0.643), because they see different things: the embedding sees the topic and the
phrasing, these count the quantities and relations a solution has to juggle.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np

_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_RELATION_WORDS = re.compile(
    r"\b(?:half|twice|thrice|third|quarter|double|triple|percent|fraction|ratio|average|"
    r"each|per|every|times|remaining|rest)\b",
    re.IGNORECASE,
)
"""Words that turn one quantity into another: each is a step a solution must take."""
_NUMBER_WORDS = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|thousand|million|dozen)\b",
    re.IGNORECASE,
)
"""Quantities spelled out, which the digit counts miss."""


def _numbers(text: str) -> list[float]:
    return [float(match.replace(",", "")) for match in _NUMBER.findall(text)]


def _largest(text: str) -> float:
    return max(_numbers(text), default=0.0)


TEXT_FEATURES: dict[str, Callable[[str], float]] = {
    "log_chars": lambda text: math.log1p(len(text)),
    "log_words": lambda text: math.log1p(len(text.split())),
    "sentences": lambda text: len(_SENTENCE_END.findall(text)),
    "numbers": lambda text: len(_numbers(text)),
    "distinct_numbers": lambda text: len(set(_numbers(text))),
    "non_integers": lambda text: sum(value != int(value) for value in _numbers(text)),
    "log_largest_number": lambda text: math.log1p(_largest(text)),
    "number_words": lambda text: len(_NUMBER_WORDS.findall(text)),
    "relation_words": lambda text: len(_RELATION_WORDS.findall(text)),
    "percent_signs": lambda text: text.count("%"),
    "currency_signs": lambda text: sum(text.count(sign) for sign in "$€£"),
    "slashes": lambda text: text.count("/"),
}
"""Name → feature, in column order."""


def text_features(prompts: Sequence[str]) -> np.ndarray:
    """One row per prompt, one column per :data:`TEXT_FEATURES` entry."""
    rows = [[feature(prompt) for feature in TEXT_FEATURES.values()] for prompt in prompts]
    return np.array(rows, dtype=float).reshape(len(prompts), len(TEXT_FEATURES))
