"""``understudy ask``: one question to one specialist, with its confidence and cost."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated, Any

import typer

from serving.cli.output import console, log_to_stderr, print_json
from serving.runtime import build_backend
from serving.settings import get_settings
from specialists.backend import Generation


class BackendChoice(StrEnum):
    local = "local"
    vllm = "vllm"


def ask(
    question: Annotated[str, typer.Argument(help="The request, in plain words.")],
    specialist: Annotated[
        str,
        typer.Option("--specialist", "-s", help="Which understudy answers: math, email, code, …"),
    ],
    backend: Annotated[
        BackendChoice | None,
        typer.Option(help="Override UNDERSTUDY_SLM_BACKEND for this call."),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, max=4096, help="Cap on answer tokens.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Ask a specialist directly and print its answer, confidence, tokens and latency.

    Example: understudy ask "Write a Python function that reverses a string." --specialist code
    """
    settings = get_settings()
    spec = settings.catalog().get(specialist)  # fails fast, listing the known specialists
    generation = asyncio.run(_ask(settings, spec, question, backend, max_tokens))
    validation = spec.validate(generation.text)
    if as_json:
        print_json(
            _as_dict(generation, backend or settings.slm.backend, validation.ok, validation.reason)
        )
        return
    console.print(generation.text, highlight=False, markup=False)
    check = "valid" if validation.ok else f"invalid: {validation.reason}"
    confidence, usage = generation.confidence, generation.usage
    console.print(
        f"[dim]{spec.name} · {generation.model} · confidence {confidence.mean_prob:.2f} "
        f"(min {confidence.min_prob:.2f}) · {usage.prompt_tokens}+{usage.completion_tokens} "
        f"tokens · {generation.latency_s * 1000:.0f} ms · {check}[/]",
        highlight=False,
    )


async def _ask(settings, spec, question, backend, max_tokens) -> Generation:
    slm = build_backend(settings, backend=backend.value if backend else None, log=log_to_stderr)
    try:
        return await slm.generate(
            spec, [{"role": "user", "content": question}], max_tokens=max_tokens
        )
    finally:
        await slm.aclose()


def _as_dict(generation: Generation, backend: str, valid: bool, reason: str) -> dict[str, Any]:
    return {
        "answer": generation.text,
        "specialist": generation.specialist,
        "backend": str(backend),
        "model": generation.model,
        "confidence": {
            "mean_prob": round(generation.confidence.mean_prob, 6),
            "min_prob": round(generation.confidence.min_prob, 6),
        },
        "usage": {
            "prompt_tokens": generation.usage.prompt_tokens,
            "completion_tokens": generation.usage.completion_tokens,
            "total_tokens": generation.usage.total_tokens,
        },
        "latency_ms": round(generation.latency_s * 1000, 1),
        "finish_reason": generation.finish_reason,
        "valid": valid,
        "invalid_reason": reason or None,
    }
