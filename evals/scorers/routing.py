"""Routing accuracy: did the pre-router send the prompt to the right specialist (or to none)?

The orchestrator reports its route as text (see ``RunResult.route``); the pre-router's decision
is in it for the modes that consult the pre-router first: ``cascade:accepted:<specialist>`` and
``cascade:escalated:<specialist>`` (a specialist was chosen), ``cascade:lead`` (none fitted),
``slm:<specialist>`` (``slm`` always picks the best, so it never says none). A bare decision
(``math``, ``none``) is accepted as well, for callers that run the pre-router alone. ``lead`` and
``router`` runs make no pre-router decision, so they cannot be scored.
"""

from __future__ import annotations

from evals.samples import Score

NONE = "none"
"""The label of prompts no specialist should take."""


def prerouter_decision(route: str | None) -> str | None:
    """The pre-router's choice in ``route`` (a specialist name or ``"none"``), or ``None`` when
    the route carries no decision."""
    if not route:
        return None
    parts = route.split(":")
    match parts:
        case ["cascade", "lead"]:
            return NONE
        case ["cascade", ("accepted" | "escalated"), specialist] | ["slm", specialist]:
            return specialist
        case [decision] if decision not in ("lead", "router", "llm"):
            return decision
    return None


def score_route(route: str | None, label: str) -> Score:
    """1 when the pre-router's decision in ``route`` is ``label``, else 0."""
    decision = prerouter_decision(route)
    details: dict[str, object] = {"decision": decision, "expected": label, "route": route}
    if decision is None:
        details["error"] = (
            f"route {route!r} carries no pre-router decision; run this suite in cascade mode"
        )
    return Score(float(decision == label), details)
