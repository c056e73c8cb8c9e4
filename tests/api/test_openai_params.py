"""OpenAI's request parameters through the chat API, with the official ``openai`` client: each is
honoured (it reaches the scripted lead, or changes what SmolLM2 answers) or refused with a 400
naming it; ``null`` means the default; ``models.retrieve``; the routing metadata headers."""

from __future__ import annotations

import math

import httpx
import openai
import pytest

from orchestrator.testing import Step, reply, tool_calls
from specialists.backend import TokenLogprob
from tests.api.test_chat_api import SHORT_QUESTION, Api, ask, understudy
from tests.api.test_chat_api import api as api  # the server fixture, re-exported

EVERY_PARAMETER = {
    "temperature": 0.3,
    "top_p": 0.9,
    "seed": 7,
    "stop": ["END"],
    "presence_penalty": 0.5,
    "frequency_penalty": 0.25,
    "max_completion_tokens": 50,
    "logit_bias": {"50256": -100},
    "user": "user-1",
    "metadata": {"app": "tests"},
}


@pytest.mark.parametrize("model", ["understudy-llm", "understudy-router"])
def test_every_sampling_parameter_reaches_the_lead(api: Api, model: str) -> None:
    api.lead.enqueue(reply("Paris."))
    completion = ask(api, model, "Capital of France?", **EVERY_PARAMETER)
    assert completion.choices[0].message.content == "Paris."
    sent = api.lead.requests[-1]
    expected = dict(EVERY_PARAMETER)
    expected["max_tokens"] = expected.pop("max_completion_tokens")
    assert {key: sent.get(key) for key in expected} == expected


def test_the_older_max_tokens_reaches_the_lead_too(api: Api) -> None:
    api.lead.enqueue(reply("ok"))
    ask(api, "understudy-llm", max_tokens=11)
    assert api.lead.requests[-1]["max_tokens"] == 11


def test_stop_cuts_the_specialist_answer(api: Api) -> None:
    full = ask(api, "understudy-math", SHORT_QUESTION).choices[0].message.content
    assert full and full.find("=") > 0, full
    cut = ask(api, "understudy-math", SHORT_QUESTION, stop=["="])
    assert cut.choices[0].message.content == full[: full.find("=")].strip()
    assert cut.choices[0].finish_reason == "stop" and "=" not in cut.choices[0].message.content


def test_temperature_and_seed_reach_the_specialist(api: Api) -> None:
    question = "Write one sentence about the sea."
    greedy = ask(api, "understudy-email", question).choices[0].message.content
    sampled = [
        ask(api, "understudy-email", question, temperature=1.5, seed=seed)
        .choices[0]
        .message.content
        for seed in (11, 11, 12)
    ]
    assert sampled[0] == sampled[1]  # the seed makes the sample repeatable
    assert sampled[0] != greedy and sampled[2] != sampled[0]
    assert api.lead.requests == []


def test_explicit_nulls_mean_the_defaults(api: Api) -> None:
    api.lead.enqueue(reply("Paris."))
    body = {
        "model": "understudy-llm",
        "messages": [{"role": "user", "content": "Capital of France?"}],
        **dict.fromkeys(
            [
                "n",
                "stream",
                "stream_options",
                "temperature",
                "top_p",
                "stop",
                "seed",
                "presence_penalty",
                "frequency_penalty",
                "logit_bias",
                "logprobs",
                "top_logprobs",
                "max_tokens",
                "max_completion_tokens",
                "user",
                "metadata",
                "store",
                "understudy",
            ]
        ),
    }
    response = httpx.post(
        f"{api.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {api.key}"},
        json=body,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Paris."
    sent = api.lead.requests[-1]
    assert not {"temperature", "top_p", "stop", "seed", "user", "metadata"} & set(sent)


def test_the_openai_client_sends_nulls_that_are_accepted(api: Api) -> None:
    api.lead.enqueue(reply("Paris."))
    completion = ask(api, "understudy-llm", n=None, stream=None, temperature=None, seed=None)
    assert completion.choices[0].message.content == "Paris."


def test_a_message_field_no_model_would_see_is_refused_by_name(api: Api) -> None:
    named = {"role": "user", "content": "What is 2+2?", "name": "alice"}
    with pytest.raises(openai.BadRequestError) as info:
        api.client().chat.completions.create(model="understudy-llm", messages=[named])  # type: ignore[list-item]
    error = info.value.response.json()["error"]
    assert error["param"] == "messages.0" and "'name'" in error["message"]
    assert api.lead.requests == []


def test_an_assistant_message_echoed_back_whole_is_accepted(api: Api) -> None:
    """``messages.append(completion.choices[0].message)``: its empty fields mean nothing."""
    api.lead.enqueue(reply("4."), reply("5."))
    first = ask(api, "understudy-llm", "What is 2+2?")
    echoed = first.choices[0].message.model_dump() | {"annotations": [], "audio": None}
    second = api.client().chat.completions.create(
        model="understudy-llm",
        messages=[
            {"role": "user", "content": "What is 2+2?"},
            echoed,  # type: ignore[list-item]
            {"role": "user", "content": "And 2+3?"},
        ],
    )
    assert second.choices[0].message.content == "5."


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"frobnicate": 1}, "frobnicate"),
        ({"web_search_options": {}}, "web_search_options"),
    ],
)
def test_an_unknown_or_unsupported_parameter_is_a_400_naming_it(
    api: Api, extra: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(api, "understudy-llm", extra_body=extra)
    error = info.value.response.json()["error"]
    assert error["param"] == param and f"'{param}'" in error["message"]
    assert "unknown or unsupported parameter" in error["message"]
    assert api.lead.requests == []


@pytest.mark.parametrize(
    ("model", "arguments", "param"),
    [
        ("understudy-math", {"presence_penalty": 0.5}, "presence_penalty"),
        ("understudy-slm", {"logit_bias": {"11": 5}}, "logit_bias"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_what_a_route_cannot_honour_is_a_400_naming_it(
    api: Api, model: str, arguments: dict, param: str, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(api, model, SHORT_QUESTION, stream=stream, **arguments)
    error = info.value.response.json()["error"]
    assert (error["param"], error["code"]) == (param, "unsupported_parameter")
    assert api.lead.requests == []


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"n": 2}, "n"),
        ({"store": False}, "store"),
        ({"temperature": 2.5}, "temperature"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_values_that_cannot_be_honoured_are_refused_by_name(
    api: Api, arguments: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(api, "understudy-llm", **arguments)
    assert info.value.response.json()["error"]["param"] == param


def test_top_logprobs_need_logprobs(api: Api) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(api, "understudy-math", top_logprobs=2)
    assert "'top_logprobs' needs 'logprobs'" in info.value.response.json()["error"]["message"]


def test_logprobs_of_a_specialist_answer(api: Api) -> None:
    completion = ask(api, "understudy-math", SHORT_QUESTION, logprobs=True, top_logprobs=2)
    content = completion.choices[0].logprobs.content
    assert content and all(len(entry.top_logprobs) == 2 for entry in content)
    # The local backend's tokens end with SmolLM2's end-of-answer token, which confidence counts.
    tokens = "".join(entry.token for entry in content)
    assert tokens.strip().removesuffix("<|im_end|>") == completion.choices[0].message.content
    mean_prob = sum(math.exp(entry.logprob) for entry in content) / len(content)
    assert understudy(completion)["confidence"] == pytest.approx(mean_prob)
    assert all(entry.bytes == list(entry.token.encode()) for entry in content)

    plain = ask(api, "understudy-math", SHORT_QUESTION)
    assert plain.choices[0].logprobs is None


def test_logprobs_of_a_streamed_specialist_answer_come_with_its_text(api: Api) -> None:
    chunks = list(ask(api, "understudy-slm", SHORT_QUESTION, stream=True, logprobs=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    carrying = [c for c in chunks if c.choices and c.choices[0].logprobs]
    assert len(carrying) == 1 and carrying[0].choices[0].delta.content == text
    tokens = "".join(entry.token for entry in carrying[0].choices[0].logprobs.content)
    assert tokens.strip().removesuffix("<|im_end|>") == text


LEAD_TOKENS = tuple(
    TokenLogprob(token, logprob, (TokenLogprob(token, logprob), *alternatives))
    for token, logprob, alternatives in (
        ("Par", -0.25, (TokenLogprob("Lon", -1.5), TokenLogprob("Ber", -2.75))),
        ("is", -0.125, (TokenLogprob("ís", -3.0), TokenLogprob("iss", -4.5))),
        (".", -0.5, (TokenLogprob("!", -1.25), TokenLogprob(" is", -2.0))),
    )
)
"""The scripted lead's answer ``Paris.``, token by token, with three alternatives each."""


def lead_answer() -> Step:
    return reply("Paris.", logprobs=LEAD_TOKENS)


def assert_the_leads_logprobs(logprobs, top: int) -> None:
    """``logprobs`` (a choice's) are the scripted lead's, with ``top`` alternatives each."""
    content = logprobs.content
    assert [(e.token, e.logprob) for e in content] == [(t.token, t.logprob) for t in LEAD_TOKENS]
    assert [[(a.token, a.logprob) for a in e.top_logprobs] for e in content] == [
        [(a.token, a.logprob) for a in t.top[:top]] for t in LEAD_TOKENS
    ]
    assert all(entry.bytes == list(entry.token.encode()) for entry in content)


@pytest.mark.parametrize(("arguments", "top"), [({"top_logprobs": 2}, 2), ({}, 0)])
@pytest.mark.parametrize("model", ["understudy-llm", "understudy-router"])
def test_logprobs_of_a_lead_answer(api: Api, model: str, arguments: dict, top: int) -> None:
    if model == "understudy-router":  # the answer after a tool: the last turn's
        api.lead.enqueue(tool_calls(("calculator", {"expression": "1+1"})))
    api.lead.enqueue(lead_answer())
    completion = ask(api, model, "Capital of France?", logprobs=True, **arguments)
    assert completion.choices[0].message.content == "Paris."
    assert_the_leads_logprobs(completion.choices[0].logprobs, top)
    for sent in api.lead.requests:  # every lead call asks, as only the last turn is known
        assert (sent["logprobs"], sent["top_logprobs"]) == (True, top)

    api.lead.enqueue(lead_answer())
    plain = ask(api, "understudy-llm", "Capital of France?")
    assert plain.choices[0].logprobs is None
    assert not {"logprobs", "top_logprobs"} & set(api.lead.requests[-1])


@pytest.mark.parametrize("model", ["understudy-llm", "understudy-router"])
def test_logprobs_of_a_streamed_lead_answer_come_with_its_text(api: Api, model: str) -> None:
    """In one chunk, once the run has ended: clients (the agents SDK) read a chunk's logprobs
    only beside its content."""
    api.lead.enqueue(lead_answer())
    chunks = list(ask(api, model, "Capital of France?", stream=True, logprobs=True, top_logprobs=1))
    carrying = [c for c in chunks if c.choices and c.choices[0].logprobs]
    assert len(carrying) == 1 and carrying[0].choices[0].delta.content == "Paris."
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris."
    assert_the_leads_logprobs(carrying[0].choices[0].logprobs, 1)
    assert api.lead.requests[-1]["stream"] is True


def test_a_cascade_answers_with_the_logprobs_of_whoever_answered(api: Api) -> None:
    api.lead.enqueue(lead_answer())
    escalated = ask(api, "understudy-cascade", logprobs=True, top_logprobs=2, max_tokens=2)
    assert understudy(escalated)["route"] == "cascade:escalated:math"
    assert_the_leads_logprobs(escalated.choices[0].logprobs, 2)

    accepted = ask(api, "understudy-cascade", SHORT_QUESTION, logprobs=True, top_logprobs=2)
    assert understudy(accepted)["route"] == "cascade:accepted:math"
    content = accepted.choices[0].logprobs.content
    assert content and all(len(entry.top_logprobs) == 2 for entry in content)
    tokens = "".join(entry.token for entry in content)
    assert tokens.strip().removesuffix("<|im_end|>") == accepted.choices[0].message.content
    assert len(api.lead.requests) == 1


def test_a_lead_answer_without_the_logprobs_asked_for_is_not_passed_off(api: Api) -> None:
    api.lead.enqueue(reply("Paris."))  # a provider that gives no logprobs
    with pytest.raises(openai.APIStatusError) as info:
        ask(api, "understudy-llm", "Capital of France?", logprobs=True)
    assert info.value.status_code == 503
    assert "refused" in info.value.response.json()["error"]["message"]

    api.lead.enqueue(reply("42"))
    raw = api.client().chat.completions.with_raw_response.create(
        model="understudy-router",
        messages=[{"role": "user", "content": SHORT_QUESTION}],
        logprobs=True,
    )
    routed = raw.parse()
    assert raw.headers["x-understudy-degraded"] == "true" and understudy(routed)["degraded"]
    content = routed.choices[0].logprobs.content  # the specialist's fallback answer's own
    tokens = "".join(entry.token for entry in content)
    assert tokens.strip().removesuffix("<|im_end|>") == routed.choices[0].message.content


def test_every_listed_model_can_be_retrieved(api: Api) -> None:
    client = api.client()
    listed = list(client.models.list())
    assert listed
    for model in listed:
        assert client.models.retrieve(model.id) == model


@pytest.mark.parametrize("model_id", ["gpt-4o", "org/model:v1", "understudy-nope"])
def test_retrieving_an_unknown_model_is_an_openai_shaped_404(api: Api, model_id: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        api.client().models.retrieve(model_id)
    error = info.value.response.json()["error"]
    assert error["code"] == "model_not_found" and model_id in error["message"]


def assert_metadata_headers(headers: httpx.Headers, meta: dict) -> None:
    assert headers["x-understudy-run-id"] == meta["run_id"]
    assert headers["x-understudy-route"] == meta["route"]
    assert float(headers["x-understudy-cost-usd"]) == pytest.approx(meta["cost_usd"], abs=1e-8)
    assert float(headers["x-understudy-saved-usd"]) == pytest.approx(meta["saved_usd"], abs=1e-8)


@pytest.mark.parametrize("model", ["understudy-llm", "understudy-math"])
def test_routing_metadata_is_in_headers(api: Api, model: str) -> None:
    api.lead.enqueue(reply("42"))
    raw = api.client().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": SHORT_QUESTION}]
    )
    assert_metadata_headers(raw.headers, understudy(raw.parse()))
    assert "x-understudy-degraded" not in raw.headers


def test_a_streamed_specialist_answer_has_every_header(api: Api) -> None:
    raw = api.client().chat.completions.with_raw_response.create(
        model="understudy-slm", messages=[{"role": "user", "content": SHORT_QUESTION}], stream=True
    )
    final = [c for c in raw.parse() if c.choices and c.choices[0].finish_reason]
    assert_metadata_headers(raw.headers, final[0].model_extra["understudy"])


def test_a_streamed_lead_answer_has_its_run_id_and_its_cost_in_the_last_chunk(api: Api) -> None:
    api.lead.enqueue(reply("The answer is 42 indeed"))
    raw = api.client().chat.completions.with_raw_response.create(
        model="understudy-llm", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(raw.parse())
    meta = next(c for c in chunks if c.choices and c.choices[0].finish_reason).model_extra[
        "understudy"
    ]
    assert raw.headers["x-understudy-run-id"] == meta["run_id"]
    assert "x-understudy-cost-usd" not in raw.headers  # the run was still going
    assert meta["route"] == "lead" and meta["cost_usd"] > 0
