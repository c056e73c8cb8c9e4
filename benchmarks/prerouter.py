"""Pre-router accuracy and decision latency: prototype (MiniLM) vs learned (MiniLM) vs learned
(static embedding distilled from MiniLM) vs two-stage (static where it is sure, MiniLM the rest),
in the same run.

Run from the repository root (2 cores is the target; the static table is built once, about a
minute, and kept in ``--static-dir``)::

    UNDERSTUDY_DATA_DIR=../shared/data taskset -c 0,1 python benchmarks/prerouter.py \
        --static-dir /tmp/understudy-static --per-domain 200

Accuracy is on the routing suite's held-out side (:func:`evals.suites.routing.split_of`; what
``understudy eval run --suite routing`` samples), after training on the seed data
(``distill/prerouter/seed.py``, train side only). Latency is per decision: one prompt at a time
(p50/p95 over ``--latency-n`` suite prompts) and batched (32 prompts per call, per prompt).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.prerouter.seed import seed_examples
from distill.prerouter.training import choose_cut
from evals.data import DataSource, script_data_dir
from evals.scorers.routing import routing_figures
from evals.suites.routing import labelled_samples
from orchestrator.prerouter import Embedder, MiniLMEmbedder, PreRouter, embed_prompts
from orchestrator.prerouter_learned import LearnedPreRouter, embedder_identity
from orchestrator.prerouter_model import NONE, fit_router_model
from orchestrator.prerouter_static import (
    TABLE_FILE,
    StaticEmbedder,
    distill_static_table,
)
from orchestrator.prerouter_two_stage import TwoStagePreRouter
from specialists.catalog import Catalog


def latency(router: PreRouter, prompts: Sequence[str], batch: int) -> tuple[float, float]:
    """(p50, p95) milliseconds per decision, ``batch`` prompts per call."""
    router.route_many(prompts[:batch])  # warm up: model load, prototypes
    times = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        began = time.perf_counter()
        router.route_many(chunk)
        times.append((time.perf_counter() - began) * 1000 / len(chunk))
    if len(times) == 1:
        return times[0], times[0]
    return statistics.median(times), float(np.percentile(times, 95))


def learned(
    catalog: Catalog, embedder: Embedder, examples: Sequence[tuple[str, str]]
) -> tuple[LearnedPreRouter, np.ndarray]:
    """The router and its out-of-fold probabilities on ``examples``."""
    vectors = embed_prompts(embedder, [prompt for prompt, _ in examples])
    model, out_of_fold = fit_router_model(
        vectors, [label for _, label in examples], embedder=embedder_identity(embedder)
    )
    print(f"  thresholds { ({k: round(v, 3) for k, v in model.thresholds.items()}) }")
    return LearnedPreRouter(catalog, embedder, model, version=None), out_of_fold


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--static-dir", type=Path, default=Path("/tmp/understudy-static"))
    parser.add_argument("--per-domain", type=int, default=200)
    parser.add_argument("--latency-n", type=int, default=200)
    args = parser.parse_args(argv)
    data_dir = args.data_dir or script_data_dir()
    if data_dir is None or not data_dir.is_dir():
        parser.error("no evaluation data; pass --data-dir or set UNDERSTUDY_DATA_DIR")
    source = DataSource(data_dir)
    catalog = Catalog.default()
    print(f"cores available: {len(os.sched_getaffinity(0))}")

    minilm = MiniLMEmbedder()
    if not (args.static_dir / TABLE_FILE).is_file():
        began = time.perf_counter()
        distill_static_table(minilm, args.static_dir)
        print(f"static table distilled in {time.perf_counter() - began:.0f} s")
    static = StaticEmbedder(args.static_dir)

    examples = [(e.prompt, e.label) for e in seed_examples(source, catalog)]
    print(f"seed examples: {len(examples)}")
    samples = labelled_samples(source, args.per_domain)
    prompts = [s.prompt for s in samples]
    labels = [s.reference for s in samples]
    print(f"held-out routing suite prompts: {len(samples)}")

    routers: dict[str, PreRouter] = {"prototype MiniLM": PreRouter(catalog, minilm)}
    print("training learned MiniLM")
    precise, precise_oof = learned(catalog, minilm, examples)
    routers["learned MiniLM"] = precise
    print("training learned static")
    fast, fast_oof = learned(catalog, static, examples)
    routers["learned static"] = fast
    labels_seen = [label for _, label in examples]
    cut = choose_cut(fast.model, fast_oof, precise.model, precise_oof, labels_seen)
    print(f"two-stage cut (chosen out of fold on the seed examples): {cut}")
    if cut is not None:
        routers[f"two-stage, cut {cut}"] = TwoStagePreRouter(fast, precise, cut=cut)

    timing_prompts = prompts[: args.latency_n]
    for name, router in routers.items():
        decisions = [d.specialist or NONE for d in router.route_many(prompts)]
        figures = routing_figures(labels, decisions)
        single = latency(router, timing_prompts, 1)
        batched = latency(router, timing_prompts, 32)
        print(
            f"\n== {name}: latency per decision p50 {single[0]:.2f} ms, p95 {single[1]:.2f} ms;"
            f" batched(32) p50 {batched[0]:.3f} ms per prompt"
        )
        for line in figures.lines():
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
