"""Cascade with the difficulty skip vs without: lead calls, specialist calls and accuracy, on
RouteLLM's GSM8K labels (real prompts; each with whether Mixtral-8x7B, the weak model, and GPT-4,
the strong one, answered it correctly).

Run from the repository root (about a minute on 2 cores: MiniLM embeds ~1,300 prompts)::

    UNDERSTUDY_DATA_DIR=../shared/data python benchmarks/difficulty_skip.py

The product's history is simulated from the labels: 70 % of the prompts (seeded) are yesterday's
cascade runs with the math specialist (``cascade:accepted:math`` when the weak model was right,
``cascade:escalated:math`` when it was not); the difficulty model is fitted and calibrated on them
by the product's own code (``distill/prerouter/difficulty.py``). The other 30 % are today's
traffic: for each target share of lead calls, every prompt is scored and decided by the product's
:func:`~orchestrator.difficulty.skip_decision`, and the cascade's outcome is read off the labels
(a tried prompt is accepted when the weak model was right — perfect gating, stated, not measured
— and otherwise escalated; the lead's answer is the strong model's). The baseline in the same
run is a random skip of as many prompts: the same specialist calls saved, chosen blindly.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.prerouter.difficulty import CascadeOutcome, fit_difficulty
from evals.data import script_data_dir
from evals.router_eval.labels import LabelSet, load_labels
from orchestrator.difficulty import skip_decision
from orchestrator.prerouter import MiniLMEmbedder, embed_prompts
from orchestrator.prerouter_learned import embedder_identity

TARGETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
HISTORY_SHARE = 0.7


@dataclass(frozen=True, slots=True)
class Figures:
    lead_calls: int
    specialist_calls: int
    wasted_attempts: int
    """Specialist attempts that were escalated anyway."""
    accuracy: float

    def row(self, name: str, n: int) -> str:
        return (
            f"| {name} | {self.lead_calls / n:.3f} | {self.specialist_calls} | "
            f"{self.wasted_attempts} | {self.lead_calls} | {self.accuracy:.3f} |"
        )


def cascade(skipped: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> Figures:
    """What cascade does with ``skipped`` prompts sent straight to the lead."""
    tried = ~skipped
    escalated = tried & ~weak
    correct = np.where(tried & weak, True, strong)
    return Figures(
        lead_calls=int(skipped.sum() + escalated.sum()),
        specialist_calls=int(tried.sum()),
        wasted_attempts=int(escalated.sum()),
        accuracy=float(correct.mean()),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data_dir = args.data_dir or script_data_dir()
    labels = load_labels(LabelSet.gsm8k, data_dir / "routellm_evals")
    weak_all, strong_all = labels.weak > 0, labels.strong > 0
    order = list(range(len(labels)))
    random.Random(args.seed).shuffle(order)
    cut = int(len(order) * HISTORY_SHARE)
    history, today = order[:cut], order[cut:]

    embedder = MiniLMEmbedder()
    outcomes = [CascadeOutcome(labels.prompts[i], "math", not weak_all[i]) for i in history]
    fit = fit_difficulty(outcomes, embedder, embedder_id=embedder_identity(embedder))
    print(f"fitted on {len(history)} simulated cascade runs: {fit.gate}")
    model = fit.model
    if model is None:
        print("no model passed its gate: nothing to compare")
        return 1

    prompts = [labels.prompts[i] for i in today]
    weak, strong = weak_all[today], strong_all[today]
    vectors = embed_prompts(embedder, prompts)
    scores = [model.score(v, p, "math") for v, p in zip(vectors, prompts, strict=True)]
    n = len(today)
    print(
        f"\n{n} prompts of today's traffic; weak right {weak.mean():.3f}, strong right "
        f"{strong.mean():.3f}\n"
    )
    print("| cascade | lead share | specialist calls | escalated anyway | lead calls | accuracy |")
    print("|---|---|---|---|---|---|")
    print(cascade(np.zeros(n, dtype=bool), weak, strong).row("no skip", n))
    rng = np.random.default_rng(args.seed)
    for target in TARGETS:
        skipped = np.array(
            [skip_decision(model, s, "math", target, version=1).skipped for s in scores]
        )
        mine = cascade(skipped, weak, strong)
        blind = np.zeros(n, dtype=bool)
        blind[rng.choice(n, int(skipped.sum()), replace=False)] = True
        print(mine.row(f"skip, target {target:.1f}", n))
        print(cascade(blind, weak, strong).row(f"random skip, as many ({int(skipped.sum())})", n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
