"""The embedded backend on a real (tiny, random) Llama with SmolLM2's real tokenizer."""

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from orchestrator.prerouter import MiniLMEmbedder
from specialists import Catalog, ModelError, SpecialistError
from specialists.adapters import adapter_sha256
from specialists.catalog import GenerationParams
from specialists.local import LocalBackend
from specialists.model_loading import MODEL_LOADING
from specialists.sampling import Sampling

QUESTION = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture
async def backend(tiny_model_dir: Path):
    local = LocalBackend(tiny_model_dir, base_ref="tiny", max_batch_size=8)
    yield local
    await local.aclose()


def spec(name: str = "math", *, adapter: Path | None = None, max_tokens: int = 12):
    base = Catalog.default().get("math")
    return dataclasses.replace(
        base, name=name, adapter=adapter, generation=GenerationParams(max_tokens=max_tokens)
    )


async def test_generation_carries_per_token_logprobs_and_confidence(backend: LocalBackend) -> None:
    generation = await backend.generate(spec(), QUESTION)
    assert generation.usage.completion_tokens == len(generation.logprobs) > 0
    assert generation.usage.prompt_tokens > 10  # system prompt + question + template
    assert all(t.logprob <= 0 for t in generation.logprobs)
    assert 0 < generation.confidence.min_prob <= generation.confidence.mean_prob <= 1
    assert generation.finish_reason in {"stop", "length"}
    assert generation.model == "tiny" and generation.latency_s > 0
    tokens_text = "".join(t.token for t in generation.logprobs)
    assert generation.text.strip() in tokens_text


async def test_an_answer_cut_at_max_tokens_says_length(backend: LocalBackend) -> None:
    generation = await backend.generate(spec(max_tokens=3), QUESTION)
    assert generation.finish_reason == "length" and generation.usage.completion_tokens == 3


async def test_stop_ends_the_answer_before_the_stop_string(backend: LocalBackend) -> None:
    # The random model's greedy answer is blank lines; a seeded sample is varied text, and
    # the same seed samples the same text up to the stop string.
    sampled = Sampling(max_tokens=16, temperature=1.0, seed=7)
    full = await backend.generate(spec(), QUESTION, sampling=sampled)
    later = [t.token.strip() for t in full.logprobs[len(full.logprobs) // 2 :]]
    stop = next(token for token in later if token and full.text.find(token) > 0)
    cut = await backend.generate(
        spec(), QUESTION, sampling=dataclasses.replace(sampled, stop=(stop,))
    )
    assert cut.text == full.text[: full.text.find(stop)].strip() and stop not in cut.text
    assert cut.finish_reason == "stop" and len(cut.logprobs) < len(full.logprobs)


async def test_a_seed_makes_sampling_repeatable(backend: LocalBackend) -> None:
    greedy = await backend.generate(spec(), QUESTION)
    seeded = [
        await backend.generate(spec(), QUESTION, sampling=Sampling(temperature=1.0, seed=seed))
        for seed in (5, 5, 6)
    ]
    assert seeded[0].text == seeded[1].text  # same seed, same sample
    assert seeded[2].text != seeded[0].text and greedy.text != seeded[0].text


async def test_top_logprobs_rank_the_alternatives(backend: LocalBackend) -> None:
    sampling = Sampling(logprobs=True, top_logprobs=3)
    generation = await backend.generate(spec(), QUESTION, sampling=sampling)
    assert generation.logprobs
    for entry in generation.logprobs:
        assert len(entry.top) == 3
        assert [t.logprob for t in entry.top] == sorted(
            (t.logprob for t in entry.top), reverse=True
        )
        assert entry.top[0].logprob == pytest.approx(entry.logprob)  # greedy: the best token


async def test_jobs_decoding_differently_never_share_a_batch(backend: LocalBackend) -> None:
    samplings = [Sampling(), Sampling(temperature=1.0, seed=5), Sampling(max_tokens=2)]
    alone = [await backend.generate(spec(), QUESTION, sampling=s) for s in samplings]
    before = backend.batches_run
    together = await asyncio.gather(
        *(backend.generate(spec(), QUESTION, sampling=s) for s in samplings)
    )
    assert [g.text for g in together] == [g.text for g in alone]
    assert backend.batches_run - before == len(samplings)


async def test_concurrent_calls_are_batched_and_match_single_calls(backend: LocalBackend) -> None:
    single = await backend.generate(spec(), QUESTION)
    before = backend.batches_run
    results = await asyncio.gather(*(backend.generate(spec(), QUESTION) for _ in range(8)))
    assert {r.text for r in results} == {single.text}
    assert backend.batches_run - before < 8  # at least some calls shared a forward pass


async def test_adapters_change_output_and_mix_in_one_batch(
    backend: LocalBackend, tiny_lora_dir: Path
) -> None:
    base_alone = await backend.generate(spec(), QUESTION)
    adapted_alone = await backend.generate(spec("tuned", adapter=tiny_lora_dir), QUESTION)
    assert adapted_alone.text != base_alone.text
    assert adapted_alone.model == f"tuned@{adapter_sha256(tiny_lora_dir)[:8]}"  # its content
    mixed = await asyncio.gather(
        backend.generate(spec(), QUESTION),
        backend.generate(spec("tuned", adapter=tiny_lora_dir), QUESTION),
    )
    assert [m.text for m in mixed] == [base_alone.text, adapted_alone.text]


async def test_versions_of_an_adapter_are_served_side_by_side_never_replaced(
    backend: LocalBackend, tiny_lora_dir: Path, tiny_lora_dir_2: Path
) -> None:
    """A new version loads next to the old one at runtime: a run still on v1 keeps v1."""
    v1 = dataclasses.replace(spec("hot", adapter=tiny_lora_dir), version="v1")
    v2 = dataclasses.replace(spec("hot", adapter=tiny_lora_dir_2), version="v2")
    first = await backend.generate(v1, QUESTION)
    await backend.load_adapter("hot@v1", tiny_lora_dir_2)  # a name loaded already is kept
    both = await asyncio.gather(backend.generate(v1, QUESTION), backend.generate(v2, QUESTION))
    assert [g.model for g in both] == ["hot@v1", "hot@v2"]
    assert both[0].text == first.text != both[1].text


async def test_mismatched_adapter_is_refused_and_base_keeps_working(
    backend: LocalBackend, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from tests.helpers.models import build_random_lora, build_tiny_llama

    before = (await backend.generate(spec(), QUESTION)).text
    other_base = build_tiny_llama(tiny_model_dir, tmp_path / "wide", hidden=96)
    wrong = build_random_lora(other_base, tmp_path / "wrong-lora")
    with pytest.raises(ModelError, match="does not fit base 'tiny'.*expects 64 features"):
        await backend.load_adapter("wrong", wrong)
    with pytest.raises(ModelError, match="adapter_config.json: missing"):
        await backend.load_adapter("empty", tmp_path)
    assert (await backend.generate(spec(), QUESTION)).text == before  # the base is untouched


async def test_prompt_over_the_limit_is_a_clear_error(tiny_model_dir: Path) -> None:
    local = LocalBackend(tiny_model_dir, max_input_tokens=16)
    try:
        with pytest.raises(SpecialistError, match="the local backend accepts 16"):
            await local.generate(spec(), QUESTION)
    finally:
        await local.aclose()


async def test_specialist_on_another_base_is_refused(backend: LocalBackend) -> None:
    other = dataclasses.replace(spec(), base_model="Qwen/Qwen2.5-1.5B-Instruct")
    with pytest.raises(SpecialistError, match="serves 'tiny'"):
        await backend.generate(other, QUESTION)


async def test_unloadable_model_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    local = LocalBackend(tmp_path, base_ref="smollm2-135m")
    try:
        with pytest.raises(ModelError, match="understudy models pull smollm2-135m --force"):
            await local.generate(spec(), QUESTION)
    finally:
        await local.aclose()


async def test_a_new_adapter_directory_for_a_specialist_replaces_the_old_one(
    backend: LocalBackend, tiny_lora_dir: Path, tiny_lora_dir_2: Path
) -> None:
    first = await backend.generate(spec("math", adapter=tiny_lora_dir), QUESTION)
    again = await backend.generate(spec("math", adapter=tiny_lora_dir), QUESTION)
    promoted = await backend.generate(spec("math", adapter=tiny_lora_dir_2), QUESTION)
    assert again.text == first.text
    assert promoted.text != first.text


async def test_backends_loading_while_the_embedder_loads_all_come_out_whole(
    tiny_model_dir: Path,
) -> None:
    """transformers swaps process-wide state while it builds a model; without the shared loading
    lock a tiny Llama built beside the embedder keeps its tied lm_head on the meta device, as
    happened on the first request of an eval run. Backends load back to back for as long as three
    embedders take to load, so their loads overlap the embedder's many times."""

    def load_embedders() -> list[np.ndarray]:
        return [MiniLMEmbedder().embed(["2 + 3?"]) for _ in range(3)]

    embedders = asyncio.ensure_future(asyncio.to_thread(load_embedders))
    loads = 0
    while not embedders.done():
        local = LocalBackend(tiny_model_dir, base_ref="tiny")
        try:
            await local.warm_up()
            generation = await local.generate(spec(max_tokens=2), QUESTION)
        finally:
            await local.aclose()
        assert generation.usage.completion_tokens > 0
        loads += 1
    assert all(vectors.shape == (1, 384) for vectors in await embedders) and loads >= 2


async def test_backend_and_embedder_loads_wait_while_another_load_holds_the_lock(
    tiny_model_dir: Path,
) -> None:
    """The shared lock is what keeps loads apart: neither starts while another load holds it."""
    local = LocalBackend(tiny_model_dir, base_ref="tiny")
    try:
        with MODEL_LOADING:
            warm_up = asyncio.ensure_future(local.warm_up())
            embed = asyncio.ensure_future(asyncio.to_thread(MiniLMEmbedder().embed, ["2 + 3?"]))
            await asyncio.sleep(1.5)  # several times what either load takes
            assert not warm_up.done() and not embed.done()
        await asyncio.wait_for(asyncio.gather(warm_up, embed), timeout=120)
    finally:
        await local.aclose()
