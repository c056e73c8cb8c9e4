"""The routing suite: mixed-domain prompts labelled with the specialist that should take them.

It scores the pre-router's decision (``Prediction.route``; see :mod:`evals.scorers.routing`), and
``python -m evals.calibrate_prerouter`` calibrates the pre-router's threshold on the same prompts.

Where the labels come from, and why:

* ``math``: GSM8K test questions and MATH-500 problems; MT-Bench and Vicuna-Bench "math" questions
  (real users' wording).
* ``code``: MBPP test-split task texts (task_id 11-510) and raw HumanEval prompts (a signature and
  docstring, no instruction: the hardest form a caller sends); MT-Bench and Vicuna-Bench "coding"
  questions and the Self-Instruct user tasks of code apps (StackOverflow, Leetcode,
  GeeksforGeeks, Github, w3schools).
* ``email``: the Self-Instruct email tasks of the email suite, the MT-Bench and Vicuna-Bench
  "write an email" prompts (listed below; tone analysis, spam/promotion classification and the
  non-email matches of the subset's regex are left out as ambiguous), and AESLC emails wrapped in
  one of four requests (subject line, one-sentence summary, reply) with the request before *or
  after* the body, so the head-and-tail clipping of long prompts is exercised.
* ``none``: prompts no specialist should take: MT-Bench writing, roleplay, extraction, STEM and
  humanities; Vicuna-Bench generic, knowledge, roleplay, common-sense, counterfactual and writing;
  MMLU biology and astronomy questions with their choices; Self-Instruct user tasks from apps
  that are not about email, code or math, and Self-Instruct seed tasks that do not mention
  either (:data:`SEED_TASK_SPECIALIST_WORDS`). Prompts that are really email, letter or math
  requests are left out (see the ``*_EXCLUDED`` sets), and so are MT-Bench reasoning and
  Vicuna "fermi" estimates, which a math specialist could fairly claim.

The suite is balanced: 200 prompts per domain (seed 0), spread evenly over each domain's sources,
so a random subset of it still weighs the domains alike.

Every prompt falls on one side of a fixed split (:func:`split_of`, a hash of its text): the suite
samples only the ``heldout`` side, and the learned pre-router trains only on the ``train`` side
(``distill/prerouter/seed.py``), so the suite's figures are on prompts no router learned from.
AESLC (CC BY-NC-SA, evaluation only) is never trained on, on either side.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

from evals.data import DataSource
from evals.judge import Judge
from evals.samples import Prediction, Sample, Score, user_message
from evals.scorers.routing import NONE, score_route
from evals.suites.code import MBPP_TEST_IDS
from evals.suites.email import email_task_rows, with_input

DOMAINS: tuple[str, ...] = ("math", "code", "email", NONE)
"""Labels in report order; ``none`` means no specialist should take the prompt."""

PER_DOMAIN = 200
SEED = 0
"""The suite's own sample: the one the pre-router's threshold was calibrated on."""

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

SELF_INSTRUCT_CODE_APPS = frozenset(
    {"StackOverflow", "Leetcode", "GeeksforGeeks", "Github", "w3schools"}
)
"""Self-Instruct apps whose tasks are programming requests."""

SEED_TASK_SPECIALIST_WORDS = re.compile(
    r"code|program|python|function|sql|algorithm|equation|calculat|math|number|sum of|"
    r"e-?mail|letter",
    re.IGNORECASE,
)
"""Self-Instruct seed tasks mentioning any of these are left out of ``none`` as ambiguous."""

Split = Literal["train", "heldout"]

HELD_OUT_SHARE = 0.5
"""Share of every source's prompts on the ``heldout`` side."""


def split_of(prompt: str) -> Split:
    """The side of the train/held-out split ``prompt`` falls on: a hash of its text, so the
    same prompt is on the same side whichever source or sample it comes through."""
    value = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big") / 2**32
    return "heldout" if value < HELD_OUT_SHARE else "train"


AESLC_TEMPLATES: tuple[str, ...] = (
    "Write a subject line for this email:\n\n{body}",
    "{body}\n\nSuggest a short subject line for the email above.",
    "Summarise this email in one sentence:\n\n{body}",
    "Here is an email I received:\n\n{body}\n\nDraft a short, polite reply.",
)
"""Requests built around an AESLC email body, instruction first or last."""


def _multiple_choice(question: str, choices: Sequence[str]) -> str:
    lines = [f"{letter}. {text}" for letter, text in zip("ABCD", choices, strict=False)]
    return "\n".join([question.strip(), *lines])


def _bench_category(source: DataSource, category: str) -> list[str]:
    """First turns of MT-Bench and Vicuna-Bench questions of ``category``."""
    return [
        row["turns"][0]
        for dataset in ("mt_bench", "vicuna_bench")
        for row in source.rows(dataset)
        if row["category"] == category
    ]


def _task_text(row: dict[str, object]) -> str:
    instances = row.get("instances") or [{}]
    assert isinstance(instances, list)
    return with_input(str(row["instruction"]), instances[0].get("input", ""))


def math_sources(source: DataSource) -> dict[str, list[str]]:
    """GSM8K test questions, MATH-500 problems and the benches' math questions."""
    return {
        "gsm8k": [row["question"] for row in source.rows("gsm8k")],
        "math500": [row["problem"] for row in source.rows("math500")],
        "bench_math": _bench_category(source, "math"),
    }


def code_sources(source: DataSource) -> dict[str, list[str]]:
    """MBPP test-split task texts, raw HumanEval prompts, the benches' coding questions and
    the Self-Instruct user tasks of code apps."""
    return {
        "mbpp": [row["text"] for row in source.rows("mbpp") if row["task_id"] in MBPP_TEST_IDS],
        "humaneval": [row["prompt"] for row in source.rows("humaneval")],
        "bench_coding": _bench_category(source, "coding"),
        "self_instruct_code": [
            _task_text(row)
            for row in source.rows("self_instruct_user")
            if row["motivation_app"] in SELF_INSTRUCT_CODE_APPS
        ],
    }


def email_sources(source: DataSource) -> dict[str, list[str]]:
    """Hand-picked email tasks (Self-Instruct, MT-Bench, Vicuna) and AESLC-built requests."""
    tasks = [
        with_input(row["instruction"], row["instances"][0]["input"])
        for row in email_task_rows(source)
    ]
    tasks += [
        row["turns"][0] for row in source.rows("mt_bench") if row["question_id"] in MT_BENCH_EMAIL
    ]
    tasks += [
        row["turns"][0] for row in source.rows("vicuna_bench") if row["question_id"] in VICUNA_EMAIL
    ]
    aeslc = [
        AESLC_TEMPLATES[index % len(AESLC_TEMPLATES)].format(body=row["email_body"].strip())
        for index, row in enumerate(source.rows("aeslc"))
    ]
    return {"email_tasks": tasks, "aeslc": aeslc}


def none_sources(source: DataSource) -> dict[str, list[str]]:
    """Prompts that fit no specialist: open-ended writing, roleplay, knowledge, science."""
    mt_bench = [
        row["turns"][0]
        for row in source.rows("mt_bench")
        if row["category"] in MT_BENCH_NONE_CATEGORIES
        and row["question_id"] not in MT_BENCH_EMAIL | MT_BENCH_EXCLUDED
    ]
    vicuna = [
        row["turns"][0]
        for row in source.rows("vicuna_bench")
        if row["category"] in VICUNA_NONE_CATEGORIES
        and row["question_id"] not in VICUNA_EMAIL | VICUNA_EXCLUDED
    ]
    mmlu = [
        _multiple_choice(row["question"], row["choices"])
        for row in source.rows("mmlu_stem")
        if row["type"] in MMLU_NONE_SUBJECTS
    ]
    self_instruct = [
        _task_text(row)
        for row in source.rows("self_instruct_user")
        if row["motivation_app"] not in SELF_INSTRUCT_NONE_EXCLUDED_APPS
    ]
    self_instruct = [text for text in self_instruct if "mail" not in text.lower()]
    seed_tasks = [
        text
        for text in map(_task_text, source.rows("self_instruct_seed"))
        if not SEED_TASK_SPECIALIST_WORDS.search(text)
    ]
    return {
        "mt_bench": mt_bench,
        "vicuna": vicuna,
        "mmlu_bio_astro": mmlu,
        "self_instruct": self_instruct,
        "self_instruct_seed": seed_tasks,
    }


SOURCES: dict[str, Callable[[DataSource], dict[str, list[str]]]] = {
    "math": math_sources,
    "code": code_sources,
    "email": email_sources,
    NONE: none_sources,
}


def _spread(
    sources: dict[str, list[str]], n: int, rng: random.Random
) -> list[tuple[str, int, str]]:
    """``n`` prompts spread evenly over the sources (a small source's shortfall goes to the
    rest), as (source, index in the source, prompt)."""
    picked: list[tuple[str, int, str]] = []
    ordered = sorted(sources.items(), key=lambda item: len(item[1]))  # smallest first
    for position, (name, prompts) in enumerate(ordered):
        quota = (n - len(picked)) // (len(ordered) - position)
        chosen = rng.sample(range(len(prompts)), min(quota, len(prompts)))
        picked += [(name, index, prompts[index]) for index in chosen]
    return picked


def labelled_sources(source: DataSource, domain: str, split: Split) -> dict[str, list[str]]:
    """``domain``'s prompts by source, only those on the ``split`` side."""
    return {
        name: [prompt for prompt in prompts if split_of(prompt) == split]
        for name, prompts in SOURCES[domain](source).items()
    }


def labelled_samples(
    source: DataSource,
    per_domain: int = PER_DOMAIN,
    *,
    seed: int = SEED,
    domains: Sequence[str] = DOMAINS,
    split: Split = "heldout",
) -> list[Sample]:
    """Up to ``per_domain`` labelled prompts per domain from the ``split`` side, sampled
    reproducibly with ``seed``."""
    rng = random.Random(seed)
    return [
        Sample(
            id=f"routing:{name}:{index}",
            suite=Routing.name,
            messages=(user_message(prompt),),
            reference=domain,
            domain=None if domain == NONE else domain,
            metadata={"source": name},
        )
        for domain in domains
        for name, index, prompt in _spread(labelled_sources(source, domain, split), per_domain, rng)
    ]


class Routing:
    """Does the pre-router send each prompt to the right specialist, or to none?"""

    name = "routing"
    needs_judge = False

    def load(self, source: DataSource) -> Iterator[Sample]:
        return iter(labelled_samples(source))

    async def score(
        self, sample: Sample, prediction: Prediction, *, judge: Judge | None = None
    ) -> Score:
        return score_route(prediction.route, sample.reference)
