"""Model names: which mode (and specialist) each ``model`` of a chat request means.

``understudy-router``, ``-cascade``, ``-llm``, ``-slm`` (the pre-router picks the specialist),
and ``understudy-<specialist>`` for one specialist directly. ``understudy-cascade-<share>``
(``understudy-cascade-0.3``) is cascade with a target share of lead calls, in the spirit of
RouteLLM's ``router-mf-0.116`` (:mod:`orchestrator.difficulty`). Batch lines may also name any
other model (an OpenAI file's ``gpt-4o-mini``): those run in the job's mode.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.modes import Mode
from serving.protocol.errors import ProtocolError
from specialists.catalog import Catalog

MODEL_PREFIX = "understudy-"
MODE_MODELS = {f"{MODEL_PREFIX}{mode.value}": mode for mode in Mode}
CASCADE_MODEL = f"{MODEL_PREFIX}{Mode.cascade.value}"
_LEAD_SHARE_SUFFIX = re.compile(
    rf"^{re.escape(CASCADE_MODEL)}-(0(?:\.\d{{1,4}})?|1(?:\.0{{1,4}})?)$"
)

ServedModels = Mapping[str, tuple[Mode, str | None]]
"""Model name → the mode and specialist it means."""


def served_models(
    catalog: Catalog, paused: Iterable[str] = ()
) -> dict[str, tuple[Mode, str | None]]:
    """Every model name Understudy answers to, with the mode and specialist it means.

    Args:
        paused: Specialists an operator paused. Requests are admitted with them so the run
            refuses them by name (409 ``specialist_paused``, with the command that resumes
            them) rather than as a model that does not exist; listings leave them out.
    """
    models: dict[str, tuple[Mode, str | None]] = {
        name: (mode, None) for name, mode in MODE_MODELS.items()
    }
    for name in [*catalog.names, *sorted(paused)]:
        models.setdefault(f"{MODEL_PREFIX}{name}", (Mode.slm, name))
    return models


def model_object(name: str, *, created: int) -> dict[str, Any]:
    """``name`` as OpenAI's ``model`` object (``/v1/models`` and ``/v1/models/{id}``)."""
    return {"id": name, "object": "model", "created": created, "owned_by": "understudy"}


def split_lead_share(model: str) -> tuple[str, float | None]:
    """``understudy-cascade-0.3`` → (``understudy-cascade``, 0.3); other names unchanged, with
    ``None``."""
    match = _LEAD_SHARE_SUFFIX.match(model)
    return (CASCADE_MODEL, float(match.group(1))) if match else (model, None)


def resolve_model(
    model: str, served: ServedModels, *, fallback: Mode | None = None
) -> tuple[Mode, str | None]:
    """The mode and specialist ``model`` means.

    Args:
        fallback: The mode of a name that is not Understudy's (``gpt-4o-mini``); ``None``
            refuses such names (the chat API). An ``understudy-`` name must always be served.

    Raises:
        ProtocolError: 404 ``model_not_found``, listing the served names.
    """
    model = split_lead_share(model)[0]
    if model in served:
        return served[model]
    if fallback is not None and not model.startswith(MODEL_PREFIX):
        return fallback, None
    raise ProtocolError(
        404,
        "model_not_found",
        f"model {model!r} does not exist; available: {', '.join(served)}",
        param="model",
    )
