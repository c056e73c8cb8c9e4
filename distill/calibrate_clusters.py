"""Calibrate ``understudy distill propose`` on real prompts: its clustering and coverage thresholds.

Run it from the repository root::

    python -m distill.calibrate_clusters --data-dir ../shared/data --n 150 --min-runs 20

**Clustering.** A proposal is a group of queries the lead keeps answering that is *one task*:
big enough to train on, and pure enough that one specialist can learn it. Prompts of three
narrow tasks are mixed with prompts of no common task and clustered with the real MiniLM
embedder exactly as :class:`~distill.proposals.Proposer` does, over a sweep of thresholds:

* tasks: GSM8K test questions (``gsm8k``), MBPP task texts (``mbpp``) and AESLC emails wrapped in
  "Write a subject line for this email" (``email``);
* no task (``mixed``): the pre-router calibration's "none" prompts from MT-Bench, Vicuna-Bench and
  Self-Instruct — writing, roleplay, knowledge, extraction, everyday app tasks, a few of each, no
  math, code or email — which should *not* become a proposal.

For each threshold, over the groups of at least ``--min-runs`` prompts: *recall* (the share of a
task's prompts in a group led by that task, averaged over tasks), *purity* (the share of grouped
prompts that belong to their group's majority task), *spurious* groups (led by ``mixed``
prompts: proposals for a task that does not exist) and groups per task (1 is ideal). The pick is
the best recall times purity, averaged with its neighbours (a plateau beats a spike), among
thresholds without a spurious group.

**Coverage.** A group is left alone when an existing specialist covers it: when its queries'
mean best pre-router score reaches the coverage threshold. (The router's own threshold, 0.17,
decides single prompts and is deliberately generous; a *task* belongs to a specialist when it
looks like that specialist's typical traffic.) Covered tasks: GSM8K and MATH-500 (math), MBPP
and HumanEval (code), AESLC requests and Self-Instruct email tasks (email). Uncovered: MMLU
biology, astronomy and chemistry questions, and the ``mixed`` sources. The pick is the middle of
the gap between the highest uncovered and the lowest covered mean.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.config import DEFAULT_CLUSTER_THRESHOLD, DEFAULT_COVERAGE_THRESHOLD
from distill.proposals import cluster
from evals.data import DataSource, script_data_dir
from evals.suites.routing import code_sources, email_sources, math_sources, none_sources
from orchestrator.prerouter import Embedder, MiniLMEmbedder, PreRouter, clip_prompt
from specialists.catalog import Catalog

TASKS = ("gsm8k", "mbpp", "email")
MIXED = "mixed"
UNRELATED = ("mt_bench", "vicuna", "self_instruct")
EMAIL_TEMPLATE = "Write a subject line for this email:\n\n{body}"
UNCOVERED_MMLU = (
    "high_school_biology",
    "college_biology",
    "astronomy",
    "high_school_chemistry",
    "college_chemistry",
)
"""MMLU subjects no specialist should claim (the math and computer science ones could be)."""


def load_prompts(source: DataSource, n: int, seed: int) -> list[tuple[str, str]]:
    """``(label, prompt)`` pairs: up to ``n`` per task, and every ``mixed`` prompt."""
    mixed = none_sources(source)
    sources = {
        "gsm8k": [row["question"] for row in source.rows("gsm8k")],
        "mbpp": [row["text"] for row in source.rows("mbpp")],
        "email": [
            EMAIL_TEMPLATE.format(body=row["email_body"].strip()) for row in source.rows("aeslc")
        ],
    }
    rng = random.Random(seed)
    pairs = [
        (label, prompt)
        for label, prompts in sources.items()
        for prompt in rng.sample(prompts, min(n, len(prompts)))
    ]
    return pairs + [(MIXED, prompt) for name in UNRELATED for prompt in mixed[name]]


@dataclass(frozen=True, slots=True)
class Row:
    threshold: float
    recall: dict[str, float]
    purity: float
    spurious: int
    groups: dict[str, int]

    @property
    def score(self) -> float:
        return float(np.mean(list(self.recall.values()))) * self.purity


def evaluate(labels: Sequence[str], vectors: np.ndarray, threshold: float, min_runs: int) -> Row:
    """The clustering figures of one threshold (see the module docstring)."""
    totals = Counter(labels)
    recalled: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    grouped = pure = spurious = 0
    for group in cluster(vectors, threshold):
        if len(group) < min_runs:
            break
        counts = Counter(labels[i] for i in group)
        leader, count = counts.most_common(1)[0]
        grouped += len(group)
        pure += count
        if leader == MIXED:
            spurious += 1
        else:
            recalled[leader] += count
            groups[leader] += 1
    return Row(
        threshold=round(threshold, 3),
        recall={task: recalled[task] / totals[task] for task in TASKS},
        purity=pure / grouped if grouped else 0.0,
        spurious=spurious,
        groups={task: groups[task] for task in TASKS},
    )


def choose(rows: Sequence[Row]) -> Row:
    """Best neighbour-smoothed recall times purity among thresholds without a spurious group."""
    scores = np.array([row.score if row.spurious == 0 else 0.0 for row in rows])
    smoothed = np.convolve(np.pad(scores, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    smoothed[scores == 0] = 0.0
    return rows[int(np.argmax(smoothed))]


def coverage_groups(source: DataSource) -> dict[str, tuple[bool, list[str]]]:
    """Task name → (whether a built-in specialist covers it, its prompts)."""
    covered = {**math_sources(source), **code_sources(source), **email_sources(source)}
    mmlu = list(source.rows("mmlu_stem"))
    uncovered = {
        f"mmlu {subject}": [row["question"] for row in mmlu if row["type"] == subject]
        for subject in UNCOVERED_MMLU
    }
    unrelated = none_sources(source)
    uncovered.update({name: unrelated[name] for name in UNRELATED})
    return {
        **{name: (True, prompts) for name, prompts in covered.items()},
        **{name: (False, prompts) for name, prompts in uncovered.items()},
    }


def mean_best_score(router: PreRouter, embedder: Embedder, prompts: Sequence[str]) -> float:
    """The mean over prompts of their best prototype score: what ``Proposer`` compares."""
    vectors = embedder.embed([clip_prompt(prompt) for prompt in prompts])
    return float((vectors @ router.prototypes().T).max(axis=1).mean())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="evaluation data")
    parser.add_argument("--n", type=int, default=150, help="prompts per task (default 150)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--min-runs", type=int, default=20, help="smallest proposal (default 20)")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or script_data_dir()
    if data_dir is None or not data_dir.is_dir():
        parser.error(
            f"no evaluation data at {data_dir}; pass --data-dir or set UNDERSTUDY_DATA_DIR"
        )
    source = DataSource(data_dir)
    embedder = MiniLMEmbedder()

    pairs = load_prompts(source, args.n, args.seed)
    labels = [label for label, _ in pairs]
    vectors = embedder.embed([clip_prompt(prompt) for _, prompt in pairs])
    print(f"clustering: {len(pairs)} prompts (seed {args.seed}): {dict(Counter(labels))}")
    rows = [
        evaluate(labels, vectors, threshold, args.min_runs)
        for threshold in np.arange(0.05, 0.501, 0.025)
    ]
    chosen = choose(rows)
    print(f"\n{'threshold':>9}  " + "  ".join(f"{t:>6}" for t in TASKS) + "  purity  spurious")
    for row in rows:
        recall = "  ".join(f"{row.recall[t]:6.3f}" for t in TASKS)
        groups = " ".join(str(row.groups[t]) for t in TASKS)
        mark = "  ← chosen" if row is chosen else ""
        print(
            f"{row.threshold:9.3f}  {recall}  {row.purity:6.3f}  {row.spurious:8d}"
            f"  groups {groups}{mark}"
        )
    print(f"DEFAULT_CLUSTER_THRESHOLD is {DEFAULT_CLUSTER_THRESHOLD}; chosen {chosen.threshold}")

    router = PreRouter(Catalog.default(), embedder)
    rng = random.Random(args.seed)
    means = {
        name: (covered, mean_best_score(router, embedder, rng.sample(ps, min(args.n, len(ps)))))
        for name, (covered, ps) in coverage_groups(source).items()
    }
    print("\ncoverage: mean best pre-router score per task")
    for name, (covered, mean) in sorted(means.items(), key=lambda item: -item[1][1]):
        print(f"  {name:28} {'covered' if covered else 'uncovered':9}  {mean:.3f}")
    lowest_covered = min(mean for covered, mean in means.values() if covered)
    highest_uncovered = max(mean for covered, mean in means.values() if not covered)
    print(
        f"gap {highest_uncovered:.3f} … {lowest_covered:.3f}: middle "
        f"{(highest_uncovered + lowest_covered) / 2:.3f}; "
        f"DEFAULT_COVERAGE_THRESHOLD is {DEFAULT_COVERAGE_THRESHOLD}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
