"""The learned pre-router's seed data: labelled requests from public sets and our own.

Sources, licences and counts (the ``train`` side of :func:`evals.suites.routing.split_of`, so
``understudy eval run --suite routing`` scores only prompts never trained on; counts with the
shared data of December 2026, per source capped at :data:`PER_SOURCE`):

=========  ==========================================================  ============  =====
label      source                                                      licence       count
=========  ==========================================================  ============  =====
math       GSM8K train split (not the suite's test split)              MIT           300
math       GSM8K test, MATH-500 (train side)                           MIT           300+246
math       MT-Bench / Vicuna-Bench "math" (train side)                 Apache-2.0    4
code       MBPP train split (task_id > 510, not the suite's)           CC BY 4.0     300
code       MBPP test, HumanEval (train side)                           CC BY / MIT   245+80
code       MT-Bench / Vicuna-Bench "coding", Self-Instruct code apps   Apache-2.0    10+11
email      Self-Instruct email tasks (train side)                      Apache-2.0    7
none       MT-Bench writing/roleplay/extraction/stem/humanities,       Apache-2.0    26+33
           Vicuna-Bench generic/knowledge/roleplay/common-sense/…
none       MMLU biology and astronomy                                  MIT           300
none       Self-Instruct user tasks (non email/code/math apps) and     Apache-2.0    96+79
           seed tasks (train side)
all        ``requests.json``: hand-written by this project             Apache-2.0    105
email      ``requests.json``: 12 invented emails, 6 requests about     Apache-2.0    72
           them (subject, reply, summary; instruction first or last)
all        each catalog specialist's description and examples          —             4/spec.
=========  ==========================================================  ============  =====

AESLC (CC BY-NC-SA, evaluation only) is never trained on. No arena-style set of real chat
prompts is used for training or tuning: those are kept to check generalisation.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from evals.data import DataSource
from evals.suites.code import MBPP_TEST_IDS
from evals.suites.routing import DOMAINS, labelled_sources
from orchestrator.prerouter_model import NONE
from specialists.catalog import Catalog

PER_SOURCE = 300
"""Most prompts one source gives: the large benchmarks must not drown the real requests."""

EVAL_ONLY_SOURCES = frozenset({"aeslc"})
"""Sources whose licence allows evaluation only."""

REQUESTS_FILE = Path(__file__).with_name("requests.json")


@dataclass(frozen=True, slots=True)
class Labelled:
    """One training example: a prompt and the class it belongs to."""

    prompt: str
    label: str
    """A specialist's name or ``none``."""
    source: str


def _capped(prompts: list[str], rng: random.Random) -> list[str]:
    return prompts if len(prompts) <= PER_SOURCE else rng.sample(prompts, PER_SOURCE)


def catalog_examples(catalog: Catalog) -> list[Labelled]:
    """Each specialist's description and examples; how a specialist made by distillation
    (its proposal's examples) enters the classifier before any transcript names it."""
    return [
        Labelled(text, specialist.name, "catalog")
        for specialist in catalog
        for text in (specialist.description, *specialist.examples)
    ]


def hand_written() -> list[Labelled]:
    """The project's own requests (``requests.json``); the suite never samples them."""
    data = json.loads(REQUESTS_FILE.read_text(encoding="utf-8"))
    requests = [
        Labelled(prompt, label, "hand_written") for label in DOMAINS for prompt in data[label]
    ]
    wrapped = [
        Labelled(template.format(body=body), "email", "hand_written_email_bodies")
        for body in data["email_bodies"]
        for template in data["email_templates"]
    ]
    return requests + wrapped


def seed_examples(source: DataSource, catalog: Catalog, *, seed: int = 0) -> list[Labelled]:
    """The whole seed set for ``catalog``: public sets (train side), our requests, the catalog.

    Domains the catalog does not serve are labelled ``none`` (a catalog without ``email``
    must learn that email requests go to the lead).
    """
    rng = random.Random(seed)
    served = set(catalog.names)
    examples: list[Labelled] = []
    extra = {
        "math": {"gsm8k_train": [row["question"] for row in source.rows("gsm8k_train")]},
        "code": {
            "mbpp_train": [
                row["text"]
                for row in source.rows("mbpp")
                if row["task_id"] not in MBPP_TEST_IDS and row["task_id"] > max(MBPP_TEST_IDS)
            ]
        },
    }
    for domain in DOMAINS:
        label = domain if domain in served or domain == NONE else NONE
        sources = {**labelled_sources(source, domain, "train"), **extra.get(domain, {})}
        for name, prompts in sources.items():
            if name in EVAL_ONLY_SOURCES:
                continue
            examples += [Labelled(p, label, name) for p in _capped(prompts, rng)]
    examples += [replace_label(example, served) for example in hand_written()]
    return examples + catalog_examples(catalog)


def replace_label(example: Labelled, served: set[str]) -> Labelled:
    """``example`` relabelled ``none`` when its specialist is not served."""
    if example.label in served or example.label == NONE:
        return example
    return Labelled(example.prompt, NONE, example.source)
