"""Near-duplicate detection: MinHash over character shingles, clustered around leaders.

Users resend the same request with small edits; left in, such pairs inflate the dataset and, split
across train and test, make the held-out score a memory test. Texts are normalised (Unicode NFKC,
case-folded, whitespace collapsed), cut into overlapping character 5-grams, and compared by the
Jaccard similarity of those sets, estimated with MinHash (``datasketch``) and indexed with LSH so
that each text is compared with a few candidates instead of with every other text.

Clustering is *leader* clustering, in the order texts arrive: a text joins the earliest leader it
is at least ``threshold`` similar to, or becomes a leader itself. Unlike transitive grouping, a
chain of small edits cannot merge unrelated texts into one cluster, and because older texts come
first, a cluster's leader stays the same when newer transcripts are added.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from datasketch import MinHash, MinHashLSH

SHINGLE_CHARS = 5
NUM_PERM = 128
"""MinHash permutations: the Jaccard estimate's standard deviation is at most 0.045."""
SEED = 1
LSH_WEIGHTS = (0.05, 0.95)
"""LSH tuned for recall (weights of false positives, false negatives): a text at the threshold
is a candidate about 93 % of the time, against 30-55 % with equal weights. False candidates
cost one comparison each, since every candidate's estimate is checked."""
"""Fixed, so the same texts always give the same signatures and clusters."""

_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The form texts are compared in: NFKC, case-folded, single spaces, trimmed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def fingerprint(text: str) -> str:
    """A stable hex digest of the normalised text (exact-duplicate key, split key)."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def signature(text: str) -> MinHash:
    """The MinHash of a text's character shingles (the whole text when it is shorter)."""
    norm = normalise(text)
    shingles = {norm[i : i + SHINGLE_CHARS] for i in range(max(1, len(norm) - SHINGLE_CHARS + 1))}
    minhash = MinHash(num_perm=NUM_PERM, seed=SEED)
    minhash.update_batch([s.encode("utf-8") for s in sorted(shingles)])
    return minhash


class LeaderClusters:
    """Assigns each text, in arrival order, to the cluster of the earliest similar leader.

    Args:
        threshold: Estimated Jaccard similarity (0, 1] at which a text joins a leader's cluster.
    """

    def __init__(self, threshold: float) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        # LSH only proposes candidates (it cannot be tuned for 1.0); the estimate decides.
        self._lsh = MinHashLSH(
            threshold=min(threshold, 0.95), num_perm=NUM_PERM, weights=LSH_WEIGHTS
        )
        self._leaders: dict[str, tuple[int, MinHash]] = {}
        """Leader key → (arrival index, signature)."""

    def assign(self, key: str, text: str) -> str:
        """The key of the cluster leader ``text`` belongs to: ``key`` itself for a new leader.

        Keys must be unique; re-assigning a key that is already a leader raises ``ValueError``.
        """
        if key in self._leaders:
            raise ValueError(f"key {key!r} was assigned already")
        minhash = signature(text)
        similar: list[tuple[int, str]] = []
        for leader in self._lsh.query(minhash):  # candidates; confirm each by its estimate
            index, leader_hash = self._leaders[leader]
            if leader_hash.jaccard(minhash) >= self.threshold:
                similar.append((index, leader))
        if similar:
            return min(similar)[1]
        self._leaders[key] = (len(self._leaders), minhash)
        self._lsh.insert(key, minhash)
        return key
