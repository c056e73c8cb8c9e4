"""Building, saving and reading datasets: filters counted, splits by hash, nothing overwritten."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from distill.config import DatasetOptions
from distill.dataset import build_dataset, latest_dataset, load_dataset, save_dataset
from specialists.errors import ConfigurationError, DatasetError
from tests.distill.dataset.helpers import MATH, escalated, saved_dataset, sums

LONG_QUESTION = (
    "A bakery sells muffins in boxes of six and cookies in boxes of twelve; on Monday it sold "
    "fourteen boxes of muffins and nine boxes of cookies. How many items did it sell?"
)


def test_every_filter_is_applied_and_counted_on_the_card() -> None:
    good = sums(40)
    noisy = [
        escalated(100, "What is 1 plus 1?", "2", error="lead timed out"),
        escalated(101, "What is 2 plus 2?", "4", degraded=True),
        escalated(102, "What is 3 plus 3?", "7", feedback=(-1.0,)),
        escalated(103, "What is 4 plus 4?", "eight"),  # fails numeric_answer
        replace(good[0], run_id="dup-1"),  # the same request and answer again
        replace(
            good[1],
            run_id="dup-2",
            input_messages=({"role": "user", "content": "  WHAT is " + good[1].query[8:]},),
        ),  # same after normalisation (case, spaces)
        escalated(104, LONG_QUESTION, "156"),
        escalated(105, LONG_QUESTION.replace("Monday", "Monday,"), "156"),  # near-duplicate
        escalated(106, "Mail bob@example.com: what is 6 times 7?", "42"),
        escalated(107, "Hi", "1", specialists=("code",)),
    ]
    built = build_dataset(good + noisy, MATH)
    card = built.card
    assert card.transcripts_read == 50
    assert card.rejected == {
        "not_selected": 1,
        "failed": 2,
        "tool_conversation": 0,
        "negative_feedback": 1,
        "unverified": 0,
        "too_long": 0,
        "validator": 1,
        "duplicate": 2,
        "near_duplicate": 1,
    }
    assert card.examples == 42 == sum(len(split) for split in built.splits.values())
    assert card.pii_replaced == {"email": 1}
    assert card.sources == {"correction": 42}
    assert {name: split.examples for name, split in card.splits.items()} == {
        name: len(examples) for name, examples in built.splits.items()
    }
    everything = [e for split in built.splits.values() for e in split]
    assert "Mail [EMAIL]: what is 6 times 7?" in {e.user for e in everything}
    assert all(e.system == MATH.system_prompt for e in everything)


def test_the_same_transcripts_in_any_order_give_identical_files(tmp_path: Path) -> None:
    transcripts = sums(60)
    shuffled = transcripts[:]
    random.Random(3).shuffle(shuffled)
    first = saved_dataset(tmp_path / "a", transcripts)
    second = saved_dataset(tmp_path / "b", shuffled)
    for name in ("train.jsonl", "val.jsonl", "test.jsonl"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert first.name == second.name  # named by content hash


def test_similar_requests_stay_on_one_side_of_the_split() -> None:
    words = "apple bridge candle dragon engine forest garden harbor island jacket kettle lemon"
    rng = random.Random(7)
    transcripts = []
    for group in range(40):
        base = " ".join(rng.sample(words.split(), 8))
        for variant, suffix in enumerate(("?", " please?", " again?")):
            question = f"{group}: how many letters in {base}{suffix}"
            transcripts.append(escalated(group * 3 + variant, question, str(group + variant)))
    options = DatasetOptions(near_duplicate_threshold=1.0, same_split_threshold=0.7)
    built = build_dataset(transcripts, MATH, options)
    split_of_group: dict[str, set[str]] = {}
    for name, examples in built.splits.items():
        for example in examples:
            split_of_group.setdefault(example.user.split(":")[0], set()).add(name)
    assert len(split_of_group) == 40
    assert all(len(splits) == 1 for splits in split_of_group.values())
    assert built.card.near_duplicate_clusters == 40
    assert {name for splits in split_of_group.values() for name in splits} == {
        "train",
        "val",
        "test",
    }


def test_examples_keep_their_split_when_newer_transcripts_arrive() -> None:
    before = build_dataset(sums(80), MATH)
    after = build_dataset(sums(80) + sums(40, start=80), MATH)
    where_after = {e.run_id: name for name, split in after.splits.items() for e in split}
    for name, split in before.splits.items():
        assert all(where_after[e.run_id] == name for e in split)


def test_nothing_usable_is_an_error_that_counts_every_reason() -> None:
    with pytest.raises(
        DatasetError,
        match=r"no usable transcripts for 'math': 2 read; left out: "
        r"failed 1, validator 1",
    ):
        build_dataset([escalated(1, "1+1?", "2", error="boom"), escalated(2, "2+2?", "four")], MATH)
    with pytest.raises(DatasetError, match="0 read$"):
        build_dataset([], MATH)


def test_saving_writes_split_files_and_a_card_and_never_overwrites(tmp_path: Path) -> None:
    built = build_dataset(sums(30), MATH)
    directory = save_dataset(built, tmp_path / "math" / "v1")
    card = json.loads((directory / "card.json").read_text())
    assert card["sha256"] == built.card.sha256 and card["examples"] == 30
    assert card["format"] == "understudy-chat-sft/1"
    assert built.card.sha256 in (directory / "README.md").read_text()
    lines = (directory / "train.jsonl").read_text().splitlines()
    assert len(lines) == card["splits"]["train"]["examples"]
    assert [m["role"] for m in json.loads(lines[0])["messages"]] == ["system", "user", "assistant"]

    assert save_dataset(built, directory) == directory  # the same dataset again: a no-op
    other = build_dataset(sums(31), MATH)
    with pytest.raises(DatasetError, match="exists and is not this dataset"):
        save_dataset(other, directory)
    assert load_dataset(directory).sha256 == built.card.sha256
    assert sorted(p.name for p in (tmp_path / "math").iterdir()) == ["v1"]  # no leftovers


def test_the_latest_build_of_a_specialist_is_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="distill build --specialist math"):
        latest_dataset(tmp_path, "math")
    save_dataset(build_dataset(sums(20), MATH), tmp_path / "math" / "old")
    newest = save_dataset(build_dataset(sums(25), MATH), tmp_path / "math" / "new")
    assert latest_dataset(tmp_path, "math") == newest


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "train.jsonl:2: Invalid JSON"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "at least 2 items"),
        (
            '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}',
            "last message must be a non-empty assistant message",
        ),
        (
            '{"messages": [{"role": "tool", "content": "a"}, '
            '{"role": "assistant", "content": "b"}]}',
            "train.jsonl:2: Input should be 'system', 'user' or 'assistant'",
        ),
    ],
)
def test_a_malformed_line_is_named_by_file_and_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    good = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
    (tmp_path / "train.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(DatasetError, match=problem.replace("(", r"\(")):
        load_dataset(tmp_path)


def test_a_directory_without_a_train_split_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a dataset directory"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(DatasetError, match="train.jsonl: missing"):
        load_dataset(tmp_path)


@pytest.mark.parametrize(
    "fields",
    [
        {"val_fraction": 0.5, "test_fraction": 0.5},
        {"test_fraction": -0.1},
        {"near_duplicate_threshold": 0.0},
        {"same_split_threshold": 1.5},
        {"max_example_chars": 0},
    ],
)
def test_impossible_options_are_refused(fields: dict) -> None:
    with pytest.raises(ConfigurationError):
        DatasetOptions(**fields)
