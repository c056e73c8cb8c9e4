"""Near-duplicate clusters: similar texts join the earliest similar leader; chains do not merge."""

from __future__ import annotations

import pytest

from distill.dataset.dedup import LeaderClusters, fingerprint, normalise

EMAIL = (
    "Hi Sam, please find attached invoice 4411 for the March consulting work. "
    "Payment is due within thirty days. Best regards, Ana"
)


def test_normalisation_ignores_case_spacing_and_unicode_forms() -> None:
    assert normalise("  Ｗhat  IS\n17*24? ") == "what is 17*24?"
    assert fingerprint("What is 17*24?") == fingerprint("what   is 17*24?")


def test_a_small_edit_joins_the_cluster_and_an_unrelated_text_leads_its_own() -> None:
    clusters = LeaderClusters(0.7)
    assert clusters.assign("a", EMAIL) == "a"
    assert clusters.assign("b", EMAIL.replace("Sam", "Samuel")) == "a"
    assert clusters.assign("c", "Write a Python function that reverses a string.") == "c"


def test_a_text_joins_the_earliest_of_several_similar_leaders() -> None:
    clusters = LeaderClusters(0.5)
    first = "alpha beta gamma delta epsilon zeta eta theta"
    second = "iota kappa lambda mu nu xi omicron pi"
    assert clusters.assign("1", first) == "1"
    assert clusters.assign("2", second) == "2"
    both = first + " " + second
    assert clusters.assign("3", both) in {"1", "2"}
    assert LeaderClusters(0.3).assign("x", both) == "x"  # fresh index: it leads


def test_a_chain_of_edits_does_not_pull_a_distant_text_into_the_cluster() -> None:
    clusters = LeaderClusters(0.8)
    words = EMAIL.split()
    leader = clusters.assign("0", EMAIL)
    far = " ".join(reversed(words))
    near = " ".join([*words[:-1], "Anna"])
    assert clusters.assign("1", near) == leader
    assert clusters.assign("2", far) == "2"


def test_the_same_texts_give_the_same_clusters_every_time() -> None:
    texts = [f"Invoice {n} is due on {n % 28 + 1} March 2024, thanks" for n in range(40)]

    def clustering() -> list[str]:
        clusters = LeaderClusters(0.6)
        return [clusters.assign(str(i), text) for i, text in enumerate(texts)]

    assert clustering() == clustering()


def test_keys_are_unique_and_thresholds_sane() -> None:
    clusters = LeaderClusters(0.7)
    clusters.assign("a", EMAIL)
    with pytest.raises(ValueError, match="assigned already"):
        clusters.assign("a", "anything else")
    with pytest.raises(ValueError, match="threshold"):
        LeaderClusters(0)
