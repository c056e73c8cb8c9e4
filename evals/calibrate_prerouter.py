"""Calibrate the pre-router's "none" threshold on real prompts, and say how well it routes.

Run it from the repository root::

    python -m evals.calibrate_prerouter --data-dir ../shared/data --n 200

It labels prompts from the shared evaluation data with the specialist that should take them (or
``none``), routes them all with the real MiniLM embedder and the default catalog, and prints the
accuracy per domain, a threshold sweep, and the threshold that maximises macro accuracy (the mean
of the four per-domain accuracies, so the large domains do not drown the small ones).

Where the labels come from, and why:

* ``math``: GSM8K test questions and MATH-500 problems, half each.
* ``code``: MBPP test-split task texts (task_id 11-510) and raw HumanEval prompts (a signature and
  docstring, no instruction: the hardest form a caller sends).
* ``email``: the Self-Instruct email tasks that ask to draft, rewrite, reply to, summarise or
  title an email, the MT-Bench and Vicuna-Bench "write an email" prompts (listed below; tone
  analysis, spam/promotion classification and the non-email matches of the subset's regex are left
  out as ambiguous), and AESLC emails wrapped in one of four requests (subject line, one-sentence
  summary, reply) with the request before *or after* the body, so the head-and-tail clipping of
  long prompts is exercised.
* ``none``: prompts no specialist should take: MT-Bench writing, roleplay, extraction, STEM and
  humanities; Vicuna-Bench generic, knowledge, roleplay, common-sense, counterfactual and writing;
  MMLU biology and astronomy questions with their choices; and Self-Instruct user tasks from apps
  that are not about email, code or math. Prompts that are really email, letter or math requests
  are left out (see the ``*_EXCLUDED`` sets), and so are MT-Bench reasoning and Vicuna "fermi"
  estimates, which a math specialist could fairly claim.

The data is read in place from ``--data-dir`` (default ``UNDERSTUDY_DATA_DIR``), never copied.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.prerouter import (
    DEFAULT_THRESHOLD,
    Embedder,
    MiniLMEmbedder,
    PreRouter,
    RouteDecision,
    clip_prompt,
)
from specialists.catalog import Catalog

DOMAINS: tuple[str, ...] = ("math", "code", "email", "none")
"""Labels in report order; ``none`` means no specialist should take the prompt."""

EMAIL_TASK_IDS = frozenset(
    {
        "user_oriented_task_5",  # invite friends to dinner
        "user_oriented_task_6",  # rewrite an email more professionally
        "user_oriented_task_52",  # email signature
        "user_oriented_task_57",  # rejection letter (Gmail app)
        "user_oriented_task_73",  # confirmation email
        "user_oriented_task_74",  # salary negotiation email
        "user_oriented_task_75",  # event reminder email
        "seed_task_4",  # subject line for an email
        "seed_task_18",  # reply and refuse an invitation
        "seed_task_100",  # decline a job offer by email
        "seed_task_137",  # summarise an email in one sentence
    }
)
"""Self-Instruct email-subset tasks that are the email specialist's job (draft, rewrite, reply,
summarise, subject line). The rest of the subset is tone analysis, classification, or matched the
subset's regex without being about email."""

MT_BENCH_EMAIL = frozenset({82, 84})
"""MT-Bench writing prompts that ask for an email."""
MT_BENCH_EXCLUDED = frozenset({97, 99})
"""MT-Bench roleplay prompts that are math in disguise (math teacher, a proof as a poem)."""
MT_BENCH_NONE_CATEGORIES = frozenset({"writing", "roleplay", "extraction", "stem", "humanities"})

VICUNA_EMAIL = frozenset({71, 74, 75})
"""Vicuna-Bench writing prompts that ask for an email."""
VICUNA_EXCLUDED = frozenset({72, 73})
"""Resignation and recommendation letters: close enough to email to be ambiguous."""
VICUNA_NONE_CATEGORIES = frozenset(
    {"generic", "knowledge", "roleplay", "common-sense", "counterfactual", "writing"}
)

MMLU_NONE_SUBJECTS = frozenset({"high_school_biology", "college_biology", "astronomy"})
"""MMLU-STEM subjects with no arithmetic or code in them."""

SELF_INSTRUCT_NONE_EXCLUDED_APPS = frozenset(
    {
        "Gmail",
        "Grammarly",  # rewriting text is close to rewriting an email
        "StackOverflow",
        "Leetcode",
        "GeeksforGeeks",
        "Github",
        "w3schools",
        "Markdown",
        "Overleaf",
        "MS Excel",
        "Google Sheet",
        "Google Sheets",
        "Wolfram alpha",
        "(Wolfram alpha)?",
        "Sudoku",
    }
)
"""Self-Instruct apps whose tasks are email, code or math; the others make ``none`` prompts."""

AESLC_TEMPLATES: tuple[str, ...] = (
    "Write a subject line for this email:\n\n{body}",
    "{body}\n\nSuggest a short subject line for the email above.",
    "Summarise this email in one sentence:\n\n{body}",
    "Here is an email I received:\n\n{body}\n\nDraft a short, polite reply.",
)
"""Requests built around an AESLC email body, instruction first or last."""


@dataclass(frozen=True, slots=True)
class LabelledPrompt:
    """One prompt with the specialist that should take it."""

    prompt: str
    label: str
    """A specialist name, or ``"none"``."""
    source: str
    """Data set it came from, for per-source accuracy."""


def _jsonl(path: Path) -> Iterable[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _with_input(instruction: str, text: str) -> str:
    return f"{instruction}\n\n{text}" if text.strip() else instruction


def _multiple_choice(question: str, choices: Sequence[str]) -> str:
    lines = [f"{letter}. {text}" for letter, text in zip("ABCD", choices, strict=False)]
    return "\n".join([question.strip(), *lines])


def math_sources(data_dir: Path) -> dict[str, list[str]]:
    """GSM8K test questions and MATH-500 problems."""
    return {
        "gsm8k": [row["question"] for row in _jsonl(data_dir / "gsm8k" / "test.jsonl")],
        "math500": [row["problem"] for row in _jsonl(data_dir / "math500" / "test.jsonl")],
    }


def code_sources(data_dir: Path) -> dict[str, list[str]]:
    """MBPP test-split task texts and raw HumanEval prompts."""
    mbpp = [
        row["text"]
        for row in _jsonl(data_dir / "mbpp" / "mbpp.jsonl")
        if 11 <= row["task_id"] <= 510
    ]
    humaneval = [row["prompt"] for row in _jsonl(data_dir / "humaneval" / "HumanEval.jsonl.gz")]
    return {"mbpp": mbpp, "humaneval": humaneval}


def email_sources(data_dir: Path) -> dict[str, list[str]]:
    """Hand-picked email tasks (Self-Instruct, MT-Bench, Vicuna) and AESLC-built requests."""
    tasks = [
        _with_input(row["instruction"], row["input"])
        for row in _jsonl(data_dir / "selfinstruct_email" / "email_subset.jsonl")
        if row["task_id"] in EMAIL_TASK_IDS
    ]
    mt_bench = data_dir / "mt_bench"
    tasks += [
        row["turns"][0]
        for row in _jsonl(mt_bench / "question.jsonl")
        if row["question_id"] in MT_BENCH_EMAIL
    ]
    tasks += [
        row["turns"][0]
        for row in _jsonl(mt_bench / "vicuna_bench_question.jsonl")
        if row["question_id"] in VICUNA_EMAIL
    ]
    aeslc = [
        AESLC_TEMPLATES[index % len(AESLC_TEMPLATES)].format(body=row["email_body"].strip())
        for index, row in enumerate(_jsonl(data_dir / "aeslc_email" / "aeslc_dev.jsonl"))
    ]
    return {"email_tasks": tasks, "aeslc": aeslc}


def none_sources(data_dir: Path) -> dict[str, list[str]]:
    """Prompts that fit no specialist: open-ended writing, roleplay, knowledge, science."""
    mt_bench = [
        row["turns"][0]
        for row in _jsonl(data_dir / "mt_bench" / "question.jsonl")
        if row["category"] in MT_BENCH_NONE_CATEGORIES
        and row["question_id"] not in MT_BENCH_EMAIL | MT_BENCH_EXCLUDED
    ]
    vicuna = [
        row["turns"][0]
        for row in _jsonl(data_dir / "mt_bench" / "vicuna_bench_question.jsonl")
        if row["category"] in VICUNA_NONE_CATEGORIES
        and row["question_id"] not in VICUNA_EMAIL | VICUNA_EXCLUDED
    ]
    mmlu = [
        _multiple_choice(row["question"], row["choices"])
        for row in _jsonl(data_dir / "mmlu_stem" / "test.jsonl")
        if row["type"] in MMLU_NONE_SUBJECTS
    ]
    self_instruct = [
        _with_input(row["instruction"], (row.get("instances") or [{}])[0].get("input", ""))
        for row in _jsonl(data_dir / "selfinstruct_email" / "user_oriented_instructions.jsonl")
        if row["motivation_app"] not in SELF_INSTRUCT_NONE_EXCLUDED_APPS
    ]
    self_instruct = [text for text in self_instruct if "mail" not in text.lower()]
    return {
        "mt_bench": mt_bench,
        "vicuna": vicuna,
        "mmlu_bio_astro": mmlu,
        "self_instruct": self_instruct,
    }


SOURCES = {"math": math_sources, "code": code_sources, "email": email_sources, "none": none_sources}


def _sample(sources: dict[str, list[str]], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` prompts spread evenly over the sources; a small source's shortfall goes to the rest."""
    picked: list[tuple[str, str]] = []
    ordered = sorted(sources.items(), key=lambda item: len(item[1]))  # smallest first
    for position, (name, prompts) in enumerate(ordered):
        quota = (n - len(picked)) // (len(ordered) - position)
        chosen = rng.sample(prompts, min(quota, len(prompts)))
        picked += [(name, prompt) for prompt in chosen]
    return picked


def load_labelled(
    data_dir: Path, n: int, *, seed: int = 0, domains: Sequence[str] = DOMAINS
) -> list[LabelledPrompt]:
    """Up to ``n`` labelled prompts per domain, sampled reproducibly with ``seed``."""
    rng = random.Random(seed)
    return [
        LabelledPrompt(prompt=prompt, label=domain, source=source)
        for domain in domains
        for source, prompt in _sample(SOURCES[domain](data_dir), n, rng)
    ]


class _MemoEmbedder:
    """Embeds each distinct text once, so the sweep and the scoring comparison reuse vectors."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            self._cache.update(zip(missing, self.inner.embed(missing), strict=True))
        return np.stack([self._cache[text] for text in texts])


@dataclass(frozen=True, slots=True)
class SweepRow:
    threshold: float
    accuracy: dict[str, float]
    """Per domain: share of its prompts routed to the right specialist (or to none)."""

    @property
    def macro(self) -> float:
        return float(np.mean(list(self.accuracy.values())))


def _accuracy(labels: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    return {
        domain: float(
            np.mean([p == d for d, p in zip(labels, predicted, strict=True) if d == domain])
        )
        for domain in DOMAINS
        if domain in labels
    }


def sweep(
    labels: Sequence[str], decisions: Sequence[RouteDecision], thresholds: Iterable[float]
) -> list[SweepRow]:
    """Accuracy per domain at each threshold, re-deciding from the recorded scores."""
    rows = []
    for threshold in thresholds:
        predicted = [d.best if d.best_score >= threshold else "none" for d in decisions]
        rows.append(SweepRow(round(threshold, 4), _accuracy(labels, predicted)))
    return rows


def choose_threshold(rows: Sequence[SweepRow]) -> SweepRow:
    """The row with the best macro accuracy averaged with its neighbours (prefers a plateau to a
    spike, so the choice survives a different sample); the lower threshold on a tie."""
    macros = np.array([row.macro for row in rows])
    smoothed = np.convolve(np.pad(macros, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    return rows[int(np.argmax(smoothed))]


def compare_scoring(
    router: PreRouter, embedder: Embedder, items: Sequence[LabelledPrompt]
) -> dict[str, tuple[float, float]]:
    """Best macro accuracy (and its threshold) of other ways to combine per-text similarities.

    Shows why the pre-router scores by prototype; reuses the memoised vectors.
    """
    texts, owners = [], []
    for index, specialist in enumerate(router.catalog):
        for text in (specialist.description, *specialist.examples):
            texts.append(text)
            owners.append(index)
    anchors = embedder.embed([clip_prompt(text) for text in texts])
    owner = np.asarray(owners)
    prompts = embedder.embed([clip_prompt(item.prompt) for item in items])
    similarity = prompts @ anchors.T
    per_specialist = [similarity[:, owner == i] for i in range(len(router.names))]

    def top(k: int) -> np.ndarray:
        return np.stack([np.sort(s, axis=1)[:, -k:].mean(axis=1) for s in per_specialist], 1)

    combinations = {
        "max over description and examples": top(1),
        "mean of top 2": top(2),
        "mean of top 3": top(3),
        "mean of all": np.stack([s.mean(axis=1) for s in per_specialist], 1),
        "description only": np.stack([s[:, 0] for s in per_specialist], 1),
        "prototype (used)": prompts @ router.prototypes().T,
    }
    labels = [item.label for item in items]
    thresholds = np.arange(0.0, 0.5, 0.01)
    results = {}
    for name, scores in combinations.items():
        best = [router.names[i] for i in scores.argmax(axis=1)]
        top_score = scores.max(axis=1)
        macros = []
        for threshold in thresholds:
            predicted = [
                b if s >= threshold else "none" for b, s in zip(best, top_score, strict=True)
            ]
            macros.append(np.mean(list(_accuracy(labels, predicted).values())))
        i = int(np.argmax(macros))
        results[name] = (float(macros[i]), float(thresholds[i]))
    return results


def _default_data_dir() -> Path | None:
    from serving.settings import get_settings

    configured = get_settings().data_dir
    fallback = Path(__file__).resolve().parents[2] / "shared" / "data"
    return configured or (fallback if fallback.is_dir() else None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Calibrate the pre-router's 'none' threshold on the shared evaluation data.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="evaluation data (default: UNDERSTUDY_DATA_DIR, else ../shared/data)",
    )
    parser.add_argument("--n", type=int, default=200, help="prompts per domain (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument(
        "--model", default=None, help="embedding model directory or Hub id (default: bundled)"
    )
    parser.add_argument(
        "--compare-scoring",
        action="store_true",
        help="also report other ways to combine description and example similarities",
    )
    args = parser.parse_args(argv)
    data_dir = args.data_dir or _default_data_dir()
    if data_dir is None or not data_dir.is_dir():
        parser.error(
            f"no evaluation data at {data_dir}; pass --data-dir or set UNDERSTUDY_DATA_DIR"
        )

    items = load_labelled(data_dir, args.n, seed=args.seed)
    embedder = _MemoEmbedder(MiniLMEmbedder(args.model))
    router = PreRouter(Catalog.default(), embedder)
    print(f"{len(items)} prompts from {data_dir} (seed {args.seed}); catalog {router.names}")
    decisions = router.route_many([item.prompt for item in items])
    labels = [item.label for item in items]

    rows = sweep(labels, decisions, np.arange(0.05, 0.351, 0.01))
    chosen = choose_threshold(rows)
    current = sweep(labels, decisions, [DEFAULT_THRESHOLD])[0]
    print("\nthreshold sweep (accuracy per domain; macro = their mean)")
    print(f"{'threshold':>9}  " + "  ".join(f"{d:>6}" for d in DOMAINS) + "   macro")
    for row in rows:
        mark = "  ← chosen" if row is chosen else ""
        cells = "  ".join(f"{row.accuracy[d]:6.3f}" for d in DOMAINS)
        print(f"{row.threshold:9.2f}  {cells}  {row.macro:6.3f}{mark}")

    predicted = [d.best if d.best_score >= chosen.threshold else "none" for d in decisions]
    print(f"\nat threshold {chosen.threshold:.2f}, by source (routed to → count)")
    for source in dict.fromkeys(item.source for item in items):
        picks = [p for item, p in zip(items, predicted, strict=True) if item.source == source]
        label = next(item.label for item in items if item.source == source)
        counts = ", ".join(f"{name} {picks.count(name)}" for name in [*router.names, "none"])
        correct = picks.count(label) / len(picks)
        print(f"  {source:15} ({label:5}) n={len(picks):4}  correct {correct:6.3f}   {counts}")

    if args.compare_scoring:
        print("\nscoring comparison (best macro accuracy @ its threshold)")
        for name, (macro, threshold) in compare_scoring(router, embedder, items).items():
            print(f"  {name:34} {macro:.3f} @ {threshold:.2f}")

    print(
        f"\nDEFAULT_THRESHOLD now {DEFAULT_THRESHOLD:.2f}: macro {current.macro:.3f} "
        + " ".join(f"{d} {current.accuracy[d]:.3f}" for d in DOMAINS)
    )
    print(
        f"chosen threshold {chosen.threshold:.2f}: macro {chosen.macro:.3f} "
        + " ".join(f"{d} {chosen.accuracy[d]:.3f}" for d in DOMAINS)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
