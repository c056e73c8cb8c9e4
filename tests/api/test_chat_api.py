"""The chat API as apps use it: a real uvicorn server on 127.0.0.1, the official ``openai``
client, SmolLM2 on the local backend, a real database; only the lead is scripted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from distill.registry import RegistryStore
from orchestrator.modes import Mode
from orchestrator.outcome import FailureKind
from orchestrator.testing import ScriptedLead, failure, reply, tool_calls
from orchestrator.transcripts import TranscriptStore
from serving.batch.validation import Problem, check_body, check_line
from serving.keys import KeyStore
from serving.protocol import ProtocolError, served_models
from tests.helpers.api_server import Api, serving
from tests.helpers.cli import understudy_serve
from tests.helpers.stores import open_store

SHORT_QUESTION = "What is 12 + 30? Answer with the number only."
"""A question SmolLM2's specialists answer within ``SHORT_ANSWERS``' 24 tokens."""


@pytest.fixture
def api(
    home_with_smollm2: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Api]:
    with serving(database_url, monkeypatch) as served:
        yield served


def ask(api: Api, model: str, text: str = "What is 12 + 30?", **kwargs):
    return api.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], **kwargs
    )


def understudy(completion) -> dict:
    return completion.model_extra["understudy"]


def test_models_lists_modes_and_specialists(api: Api) -> None:
    names = {m.id for m in api.client().models.list()}
    assert names == {
        "understudy-router",
        "understudy-cascade",
        "understudy-llm",
        "understudy-slm",
        "understudy-math",
        "understudy-email",
        "understudy-code",
    }


def test_llm_and_router_non_streaming(api: Api) -> None:
    api.lead.enqueue(
        reply("Paris."),
        tool_calls(("calculator", {"expression": "12+30"})),
        reply("42"),
    )
    llm = ask(api, "understudy-llm", "Capital of France?")
    assert llm.choices[0].message.content == "Paris." and llm.choices[0].finish_reason == "stop"
    assert understudy(llm)["route"] == "lead" and llm.usage.total_tokens > 0
    routed = ask(api, "understudy-router")
    meta = understudy(routed)
    assert routed.choices[0].message.content == "42" and meta["route"] == "router"
    assert meta["cost_usd"] > 0 and meta["run_id"]


@pytest.mark.parametrize(
    ("model", "route"),
    [
        ("understudy-cascade", "cascade:accepted:math"),
        ("understudy-slm", "slm:math"),
        ("understudy-math", "slm:math"),
    ],
)
def test_specialist_models_answer_without_the_lead(api: Api, model: str, route: str) -> None:
    # Asked for the number only, SmolLM2 ends its answer within its 24 tokens: the cascade
    # never accepts a draft cut at its limit.
    completion = ask(api, model, SHORT_QUESTION)
    meta = understudy(completion)
    assert meta["route"] == route and meta["specialists"] == ["math"]
    assert completion.choices[0].message.content and meta["confidence"] > 0
    assert api.lead.requests == [] and meta["escalated"] is False


def test_metrics_carry_each_specialists_return_on_investment(api: Api) -> None:
    ask(api, "understudy-math", SHORT_QUESTION)  # accepted: what the lead would have cost, saved
    scraped = httpx.get(f"{api.url}/metrics").text
    figures = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in scraped.splitlines()
        if line.startswith("understudy_specialist_roi_")
    }
    assert figures['understudy_specialist_roi_saved_usd{specialist="math"}'] > 0
    assert figures['understudy_specialist_roi_net_usd{specialist="math"}'] > 0
    assert figures['understudy_specialist_roi_saved_usd{specialist="code"}'] == 0


ALL_MODELS = [
    "understudy-llm",
    "understudy-router",
    "understudy-cascade",
    "understudy-slm",
    "understudy-math",
    "understudy-email",
    "understudy-code",
]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_streaming_in_openai_chunks_with_usage_last(api: Api, model: str) -> None:
    api.lead.enqueue(reply("The answer is 42 indeed"))
    # Asked for the number only, the specialists end their answers within their 24 tokens, so
    # the true finish reason is "stop" for every model.
    stream = ask(api, model, SHORT_QUESTION, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(finals) == 1
    meta = finals[0].model_extra["understudy"]
    assert meta["run_id"] and chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    if model in ("understudy-llm", "understudy-router"):
        assert text == "The answer is 42 indeed"  # the lead's tokens, as they came
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    else:  # a specialist answered: its text, in one piece
        assert text and meta["specialists"] and meta["route"] != "lead"
        assert meta["route"].endswith(meta["specialists"][0])


@pytest.mark.parametrize(
    ("model", "specialist"), [("understudy-email", "email"), ("understudy-code", "code")]
)
def test_each_specialist_model_answers_non_streaming(api: Api, model: str, specialist: str) -> None:
    completion = ask(api, model, "Write a short note to Sam about lunch.")
    meta = understudy(completion)
    assert meta["route"] == f"slm:{specialist}" and completion.choices[0].message.content
    assert completion.usage.completion_tokens > 0 and api.lead.requests == []


def test_multi_turn_reaches_the_lead_whole(api: Api) -> None:
    api.lead.enqueue(reply("You said your name is Ada."))
    completion = api.client().chat.completions.create(
        model="understudy-llm",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
        ],
    )
    assert completion.choices[0].message.content == "You said your name is Ada."
    sent = api.lead.requests[-1]["messages"]
    assert [m["content"] for m in sent[-3:]] == [
        "My name is Ada.",
        "Hello Ada.",
        "What is my name?",
    ]


def test_a_lead_share_is_honoured_or_says_why_not(api: Api) -> None:
    """The cost/quality knob, as a model name and in ``extra_body``: with no difficulty model
    trained yet (no cascade transcripts), cascade runs as ever and the reply says so."""
    api.lead.enqueue(reply("42"), reply("42"))
    by_name = understudy(ask(api, "understudy-cascade-0.3"))
    in_body = understudy(
        ask(api, "understudy-cascade", extra_body={"understudy": {"lead_share": 0.25}})
    )
    for block, share in ((by_name, 0.3), (in_body, 0.25)):
        difficulty = block["difficulty"]
        assert difficulty["target_lead_share"] == share
        assert difficulty["skipped"] is False and difficulty["threshold"] is None
        assert "no difficulty model" in difficulty["reason"]
        assert not block["route"].startswith("cascade:skipped")
    assert understudy(ask(api, "understudy-math"))["difficulty"] is None


def test_feedback_is_recorded(api: Api) -> None:
    api.lead.enqueue(reply("ok"))
    run_id = understudy(ask(api, "understudy-llm", "hi"))["run_id"]
    headers = {"Authorization": f"Bearer {api.key}"}
    good = httpx.post(
        f"{api.url}/v1/feedback",
        headers=headers,
        json={"run_id": run_id, "score": 1, "comment": "great"},
    )
    assert good.status_code == 200 and good.json()["run_id"] == run_id
    missing = httpx.post(
        f"{api.url}/v1/feedback", headers=headers, json={"run_id": "nope", "score": 1}
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "run_not_found"


def test_401_without_a_valid_key(api: Api) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        api.client("us-wrong").models.list()
    assert info.value.status_code == 401
    bare = httpx.post(f"{api.url}/v1/chat/completions", json={})
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"


def test_429_with_retry_after_when_a_key_is_over_its_limit(api: Api) -> None:
    async def limited_key() -> str:
        keys = await open_store(KeyStore, api.settings.database_url)
        _, plaintext = await keys.create("tight", requests_per_minute=2)
        await keys.database.close()
        return plaintext

    key = asyncio.run(limited_key())
    client = api.client(key)
    client.models.list()
    client.models.list()
    with pytest.raises(openai.RateLimitError) as info:
        client.models.list()
    retry_after = int(info.value.response.headers["retry-after"])
    assert 0 < retry_after <= 60


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]},
            404,
            "model_not_found",
        ),
        ({"model": "understudy-llm"}, 400, None),
        ({"model": "understudy-llm", "messages": []}, 400, None),
        (
            {"model": "understudy-llm", "messages": [{"role": "assistant", "content": "x"}]},
            400,
            None,
        ),
        ({"model": "understudy-llm", "messages": [{"role": "user", "content": 5}]}, 400, None),
        (
            {
                "model": "understudy-llm",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 10**6,
            },
            400,
            "max_tokens_too_large",
        ),
        (
            {"model": "understudy-llm", "messages": [{"role": "user", "content": "x" * 300_000}]},
            413,
            None,
        ),
        (
            {"model": "understudy-llm", "messages": [{"role": "user", "content": "hi"}] * 101},
            400,
            None,
        ),
        (
            {"model": "understudy-llm", "messages": [{"role": "user", "content": "x" * 1_100_000}]},
            413,
            "request_too_large",
        ),
    ],
)
def test_bad_requests_get_openai_shaped_errors(
    api: Api, body: dict, status: int, code: str | None
) -> None:
    response = httpx.post(
        f"{api.url}/v1/chat/completions", headers={"Authorization": f"Bearer {api.key}"}, json=body
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and set(error) >= {"message", "type", "param", "code"}
    if code:
        assert error["code"] == code
    assert api.lead.requests == []


USER_HI = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "understudy-llm", "messages": [USER_HI] * 101}, 400, "too_many_messages"),
        (
            {"model": "understudy-llm", "messages": [{"role": "user", "content": "x" * 200_001}]},
            413,
            "request_too_large",
        ),
        (
            {"model": "understudy-llm", "messages": [USER_HI], "max_completion_tokens": 4097},
            400,
            "max_tokens_too_large",
        ),
        ({"model": "understudy-nonexistent", "messages": [USER_HI]}, 404, "model_not_found"),
        (
            {
                "model": "understudy-llm",
                "messages": [USER_HI, {"role": "assistant", "content": "x"}],
            },
            400,
            "invalid_body",
        ),
        (
            {"model": "understudy-llm", "messages": [{"role": "user", "content": 5}]},
            400,
            "invalid_body",
        ),
        ({"model": "understudy-llm", "messages": []}, 400, "invalid_body"),
        ({"model": "understudy-llm", "messages": [USER_HI], "n": 2}, 400, "invalid_body"),
        ({"model": "understudy-llm", "messages": [USER_HI], "tools": []}, 400, "invalid_body"),
        (
            {
                "model": "understudy-llm",
                "messages": [USER_HI],
                "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
            },
            400,
            "invalid_body",
        ),
        (
            {"model": "understudy-llm", "messages": [{"role": "user", "content": "   "}]},
            400,
            "invalid_request",
        ),
        (
            {"model": "understudy-llm", "messages": [USER_HI], "understudy": {"lead_share": 0.3}},
            400,
            "unsupported_parameter",
        ),
        (
            {
                "model": "understudy-cascade-0.3",
                "messages": [USER_HI],
                "understudy": {"lead_share": 0.5},
            },
            400,
            "conflicting_lead_share",
        ),
        ({"model": "understudy-cascade-1.5", "messages": [USER_HI]}, 404, "model_not_found"),
        (
            {"model": "understudy-cascade", "messages": [USER_HI], "understudy": {"lead_share": 2}},
            400,
            "invalid_body",
        ),
    ],
)
def test_batch_validation_refuses_what_the_api_refuses_in_the_same_words(
    api: Api, body: dict, status: int, code: str
) -> None:
    response = httpx.post(
        f"{api.url}/v1/chat/completions", headers={"Authorization": f"Bearer {api.key}"}, json=body
    )
    assert response.status_code == status, response.text
    refused = response.json()["error"]
    assert refused["code"] == code

    served = served_models(api.settings.catalog())
    limits = api.settings.api.request_limits
    with pytest.raises(ProtocolError) as caught:
        check_body(body, served=served, limits=limits, job_mode=Mode.cascade)
    assert (caught.value.status_code, caught.value.code) == (status, code)
    assert caught.value.message == refused["message"]
    line = {"custom_id": "q", "method": "POST", "url": "/v1/chat/completions", "body": body}
    problem = check_line(
        json.dumps(line).encode(), 7, served=served, limits=limits, job_mode=Mode.cascade
    )
    assert isinstance(problem, Problem)
    assert (problem.code, problem.message, problem.param) == (
        code,
        refused["message"],
        refused["param"],
    )
    assert api.lead.requests == []


def test_invalid_json_is_400_not_500(api: Api) -> None:
    response = httpx.post(
        f"{api.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert response.status_code == 400 and "error" in response.json()


@pytest.mark.parametrize("stream", ["yes", "true", 1, 0])
def test_stream_must_be_a_json_boolean(api: Api, stream: object) -> None:
    body = {"model": "understudy-llm", "messages": [USER_HI], "stream": stream}
    response = httpx.post(
        f"{api.url}/v1/chat/completions", headers={"Authorization": f"Bearer {api.key}"}, json=body
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "stream"
    assert api.lead.requests == []


def test_a_chunked_body_over_the_limit_is_413(api: Api) -> None:
    """No Content-Length to refuse early: the body is counted as it streams in."""
    block = b"x" * 65_536

    def body() -> Iterator[bytes]:
        yield b'{"model": "understudy-llm", "messages": [{"role": "user", "content": "'
        for _ in range(20):  # 1.3 MB, over the 1 MB default
            yield block
        yield b'"}]}'

    response = httpx.post(
        f"{api.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"},
        content=body(),
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "request_too_large"
    assert api.lead.requests == []


def test_serve_with_workers_aggregates_metrics(
    home_with_smollm2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`understudy serve --workers 2`: both workers answer, /metrics aggregates them."""
    lead = ScriptedLead([reply("ok")], repeat_last=True).start()
    env = {
        "UNDERSTUDY_LEAD_BASE_URL": lead.base_url,
        "UNDERSTUDY_LEAD_MODEL": "gpt-4o-mini",
        "UNDERSTUDY_API_AUTH": "false",
        "UNDERSTUDY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    }
    try:
        with understudy_serve("--workers", "2", env=env) as (_, url):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            for _ in range(6):
                answer = client.chat.completions.create(
                    model="understudy-llm", messages=[{"role": "user", "content": "hi"}]
                )
                assert answer.choices[0].message.content == "ok"
            metrics = httpx.get(f"{url}/metrics", timeout=5).text
    finally:
        lead.stop()
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("understudy_requests_total{") and 'model="understudy-llm"' in line
    )
    assert counted == 6  # whichever worker answered the scrape, it saw all six


def test_tokens_per_day_counts_what_completions_spent(api: Api) -> None:
    async def key_with_tiny_budget() -> str:
        keys = await open_store(KeyStore, api.settings.database_url)
        _, plaintext = await keys.create("budget", tokens_per_day=1)
        await keys.database.close()
        return plaintext

    client = api.client(asyncio.run(key_with_tiny_budget()))
    api.lead.enqueue(reply("ok"), reply("ok"))
    client.chat.completions.create(
        model="understudy-llm", messages=[{"role": "user", "content": "hi"}]
    )
    with pytest.raises(openai.RateLimitError) as info:  # the first reply spent the day's budget
        client.chat.completions.create(
            model="understudy-llm", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert int(info.value.response.headers["retry-after"]) > 60


def test_max_tokens_is_honoured(api: Api) -> None:
    completion = ask(api, "understudy-math", "Count from 1 to 50.", max_tokens=2)
    assert completion.usage.completion_tokens == 2


# ---------------------------------------------------------------- honest degradation (issue 12)

UPSTREAM_SECRET = "upstream-internal-detail-sk-42"
"""Text only the upstream's error carries: it must never reach a client."""


def events(api: Api, body: dict) -> tuple[httpx.Response, list[dict | str]]:
    """A raw streamed reply: its response (headers) and its events, ``[DONE]`` as a string."""
    with httpx.stream(
        "POST",
        f"{api.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {api.key}"},
        json={**body, "stream": True},
        timeout=120,
    ) as response:
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    return response, [line if line == "[DONE]" else json.loads(line) for line in lines]


def streamed_text(received: list[dict | str]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in received
        if isinstance(e, dict) and e.get("choices")
    )


async def recorded_run(api: Api, run_id: str):
    store = await open_store(TranscriptStore, api.settings.database_url)
    try:
        return await store.get_run(run_id)
    finally:
        await store.database.close()


def test_a_degraded_answer_is_marked_in_a_header_and_the_body(api: Api) -> None:
    api.lead.enqueue(failure(500, content=UPSTREAM_SECRET))
    response = api.client().chat.completions.with_raw_response.create(
        model="understudy-router", messages=[{"role": "user", "content": "What is 12 + 30?"}]
    )
    completion = response.parse()
    assert response.headers["x-understudy-degraded"] == "true"
    assert understudy(completion)["degraded"] is True and completion.choices[0].message.content
    assert response.headers["x-understudy-run-id"] == understudy(completion)["run_id"]
    assert UPSTREAM_SECRET not in response.text

    api.lead.enqueue(reply("42"))
    clean = api.client().chat.completions.with_raw_response.create(
        model="understudy-router", messages=[{"role": "user", "content": "What is 12 + 30?"}]
    )
    assert "x-understudy-degraded" not in clean.headers and clean.headers["x-understudy-run-id"]


def test_policy_error_answers_503_degraded_and_still_records_the_run(api: Api) -> None:
    api.lead.enqueue(failure(429, content=UPSTREAM_SECRET))
    with pytest.raises(openai.APIStatusError) as info:
        ask(api, "understudy-router", extra_body={"understudy": {"on_degraded": "error"}})
    response = info.value.response
    error = response.json()["error"]
    assert response.status_code == 503 and error["code"] == "degraded"
    assert error["message"].startswith("The lead model is unavailable (rate limited)")
    assert UPSTREAM_SECRET not in response.text
    assert response.headers["x-understudy-degraded"] == "true"
    run = asyncio.run(recorded_run(api, response.headers["x-understudy-run-id"]))
    assert run.degraded and run.answer and run.failure.kind is FailureKind.lead_rate_limited
    assert UPSTREAM_SECRET in str(run.error)  # the transcript keeps the detail, for operators


def test_an_unknown_degradation_policy_is_refused_by_name(api: Api) -> None:
    body = {"model": "understudy-llm", "messages": [USER_HI], "understudy": {"on_degraded": "x"}}
    response = httpx.post(
        f"{api.url}/v1/chat/completions", headers={"Authorization": f"Bearer {api.key}"}, json=body
    )
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == "understudy.on_degraded"
    body["understudy"] = {"on_degradd": "error"}
    response = httpx.post(
        f"{api.url}/v1/chat/completions", headers={"Authorization": f"Bearer {api.key}"}, json=body
    )
    assert response.status_code == 400 and "understudy.on_degradd" in response.text
    assert api.lead.requests == []


def test_a_stream_carries_only_the_answering_turns_text(api: Api) -> None:
    api.lead.enqueue(
        tool_calls(("calculator", {"expression": "12+30"}), content="Let me check that."),
        reply("It is 42"),
    )
    response, received = events(api, {"model": "understudy-router", "messages": [USER_HI]})
    assert streamed_text(received) == "It is 42" and received[-1] == "[DONE]"
    final = received[-2]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["understudy"]["degraded"] is False
    assert response.headers["x-understudy-run-id"] == final["understudy"]["run_id"]


def test_a_run_that_degrades_after_its_answer_began_streaming_ends_with_an_error(
    api: Api,
) -> None:
    # The answering turn streams, then its usage is over the token budget: the lead failed
    # after its text went out, and the fallback's answer must not be spliced onto it.
    api.lead.enqueue(reply("It is 42", prompt_tokens=10**6))
    response, received = events(api, {"model": "understudy-router", "messages": [USER_HI]})
    assert streamed_text(received) == "It is 42"
    error = received[-2]["error"]
    assert error["code"] == "degraded" and error["status"] == 503 and received[-1] == "[DONE]"
    assert not any(
        isinstance(e, dict) and e.get("choices") and e["choices"][0]["finish_reason"]
        for e in received
    )
    run = asyncio.run(recorded_run(api, response.headers["x-understudy-run-id"]))
    assert run.degraded and run.answer and run.answer not in streamed_text(received)


def test_a_degraded_stream_sends_the_fallback_whole_or_the_error_the_policy_asks(
    api: Api,
) -> None:
    api.lead.enqueue(failure(500, content=UPSTREAM_SECRET))
    _, received = events(api, {"model": "understudy-router", "messages": [USER_HI]})
    final = received[-2]
    assert final["understudy"]["degraded"] is True and streamed_text(received)
    api.lead.enqueue(failure(500, content=UPSTREAM_SECRET))
    body = {
        "model": "understudy-router",
        "messages": [USER_HI],
        "understudy": {"on_degraded": "error"},
    }
    _, received = events(api, body)
    assert received[-2]["error"]["code"] == "degraded" and streamed_text(received) == ""
    assert UPSTREAM_SECRET not in json.dumps(received)


def test_a_truncated_draft_is_escalated_and_slm_reports_length(api: Api) -> None:
    api.lead.enqueue(reply("42"))
    cascade = ask(api, "understudy-cascade", max_tokens=2)
    meta = understudy(cascade)
    assert meta["route"] == "cascade:escalated:math" and meta["escalated"] is True
    assert cascade.choices[0].message.content == "42"
    assert "cut off at its token limit" in str(api.lead.requests[0]["messages"])
    slm = ask(api, "understudy-slm", max_tokens=2)
    assert slm.choices[0].finish_reason == "length" and slm.usage.completion_tokens == 2
    _, received = events(api, {"model": "understudy-math", "messages": [USER_HI], "max_tokens": 2})
    assert received[-2]["choices"][0]["finish_reason"] == "length"


def test_upstream_error_text_never_reaches_the_client(api: Api) -> None:
    api.lead.enqueue(failure(500, content=UPSTREAM_SECRET))
    with pytest.raises(openai.APIStatusError) as info:
        ask(api, "understudy-llm")
    error = info.value.response.json()["error"]
    assert info.value.status_code == 503 and error["code"] == "upstream_unavailable"
    assert error["message"] == "No answer was produced: the lead model is unavailable."
    api.lead.enqueue(failure(500, content=UPSTREAM_SECRET))
    _, received = events(api, {"model": "understudy-llm", "messages": [USER_HI]})
    assert received[-2]["error"]["code"] == "upstream_unavailable"
    assert UPSTREAM_SECRET not in json.dumps(received)


def test_a_paused_specialist_is_refused_by_name_and_not_listed(
    home_with_smollm2: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def pause() -> None:
        registry = await open_store(RegistryStore, database_url)
        await registry.pause("email", reason="complaints", actor="test")
        await registry.database.close()

    asyncio.run(pause())
    with serving(database_url, monkeypatch) as api:
        names = {m.id for m in api.client().models.list()}
        assert "understudy-email" not in names and "understudy-math" in names
        response = httpx.post(
            f"{api.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {api.key}"},
            json={"model": "understudy-email", "messages": [USER_HI]},
        )
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("specialist_paused", "model")
        assert "understudy specialists resume email" in error["message"]
        assert api.lead.requests == []
