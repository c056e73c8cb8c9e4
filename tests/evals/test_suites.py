"""The suites on the real data: whole splits load, reference answers score full marks, broken
answers fail, and the judge-graded suites ask a real (scripted) OpenAI-compatible judge."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from evals.data import DataSource
from evals.errors import DataUnavailableError, JudgeError, UnknownSuiteError
from evals.judge import LiteLLMJudge, OpenAIJudge, build_judge
from evals.samples import NO_ANSWER, Prediction, Sample, Score
from evals.scorers.judging import JudgePrompt, judge_messages
from evals.suites import SUITE_NAMES, Suite, get_suite
from evals.suites.routing import DOMAINS, PER_DOMAIN, split_of
from orchestrator.testing import ScriptedLead, Step, failure, reply

EXPECTED_SIZES = {
    "gsm8k": 1319,
    "math500": 500,
    "humaneval": 164,
    "mbpp": 500,
    "email": 11 + 1960,
    "mt_bench": 80,
    "routing": PER_DOMAIN * len(DOMAINS),
}


@pytest.fixture(scope="module")
def source(data_dir: Path) -> DataSource:
    return DataSource(data_dir)


def load(name: str, source: DataSource) -> tuple[Suite, list[Sample]]:
    suite = get_suite(name)
    return suite, list(suite.load(source))


async def score_all(
    suite: Suite, samples: list[Sample], answers: list[str | None], **kwargs: object
) -> list[Score]:
    """Scores concurrently, as the harness does (sandbox runs go to worker threads)."""
    return list(
        await asyncio.gather(
            *(
                suite.score(s, Prediction(a), **kwargs)
                for s, a in zip(samples, answers, strict=True)
            )
        )
    )


@asynccontextmanager
async def scripted_judge(*steps: Step) -> AsyncIterator[tuple[ScriptedLead, OpenAIJudge]]:
    with ScriptedLead(steps) as server:
        judge = OpenAIJudge(
            "judge-model", base_url=server.base_url, api_key="sk-secret-123", max_retries=0
        )
        try:
            yield server, judge
        finally:
            await judge.aclose()


# --- Loading ----------------------------------------------------------------------------------


def test_suite_names_and_an_unknown_name() -> None:
    assert tuple(EXPECTED_SIZES) == SUITE_NAMES
    with pytest.raises(UnknownSuiteError, match=r"'gsm9k'; suites: gsm8k, math500, humaneval"):
        get_suite("gsm9k")


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_each_suite_loads_its_whole_split_in_a_stable_order(name: str, source: DataSource) -> None:
    suite, samples = load(name, source)
    assert suite.name == name and len(samples) == EXPECTED_SIZES[name]
    assert [s.id for s in samples] == [s.id for s in get_suite(name).load(source)]
    assert len({s.id for s in samples}) == len(samples)
    for sample in samples:
        assert sample.suite == name and sample.id.startswith(f"{name}:")
        assert [m["role"] for m in sample.messages] == ["user"] and sample.prompt.strip()
        assert sample.domain in {"math", "code", "email", None}
        json.dumps([sample.reference, sample.metadata])  # the harness may store them


def test_a_missing_data_set_says_where_it_was_looked_for_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(
        DataUnavailableError, match=r"gsm8k/test\.jsonl does not exist.*UNDERSTUDY_DATA_DIR"
    ):
        DataSource(tmp_path).rows("gsm8k")
    with pytest.raises(DataUnavailableError, match="not published on the Hugging Face Hub.*AESLC"):
        DataSource(None).rows("aeslc")


# --- Math ---------------------------------------------------------------------------------------


async def test_gsm8k_reference_solutions_score_100_percent(source: DataSource) -> None:
    suite, samples = load("gsm8k", source)
    scores = await score_all(suite, samples, [s.metadata["solution"] for s in samples])
    assert [s.value for s in scores] == [1.0] * 1319
    assert (
        samples[0].prompt.startswith("Janet’s ducks lay 16 eggs") and samples[0].reference == "18"
    )


async def test_gsm8k_reads_a_chatty_answer_and_rejects_a_wrong_one(source: DataSource) -> None:
    suite, samples = load("gsm8k", source)
    janet = samples[0]
    chatty = "Janet has 16 - 3 - 4 = 9 eggs left.\nAt $2 each: 9 * 2 = 18.\n\n**Final answer: $18**"
    assert (await suite.score(janet, Prediction(chatty))).value == 1.0
    assert (await suite.score(janet, Prediction("She makes $16 a day."))).value == 0.0
    assert await suite.score(janet, Prediction(None)) == NO_ANSWER


async def test_math500_reference_solutions_are_equivalent_to_their_answers(
    source: DataSource,
) -> None:
    suite, samples = load("math500", source)
    scores = await score_all(suite, samples, [s.metadata["solution"] for s in samples])
    assert [s.id for s, score in zip(samples, scores, strict=True) if score.value != 1.0] == []
    # Another problem's solution is (almost always) wrong here.
    shifted = await score_all(suite, samples[:50], [s.metadata["solution"] for s in samples[1:51]])
    assert sum(score.value for score in shifted) <= 2


# --- Code ---------------------------------------------------------------------------------------


async def test_humaneval_canonical_solutions_pass_all_164(source: DataSource) -> None:
    suite, samples = load("humaneval", source)
    assert samples[0].prompt.startswith("Complete this Python function:\n\n```python\nfrom typing")
    scores = await score_all(suite, samples, [s.metadata["canonical_solution"] for s in samples])
    assert [s.id for s, score in zip(samples, scores, strict=True) if score.value != 1.0] == []


async def test_humaneval_broken_solutions_fail(source: DataSource) -> None:
    suite, samples = load("humaneval", source)
    close_elements = samples[0]
    inverted = close_elements.metadata["canonical_solution"].replace("return True", "return 1 > 2")
    broken = await suite.score(close_elements, Prediction(inverted))
    assert broken.value == 0.0 and broken.details["error"] == "AssertionError"
    syntax = await suite.score(
        close_elements, Prediction("```python\ndef has_close_elements(:\n```")
    )
    assert syntax.value == 0.0 and syntax.details["error"].startswith("SyntaxError")


async def test_mbpp_reference_code_passes_its_asserts(source: DataSource) -> None:
    suite, samples = load("mbpp", source)
    assert samples[0].id == "mbpp:test:11" and samples[-1].id == "mbpp:test:510"
    assert "Your code should pass these tests:\n\nassert remove_Occ(" in samples[0].prompt
    answers = [f"```python\n{s.metadata['code']}\n```" for s in samples]
    scores = await score_all(suite, samples, answers)
    assert [s.id for s, score in zip(samples, scores, strict=True) if score.value != 1.0] == []
    wrong = await suite.score(samples[0], Prediction("def remove_Occ(s, ch):\n    return s"))
    assert wrong.value == 0.0


# --- Email --------------------------------------------------------------------------------------


async def test_email_references_score_full_rouge_and_other_answers_less(source: DataSource) -> None:
    suite, samples = load("email", source)
    assert Counter(s.metadata["source"] for s in samples) == {"self_instruct": 11, "aeslc": 1960}
    drafts = [s for s in samples if s.metadata["source"] == "self_instruct"]
    for sample in drafts:
        assert (
            await suite.score(sample, Prediction(sample.reference["references"][0]))
        ).value == 1.0
    subject = next(s for s in samples if s.id == "email:aeslc:allen-p_inbox_29")
    assert subject.prompt.startswith("Write a subject line for this email:\n\nHi Phillip,")
    chatty = await suite.score(
        subject, Prediction("Here's a subject line:\n\n**Meeting confirmed**")
    )
    assert chatty.value == 1.0 and chatty.details["extracted"] == "Meeting confirmed"
    partial = await suite.score(
        subject, Prediction("Subject: Risk meeting confirmation for Tuesday")
    )
    assert 0.0 < partial.value < 1.0


async def test_email_with_a_judge_scores_its_rating(source: DataSource) -> None:
    suite, samples = load("email", source)
    sample = samples[0]
    async with scripted_judge(reply("Warm and complete. Rating: [[8]]")) as (server, judge):
        score = await suite.score(sample, Prediction("Hi all, dinner on Friday?"), judge=judge)
    assert score.value == pytest.approx(0.8)
    assert score.details["rating"] == 8.0 and score.details["judge_prompt"] == "single-v1"
    assert 0.0 <= score.details["rouge_l"] < 0.5  # kept alongside the rating
    sent = server.requests[0]
    assert sent["model"] == "judge-model" and sent["temperature"] == 0.0
    single = JudgePrompt.from_row(sample.reference["judge_prompt"])
    assert sent["messages"] == judge_messages(
        single, question=sample.prompt, answer="Hi all, dinner on Friday?"
    )


# --- MT-Bench -----------------------------------------------------------------------------------


async def test_mt_bench_needs_a_judge(source: DataSource) -> None:
    suite, samples = load("mt_bench", source)
    assert suite.needs_judge
    with pytest.raises(JudgeError, match="graded by an LLM judge"):
        await suite.score(samples[0], Prediction("An answer."))


async def test_mt_bench_math_is_judged_against_the_reference_answer(source: DataSource) -> None:
    suite, samples = load("mt_bench", source)
    assert Counter(s.metadata["category"] for s in samples) == dict.fromkeys(
        ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"],
        10,
    )
    math = next(s for s in samples if s.metadata["category"] == "math")
    writing = samples[0]
    async with scripted_judge(reply("Correct. Rating: [[8]]"), reply("Rating: [[3]]")) as (
        server,
        judge,
    ):
        math_score = await suite.score(math, Prediction("The area is 3."), judge=judge)
        writing_score = await suite.score(writing, Prediction("Aloha!"), judge=judge)
    assert math_score.value == pytest.approx(0.8) and writing_score.value == pytest.approx(0.3)
    assert math_score.details["judge_prompt"] == "single-math-v1"
    math_request = server.requests[0]["messages"][1]["content"]
    reference = math.reference["reference_answer"]
    assert reference and f"[The Start of Reference Answer]\n{reference}\n" in math_request
    assert "[The Start of Assistant's Answer]\nThe area is 3.\n" in math_request
    assert "Reference Answer" not in server.requests[1]["messages"][1]["content"]


async def test_mt_bench_without_a_rating_scores_zero_and_says_so(source: DataSource) -> None:
    suite, samples = load("mt_bench", source)
    async with scripted_judge(reply("A fine answer, I suppose.")) as (_, judge):
        score = await suite.score(samples[0], Prediction("Aloha!"), judge=judge)
    assert score.value == 0.0 and score.details["rating"] is None
    assert score.details["judgment"] == "A fine answer, I suppose."


async def test_a_failing_judge_raises_without_its_key(source: DataSource) -> None:
    suite, samples = load("mt_bench", source)
    async with scripted_judge(failure(500)) as (_, judge):
        with pytest.raises(JudgeError, match="HTTP 500") as error:
            await suite.score(samples[0], Prediction("Aloha!"), judge=judge)
    assert "sk-secret-123" not in str(error.value) and "sk-secret-123" not in repr(judge)


def test_build_judge_picks_the_client_like_the_lead_does() -> None:
    by_url = build_judge(model=None, base_url="http://127.0.0.1:9/v1", api_key="sk-x")
    assert isinstance(by_url, OpenAIJudge) and by_url.model == "default"
    assert isinstance(build_judge(model="openai/gpt-4o", api_key="sk-x"), LiteLLMJudge)
    assert "sk-x" not in repr(build_judge(model="openai/gpt-4o", api_key="sk-x"))
    with pytest.raises(JudgeError, match="no judge configured"):
        build_judge(model=None)


# --- Routing ------------------------------------------------------------------------------------


async def test_routing_is_balanced_and_scores_the_prerouter_decision(source: DataSource) -> None:
    suite, samples = load("routing", source)
    assert Counter(s.reference for s in samples) == dict.fromkeys(DOMAINS, PER_DOMAIN)
    assert all(s.domain == (None if s.reference == "none" else s.reference) for s in samples)
    assert {s.metadata["source"] for s in samples} >= {
        "gsm8k",
        "humaneval",
        "aeslc",
        "mmlu_bio_astro",
        "bench_coding",
        "self_instruct_seed",
    }
    # Only the held-out side: the learned pre-router trains on the other one.
    assert {split_of(s.prompt) for s in samples} == {"heldout"}
    math = next(s for s in samples if s.reference == "math")
    off_domain = next(s for s in samples if s.reference == "none")
    assert (await suite.score(math, Prediction("…", route="cascade:accepted:math"))).value == 1.0
    assert (await suite.score(math, Prediction("…", route="cascade:lead"))).value == 0.0
    assert (await suite.score(off_domain, Prediction("…", route="cascade:lead"))).value == 1.0
    assert (await suite.score(off_domain, Prediction("…", route="slm:email"))).value == 0.0


async def test_every_kind_of_judge_names_itself_and_closes() -> None:
    """`eval run` writes the judge's label into the report and closes it when done; a LiteLLM
    judge once lacked both and crashed the run at the end."""
    judges = [
        build_judge(model=None, base_url="http://127.0.0.1:9/v1", api_key="sk-x"),
        build_judge(model="openai/gpt-4o", api_key="sk-x"),
    ]
    labels = [judge.label for judge in judges]
    assert labels == ["default at http://127.0.0.1:9/v1", "openai/gpt-4o via LiteLLM"]
    for judge in judges:
        await judge.aclose()
