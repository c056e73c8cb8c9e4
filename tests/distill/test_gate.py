"""The evaluation gate's arithmetic: agreement scoring, threshold calibration, the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.config import GateConfig
from distill.gate import (
    AgreementScorer,
    HeldOut,
    Outcome,
    acceptance,
    calibrate,
    judge,
    read_split,
)
from specialists.errors import DatasetError


def outcome(confidence: float, agrees: bool, *, valid: bool = True) -> Outcome:
    return Outcome(confidence, valid, float(agrees), agrees, tokens=10)


# Confidence 0.9+ always right, 0.6-0.8 right half the time, below that wrong.
VAL = [
    *(outcome(0.9 + i / 100, True) for i in range(10)),
    *(outcome(0.6 + i / 100, i % 2 == 0) for i in range(10)),
    *(outcome(0.2 + i / 100, False) for i in range(5)),
    outcome(0.99, False, valid=False),  # confident but malformed: never accepted
]


def test_the_threshold_is_the_lowest_that_reaches_the_target_precision() -> None:
    threshold = calibrate(VAL, target=0.95, min_accepted=5)
    # Halfway between the lowest answer kept (0.90) and the highest valid one left out (0.69).
    assert threshold == pytest.approx((0.9 + 0.69) / 2)
    accepted = acceptance(VAL, threshold)
    assert (accepted.accepted, accepted.precision) == (10, 1.0)
    assert accepted.coverage == pytest.approx(10 / 26)
    # A looser target keeps more traffic from the lead, at a lower threshold.
    loose = calibrate(VAL, target=0.7, min_accepted=5)
    assert loose is not None and loose < 0.9
    assert acceptance(VAL, loose).precision >= 0.7


def test_with_nothing_below_the_threshold_is_the_lowest_confidence_seen() -> None:
    assert calibrate([outcome(0.97, True), outcome(0.99, True)], 0.95, 1) == 0.97


def test_no_threshold_when_too_few_answers_would_be_accepted() -> None:
    assert calibrate(VAL, target=0.95, min_accepted=11) is None
    assert calibrate([outcome(0.5, False)] * 20, target=0.95, min_accepted=1) is None
    nothing = acceptance(VAL, None)
    assert (nothing.accepted, nothing.coverage, nothing.precision) == (0, 0.0, None)


def judged(test: list[Outcome], current: list[Outcome], **settings: float) -> tuple[bool, str]:
    verdict = judge(
        val=VAL,
        test=test,
        current_test=current,
        current_threshold=0.5,
        gate=GateConfig(**{"min_accepted": 5, **settings}),
        scorer=AgreementScorer("nonempty", 0.5),
        lead_cost_usd=0.002,
        slm_cost_per_token=1e-8,
    )
    assert verdict.metrics["gate"] == {"passed": verdict.passed, "reasons": list(verdict.reasons)}
    return verdict.passed, " ".join(verdict.reasons)


def test_the_gate_passes_a_precise_candidate_that_beats_the_current_version() -> None:
    test = [outcome(0.95, True)] * 8 + [outcome(0.3, False)] * 2
    current = [outcome(0.9, False)] * 10
    passed, reasons = judged(test, current)
    assert passed and reasons == ""
    verdict = judge(
        val=VAL,
        test=test,
        current_test=current,
        current_threshold=0.5,
        gate=GateConfig(min_accepted=5),
        scorer=AgreementScorer("nonempty", 0.5),
        lead_cost_usd=0.002,
        slm_cost_per_token=1e-8,
    )
    figures = verdict.metrics["test"]
    assert figures["candidate"]["coverage"] == pytest.approx(0.8)
    assert figures["candidate"]["accuracy"] == pytest.approx(0.8)
    assert figures["current"]["accuracy"] == 0.0
    # 80 % stays with the specialist: the cascade costs the SLM tokens plus 20 % of the lead.
    assert figures["cascade_cost_usd"] == pytest.approx(10 * 1e-8 + 0.2 * 0.002)
    assert figures["savings"] == pytest.approx(1 - figures["cascade_cost_usd"] / 0.002)


def test_the_gate_fails_when_test_precision_falls_short() -> None:
    test = [outcome(0.95, True)] * 6 + [outcome(0.95, False)] * 4
    passed, reasons = judged(test, [outcome(0.2, False)] * 10)
    assert not passed and "test precision 60.0% is below 95%" in reasons
    passed, _ = judged(test, [outcome(0.2, False)] * 10, precision_tolerance=0.4)
    assert passed


def test_the_gate_fails_a_candidate_worse_than_the_current_version() -> None:
    test = [outcome(0.95, True)] * 5 + [outcome(0.1, False)] * 5
    passed, reasons = judged(test, [outcome(0.9, True)] * 10)
    assert not passed and "the current version on 100.0%" in reasons


def test_the_gate_fails_without_a_calibrated_threshold() -> None:
    passed, reasons = judged([outcome(0.95, True)] * 10, [], min_accepted=100)
    assert not passed and "no confidence threshold reaches 95%" in reasons


def test_agreement_is_numeric_for_math_and_rouge_for_text() -> None:
    numbers = AgreementScorer("numeric_answer", 0.5)
    assert numbers.score("So the total is $1,200.", "Answer: 1200") == 1.0
    assert numbers.score("The answer is 12.", "Answer: 1200") == 0.0
    assert numbers.score("no idea", "Answer: 1200") == 0.0
    text = AgreementScorer("email_text", 0.5)
    assert text.name == "rouge_l"
    assert text.score("Tuesday to Sunday, 10am to 6pm.", "Tuesday to Sunday, 10am to 6pm.") == 1.0
    assert text.agrees(text.score("Tuesday to Sunday, 10am to 6pm", "Tuesday to Sunday 10am-6pm"))
    assert not text.agrees(text.score("Closed.", "Tuesday to Sunday, 10am to 6pm."))


def write_split(directory: Path, name: str, lines: list[object]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.jsonl").write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )


def example(question: str, answer: str) -> dict[str, object]:
    return {
        "messages": [
            {"role": "system", "content": "You answer museum questions."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        "run_id": f"run-{question}",
        "source": "lead",
    }


def test_held_out_splits_are_read_without_the_system_prompt(tmp_path: Path) -> None:
    write_split(tmp_path, "val", [example("Open Monday?", "No.")])
    write_split(
        tmp_path, "test", [example("Open Sunday?", "Yes."), example("Open Friday?", "Yes.")]
    )
    held_out = HeldOut.read(tmp_path)
    assert held_out.size == 3
    (item,) = held_out.val
    assert item.messages == ({"role": "user", "content": "Open Monday?"},)
    assert (item.reference, item.run_id) == ("No.", "run-Open Monday?")


def test_an_empty_or_broken_held_out_split_is_a_clear_error(tmp_path: Path) -> None:
    write_split(tmp_path, "val", [example("Open Monday?", "No.")])
    write_split(tmp_path, "test", [])
    with pytest.raises(DatasetError, match="1 validation and 0 test examples"):
        HeldOut.read(tmp_path)
    write_split(tmp_path, "test", ['{"messages": [{"role": "user", "content": "hi"}]}'])
    with pytest.raises(DatasetError, match=r"test.jsonl:1: not a chat example"):
        read_split(tmp_path, "test")
    with pytest.raises(DatasetError, match="missing"):
        HeldOut.read(tmp_path / "nowhere")
