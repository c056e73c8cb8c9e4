"""Prompt embeddings kept on disk, so re-running an evaluation does not embed the same texts again.

Embedding RouteLLM's 1,307 GSM8K prompts with all-MiniLM-L6-v2 takes about 15 s on two CPU cores
(plus 6 s to load the model); a cached run reads one small ``.npy`` instead and never loads the
model. The key is a hash of the model reference and every text in order: a new model or one
changed prompt makes a new entry, never a stale hit. (A model directory rewritten in place under
the same path is the one change the key cannot see; delete the cache directory after doing that.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from orchestrator.prerouter import Embedder

logger = logging.getLogger(__name__)

BATCH_SIZE = 64
"""Texts embedded per call: large enough to keep the model busy, small enough for a live bar."""

EmbeddingProgress = Callable[[int, int], None]
"""Told ``(texts embedded so far, texts in all)`` after each batch."""


def cache_key(model_ref: str, texts: Sequence[str]) -> str:
    """Hex digest naming the embeddings of ``texts`` (in order) by ``model_ref``."""
    payload = json.dumps([model_ref, list(texts)], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class CachedEmbedder:
    """An :class:`~orchestrator.prerouter.Embedder` that reuses what it embedded before.

    Args:
        inner: Embeds texts the cache does not hold, ``batch_size`` at a time.
        model_ref: Names the model in the cache key (``MiniLMEmbedder.model_ref``).
        cache_dir: Where the ``.npy`` files go; created on first write.
        on_progress: Called after each embedded batch (not on a cache hit).
        batch_size: Texts per call to ``inner``.
    """

    def __init__(
        self,
        inner: Embedder,
        *,
        model_ref: str,
        cache_dir: Path,
        on_progress: EmbeddingProgress | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.inner = inner
        self.model_ref = model_ref
        self.cache_dir = cache_dir
        self.on_progress = on_progress
        self.batch_size = batch_size

    def path_for(self, texts: Sequence[str]) -> Path:
        return self.cache_dir / f"{cache_key(self.model_ref, texts)}.npy"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        path = self.path_for(texts)
        cached = self._load(path, len(texts))
        if cached is not None:
            return cached
        batches = []
        for start in range(0, len(texts), self.batch_size):
            batches.append(np.asarray(self.inner.embed(texts[start : start + self.batch_size])))
            if self.on_progress is not None:
                self.on_progress(min(start + self.batch_size, len(texts)), len(texts))
        vectors = np.concatenate(batches).astype(np.float32) if batches else np.zeros((0, 0))
        self._save(path, vectors)
        return vectors

    @staticmethod
    def _load(path: Path, rows: int) -> np.ndarray | None:
        """The cached vectors, or ``None`` when absent or unreadable (then they are recomputed)."""
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        return vectors if vectors.ndim == 2 and vectors.shape[0] == rows else None

    def _save(self, path: Path, vectors: np.ndarray) -> None:
        """Write through a temporary file and rename, so a crash never leaves half a file.

        A cache that cannot be written costs time on the next run, not this run's result: the
        failure is logged and the vectors are still returned.
        """
        partial = path.with_suffix(f".{os.getpid()}.partial")
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as handle:
                np.save(handle, vectors, allow_pickle=False)
            partial.replace(path)
        except OSError as exc:
            logger.warning("embedding cache not written to %s: %s", path, exc)
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
