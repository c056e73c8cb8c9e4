"""The vLLM client against real HTTP servers on 127.0.0.1 that play vLLM's replies."""

import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import pytest
from starlette.responses import JSONResponse, Response

from specialists import Catalog, SpecialistError, SpecialistUnavailable
from specialists.adapters import adapter_sha256
from specialists.errors import AdaptersNotServed
from specialists.sampling import Sampling
from specialists.structured import ResponseFormat
from specialists.vllm_client import VLLMBackend
from tests.helpers.http_server import chat_completion, free_port, serve, sleep_then
from tests.helpers.vllm import ScriptedVLLM

QUESTION = [{"role": "user", "content": "What is 2 + 3?"}]
MATH = Catalog.default().get("math")


def client(root: str, **kwargs) -> VLLMBackend:
    kwargs.setdefault("timeout_s", 5.0)
    return VLLMBackend(f"{root}/v1", base_model_name="smollm2-135m", **kwargs)


async def test_logprobs_become_confidence_and_base_is_the_model() -> None:
    async def handler(path, body):
        return chat_completion("Answer: 5", [math.log(0.9), math.log(0.6)], model=body["model"])

    with serve(handler) as (root, seen):
        backend = client(root)
        generation = await backend.generate(MATH, QUESTION)
        await backend.aclose()
    path, body = seen[0]
    assert path == "/v1/chat/completions"
    assert body["model"] == "smollm2-135m" and body["logprobs"] is True
    assert body["messages"][0] == {"role": "system", "content": MATH.system_prompt}
    assert body["max_tokens"] == MATH.generation.max_tokens
    assert generation.text == "Answer: 5"
    assert generation.confidence.mean_prob == pytest.approx(0.75)
    assert generation.confidence.min_prob == pytest.approx(0.6)
    assert generation.usage.completion_tokens == 2
    assert generation.finish_reason == "stop"


async def test_an_answer_cut_at_max_tokens_says_length() -> None:
    async def handler(path, body):
        return chat_completion("Answer:", [math.log(0.9)], finish_reason="length")

    with serve(handler) as (root, _seen):
        backend = client(root)
        generation = await backend.generate(MATH, QUESTION, sampling=Sampling(max_tokens=1))
        await backend.aclose()
    assert generation.finish_reason == "length" and generation.text == "Answer:"


async def test_sampling_goes_to_vllm_and_top_logprobs_come_back() -> None:
    async def handler(path, body):
        top = [{"token": "5", "logprob": math.log(0.5)}, {"token": "6", "logprob": math.log(0.25)}]
        reply = json.loads(chat_completion("5", [math.log(0.5)]).body)
        reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"] = top
        return JSONResponse(reply)

    sampling = Sampling(
        max_tokens=9,
        temperature=0.7,
        top_p=0.8,
        stop=("\n", "END"),
        seed=3,
        presence_penalty=0.5,
        frequency_penalty=0.0,  # the default: not sent
        logit_bias=((42, -100.0),),
        logprobs=True,
        top_logprobs=2,
    )
    with serve(handler) as (root, seen):
        backend = client(root)
        generation = await backend.generate(MATH, QUESTION, sampling=sampling)
        await backend.aclose()
    body = seen[0][1]
    sent = {key: body[key] for key in body if key not in ("model", "messages")}
    assert sent == {
        "max_tokens": 9,
        "temperature": 0.7,
        "top_p": 0.8,
        "stop": ["\n", "END"],
        "seed": 3,
        "presence_penalty": 0.5,
        "logit_bias": {"42": -100.0},
        "logprobs": True,
        "top_logprobs": 2,
    }
    assert [(t.token, round(math.exp(t.logprob), 2)) for t in generation.logprobs[0].top] == [
        ("5", 0.5),
        ("6", 0.25),
    ]


@pytest.mark.parametrize(
    ("response_format", "sent"),
    [
        (ResponseFormat(), {"type": "json_object"}),
        (
            ResponseFormat.json_schema("Sum", {"type": "object"}, strict=True),
            {
                "type": "json_schema",
                "json_schema": {"name": "Sum", "schema": {"type": "object"}, "strict": True},
            },
        ),
    ],
)
async def test_response_format_goes_to_vllm_structured_outputs(
    response_format: ResponseFormat, sent: dict
) -> None:
    async def handler(path, body):
        return chat_completion('{"answer": 5}', [math.log(0.9)])

    with serve(handler) as (root, seen):
        backend = client(root)
        sampling = Sampling(response_format=response_format)
        generation = await backend.generate(MATH, QUESTION, sampling=sampling)
        await backend.aclose()
    assert seen[0][1]["response_format"] == sent
    assert generation.text == '{"answer": 5}'


async def test_each_adapter_version_is_served_under_a_name_of_its_own(
    tiny_lora_dir: Path, tiny_lora_dir_2: Path, tmp_path: Path
) -> None:
    """A registry version names its adapter; an adapter from settings is named by its content,
    so changed files get a new name. A served name is loaded once, never in place."""
    v3 = dataclasses.replace(MATH, adapter=tiny_lora_dir, version="v3")
    from_settings = dataclasses.replace(
        MATH, adapter=Path(shutil.copytree(tiny_lora_dir_2, tmp_path / "a"))
    )
    server = ScriptedVLLM(base="smollm2-135m")
    with serve(server) as (root, seen):
        backend = client(root)
        named = backend.served_name(from_settings)
        assert named == f"math@{adapter_sha256(tiny_lora_dir_2)[:8]}"
        await backend.load_adapter("math@v3", tiny_lora_dir)
        await backend.load_adapter(named, tiny_lora_dir_2)
        await backend.load_adapter("math@v3", tiny_lora_dir_2)  # served already: kept as it is
        generations = [await backend.generate(s, QUESTION) for s in (v3, from_settings)]
        (from_settings.adapter / "adapter_config.json").write_text(
            (tiny_lora_dir.resolve() / "adapter_config.json").read_text() + "\n"
        )
        renamed = backend.served_name(from_settings)
        await backend.aclose()
    assert [g.model for g in generations] == ["math@v3", named]
    assert renamed not in {named, "math@v3"} and renamed.startswith("math@")
    loads = [body for path, body in seen if path.endswith("/load_lora_adapter")]
    assert [(b["lora_name"], b["lora_path"]) for b in loads] == [
        ("math@v3", str(tiny_lora_dir.resolve())),
        (named, str(tiny_lora_dir_2.resolve())),
    ]
    assert not any("load_inplace" in body for body in loads)
    assert server.loaded["math@v3"] == str(tiny_lora_dir.resolve())


async def test_a_name_another_process_loaded_first_is_not_an_error(tiny_lora_dir: Path) -> None:
    server = ScriptedVLLM(base="smollm2-135m")

    async def racing(path: str, body: dict) -> Response:
        if path.endswith("/load_lora_adapter"):  # another process loads it just before us
            server.loaded[body["lora_name"]] = body["lora_path"]
        return await server(path, body)

    with serve(racing) as (root, seen):
        backend = client(root)
        await backend.load_adapter("math@v3", tiny_lora_dir)
        await backend.aclose()
    assert [path for path, _ in seen] == ["/v1/models", "/v1/load_lora_adapter", "/v1/models"]
    assert server.loaded == {"math@v3": str(tiny_lora_dir.resolve())}


async def test_missing_adapters_are_named_with_their_specialist(tiny_lora_dir: Path) -> None:
    catalog = Catalog.default().with_overrides({"math": {"adapter": str(tiny_lora_dir)}})
    served = dataclasses.replace(catalog.get("math"), version="v2")
    server = ScriptedVLLM(base="smollm2-135m")
    with serve(server) as (root, _):
        backend = client(root)
        with pytest.raises(AdaptersNotServed, match="'math' needs adapter 'math@v2', which vLLM"):
            await backend.require_adapters([served, catalog.get("code")])
        await backend.load_adapter("math@v2", tiny_lora_dir)
        await backend.require_adapters([served, catalog.get("code")])
        await backend.aclose()


async def test_5xx_is_retried_then_succeeds() -> None:
    calls = 0

    async def handler(path, body):
        nonlocal calls
        calls += 1
        if calls < 3:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        return chat_completion("Answer: 5", [-0.01])

    with serve(handler) as (root, _):
        backend = client(root, max_retries=2)
        generation = await backend.generate(MATH, QUESTION)
        await backend.aclose()
    assert calls == 3 and generation.text == "Answer: 5"


async def test_persistent_5xx_becomes_unavailable_with_the_reason() -> None:
    async def handler(path, body):
        return JSONResponse({"error": {"message": "engine dead"}}, status_code=500)

    with serve(handler) as (root, seen):
        backend = client(root, max_retries=1)
        with pytest.raises(SpecialistUnavailable, match="engine dead"):
            await backend.generate(MATH, QUESTION)
        await backend.aclose()
    assert len(seen) == 2


async def test_4xx_is_not_retried_and_not_unavailable() -> None:
    async def handler(path, body):
        return JSONResponse(
            {"error": {"message": "The model `math` does not exist."}}, status_code=404
        )

    with serve(handler) as (root, seen):
        backend = client(root)
        with pytest.raises(SpecialistError, match="does not exist") as info:
            await backend.generate(MATH, QUESTION)
        await backend.aclose()
    assert not isinstance(info.value, SpecialistUnavailable) and len(seen) == 1


async def test_server_down_is_unavailable_within_the_timeout() -> None:
    backend = client(f"http://127.0.0.1:{free_port()}", timeout_s=2.0, max_retries=50)
    started = time.perf_counter()
    with pytest.raises(SpecialistUnavailable):
        await backend.generate(MATH, QUESTION)
    assert time.perf_counter() - started < 2.0 + 0.5
    await backend.aclose()


async def test_a_hanging_server_is_cut_at_the_timeout() -> None:
    async def handler(path, body):
        return await sleep_then(3, chat_completion("late", [-0.1]))

    with serve(handler) as (root, _):
        backend = client(root, timeout_s=1.0)
        started = time.perf_counter()
        with pytest.raises(SpecialistUnavailable, match="within 1.0s"):
            await backend.generate(MATH, QUESTION)
        elapsed = time.perf_counter() - started
        await backend.aclose()
    assert 0.9 < elapsed < 1.5


async def test_malformed_reply_is_a_specialist_error() -> None:
    async def handler(path, body):
        return JSONResponse({"choices": []})

    with serve(handler) as (root, _):
        backend = client(root)
        with pytest.raises(SpecialistError, match="malformed reply"):
            await backend.generate(MATH, QUESTION)
        await backend.aclose()
