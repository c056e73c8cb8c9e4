"""The embedded backend under faults: a request fails alone, never its batch, and closing
answers every caller. A real tiny Llama throughout; batches are made deterministic by holding the
model-loading lock while calls queue behind the worker's first load."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from pathlib import Path

import pytest

from specialists import PromptTooLong, SpecialistError, SpecialistUnavailable
from specialists.backend import ChatMessage, Generation
from specialists.local import LocalBackend, _Job
from specialists.model_loading import MODEL_LOADING
from tests.specialists.test_local_backend import QUESTION, spec


def asking(terms: int) -> list[ChatMessage]:
    """A question about a sum of ``terms`` twos: three prompt tokens per term."""
    return [{"role": "user", "content": "What is " + " + ".join(["2"] * terms) + "?"}]


OVER_LONG = asking(400)
"""About 1,240 prompt tokens: more than the tiny model's whole context."""


@pytest.fixture
async def backend(tiny_model_dir: Path):
    local = LocalBackend(tiny_model_dir, base_ref="tiny", max_batch_size=8)
    yield local
    await local.aclose()


@pytest.fixture
def context_length(tiny_model_dir: Path) -> int:
    return json.loads((tiny_model_dir / "config.json").read_text())["max_position_embeddings"]


async def queued_behind_the_load(
    backend: LocalBackend, calls: Sequence[Awaitable[Generation]]
) -> list[Generation | BaseException]:
    """Run ``calls`` on a fresh backend so that they all wait in its queue while the worker
    loads the model, and so share one batch (up to its size) once it has loaded."""
    with MODEL_LOADING:  # the worker's load waits for this; the calls queue meanwhile
        warm_up = asyncio.ensure_future(backend.warm_up())
        tasks = [asyncio.ensure_future(call) for call in calls]
        await asyncio.sleep(0)  # each call runs up to its place in the queue
    await warm_up
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=120)


async def until_in_flight(backend: LocalBackend) -> None:
    """Wait until the worker has taken its first job (and is blocked loading the model)."""

    async def poll() -> None:
        while not backend._in_flight:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout=60)


async def test_an_over_long_request_fails_alone_and_its_batch_is_answered(
    backend: LocalBackend, context_length: int
) -> None:
    short = [backend.generate(spec(), QUESTION) for _ in range(3)]
    *answered, refused = await queued_behind_the_load(
        backend, [*short, backend.generate(spec(), OVER_LONG)]
    )
    assert isinstance(refused, PromptTooLong) and refused.specialist == "math"
    assert f"the model's context holds {context_length}" in str(refused)
    assert refused.prompt_tokens > context_length
    assert backend.batches_run == 1  # the three shared one generate; the long one never ran
    alone = await backend.generate(spec(), QUESTION)
    assert [a.text for a in answered if isinstance(a, Generation)] == [alone.text] * 3


async def test_a_prompt_must_leave_room_for_the_tokens_it_asks_for(
    backend: LocalBackend, context_length: int
) -> None:
    question = asking(320)  # fits the context alone, with a little room to answer
    with pytest.raises(PromptTooLong) as refused:
        await backend.generate(spec(max_tokens=context_length), question)
    prompt_tokens = refused.value.prompt_tokens
    room = context_length - prompt_tokens
    assert 0 < room < 100
    fits = await backend.generate(spec(max_tokens=room), question)
    assert fits.usage.prompt_tokens == prompt_tokens
    with pytest.raises(
        PromptTooLong,
        match=rf"prompt has {prompt_tokens} tokens and asks for up to {room + 1} more; the "
        rf"model's context holds {context_length} \(shorten the request or lower max_tokens\)",
    ):
        await backend.generate(spec(max_tokens=room + 1), question)


class FaultyRowBackend(LocalBackend):
    """The real backend, except that any batch holding one poisoned request fails whole, the way
    a CUDA fault or a bug in one row's adapter fails torch's ``generate``."""

    POISON = "poison"

    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir, base_ref="tiny")
        self.batch_sizes: list[int] = []

    def _generate_batch(self, batch: list[_Job]) -> list[Generation]:
        self.batch_sizes.append(len(batch))
        if any(job.messages[-1]["content"] == self.POISON for job in batch):
            raise RuntimeError("CUDA error: device-side assert triggered\nCompile with ...")
        return super()._generate_batch(batch)


async def test_a_batch_that_fails_whole_is_retried_so_only_the_request_at_fault_fails(
    tiny_model_dir: Path,
) -> None:
    local = FaultyRowBackend(tiny_model_dir)
    try:
        poison: list[ChatMessage] = [{"role": "user", "content": FaultyRowBackend.POISON}]
        first, failed, *rest = await queued_behind_the_load(
            local,
            [local.generate(spec(), q) for q in (QUESTION, poison, QUESTION, QUESTION)],
        )
        assert local.batch_sizes == [4, 1, 1, 1, 1]  # together once, then each alone
        assert type(failed) is SpecialistError
        assert str(failed) == (
            "specialist 'math' failed: generation failed: "
            "RuntimeError: CUDA error: device-side assert triggered"
        )
        assert isinstance(failed.__cause__, RuntimeError)
        alone = await local.generate(spec(), QUESTION)
        assert [g.text for g in (first, *rest) if isinstance(g, Generation)] == [alone.text] * 3
    finally:
        await local.aclose()


async def test_a_caller_who_gives_up_leaves_the_worker_serving_the_others(
    backend: LocalBackend,
) -> None:
    with MODEL_LOADING:
        warm_up = asyncio.ensure_future(backend.warm_up())
        calls = [asyncio.ensure_future(backend.generate(spec(), QUESTION)) for _ in range(3)]
        await asyncio.sleep(0)
        calls[1].cancel()  # its caller's deadline passed while it was queued
        await asyncio.sleep(0)
    await warm_up
    first, last = await asyncio.wait_for(asyncio.gather(calls[0], calls[2]), timeout=120)
    assert calls[1].cancelled() and first.text == last.text
    assert (await backend.generate(spec(), QUESTION)).text == first.text


async def test_closing_refuses_queued_callers_at_once_and_lets_the_work_in_flight_finish(
    tiny_model_dir: Path,
) -> None:
    local = LocalBackend(tiny_model_dir, base_ref="tiny", drain_s=600)
    with MODEL_LOADING:  # the load in flight cannot finish while the test holds this
        warm_up = asyncio.ensure_future(local.warm_up())
        await until_in_flight(local)
        queued = [asyncio.ensure_future(local.generate(spec(), QUESTION)) for _ in range(3)]
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(local.aclose())
        refused = await asyncio.wait_for(
            asyncio.gather(*queued, return_exceptions=True), timeout=60
        )
        assert not closing.done() and not warm_up.done()  # the load in flight is draining
    await asyncio.wait_for(closing, timeout=120)
    assert await warm_up is None  # the work in flight was finished and answered
    for error in refused:
        assert isinstance(error, SpecialistUnavailable)
        assert str(error).startswith("specialist 'math' failed: unavailable after")
        assert str(error).endswith("the local backend is shutting down")
    with pytest.raises(SpecialistUnavailable, match="the local backend is shutting down"):
        await local.generate(spec(), QUESTION)


async def test_closing_never_waits_past_its_drain(tiny_model_dir: Path) -> None:
    local = LocalBackend(tiny_model_dir, base_ref="tiny", drain_s=0.2)
    with MODEL_LOADING:  # the load in flight cannot finish while the test holds this
        warm_up = asyncio.ensure_future(local.warm_up())
        await until_in_flight(local)
        await asyncio.wait_for(local.aclose(), timeout=60)  # returns with the load still stuck
        with pytest.raises(SpecialistUnavailable, match="the local backend is shutting down"):
            await warm_up
    with pytest.raises(SpecialistUnavailable, match="the local backend is shutting down"):
        await local.warm_up()
