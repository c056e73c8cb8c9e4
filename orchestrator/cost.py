"""What a run cost, and what the same tokens would have cost on the lead alone.

Lead prices come from LiteLLM's bundled price map, read as a file (offline, and without importing
litellm, which is slow to import); settings override any model. Specialists are priced per
million tokens, one figure for the self-hosted SLM fleet.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_PRICE_FILE = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token, input and output."""

    input_per_token: float
    output_per_token: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.input_per_token + output_tokens * self.output_per_token


@functools.cache
def bundled_prices() -> dict[str, Price]:
    """LiteLLM's bundled price map (empty if litellm is not installed)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / _PRICE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {
        name: Price(float(entry["input_cost_per_token"]), float(entry["output_cost_per_token"]))
        for name, entry in raw.items()
        if isinstance(entry, dict)
        and isinstance(entry.get("input_cost_per_token"), int | float)
        and isinstance(entry.get("output_cost_per_token"), int | float)
    }


class PriceBook:
    """Looks up lead prices (overrides first, then LiteLLM's map) and prices SLM tokens.

    Args:
        overrides: Prices by model name, as configured.
        slm_per_million: USD per million specialist tokens (prompt and completion alike).
    """

    def __init__(
        self, overrides: Mapping[str, Price] | None = None, *, slm_per_million: float = 0.0
    ):
        self._overrides = dict(overrides or {})
        self.slm_per_million = slm_per_million

    def lead_price(self, model: str | None) -> Price | None:
        """The price of ``model``; ``provider/name`` also matches the bare ``name``."""
        if not model:
            return None
        for name in (model, model.split("/", 1)[-1]):
            if name in self._overrides:
                return self._overrides[name]
        bundled = bundled_prices()
        return bundled.get(model) or bundled.get(model.split("/", 1)[-1])

    def lead_cost(self, model: str | None, input_tokens: int, output_tokens: int) -> float:
        price = self.lead_price(model)
        return price.cost(input_tokens, output_tokens) if price else 0.0

    def slm_cost(self, tokens: int) -> float:
        return tokens * self.slm_per_million / 1_000_000
