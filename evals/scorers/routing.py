"""Routing accuracy: did the pre-router send the prompt to the right specialist (or to none)?

The orchestrator reports its route as text (see ``RunResult.route``); the pre-router's decision
is in it for the modes that consult the pre-router first: ``cascade:accepted:<specialist>`` and
``cascade:escalated:<specialist>`` (a specialist was chosen), ``cascade:lead`` (none fitted),
``slm:<specialist>`` (``slm`` always picks the best, so it never says none). A bare decision
(``math``, ``none``) is accepted as well, for callers that run the pre-router alone. ``lead`` and
``router`` runs make no pre-router decision, so they cannot be scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
        case ["cascade", ("accepted" | "escalated" | "skipped"), specialist] | ["slm", specialist]:
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


@dataclass(frozen=True, slots=True)
class RoutingFigures:
    """How a router's decisions compare with the labels: what the issue asks to report."""

    classes: tuple[str, ...]
    """Report order: the labels' and decisions' classes, ``none`` last."""
    accuracy: float
    precision: dict[str, float | None]
    """Per specialist: the share of prompts sent to it that were its own (``None``: none sent).
    ``none`` has no precision here: keeping a prompt with the lead is never the costly error."""
    recall: dict[str, float]
    """Per class: the share of its prompts routed to it."""
    confusion: dict[str, dict[str, int]]
    """``confusion[label][decision]``: how many prompts of ``label`` went to ``decision``."""

    @property
    def min_precision(self) -> float:
        """The lowest specialist precision (1.0 when no prompt went to any specialist)."""
        values = [p for p in self.precision.values() if p is not None]
        return min(values, default=1.0)

    def as_dict(self) -> dict[str, object]:
        return {
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "confusion": self.confusion,
        }

    def lines(self) -> list[str]:
        """A plain-text table: precision and recall per class, then the confusion matrix."""
        width = max(8, *(len(c) for c in self.classes))
        out = [f"accuracy {self.accuracy:.3f}", ""]
        out.append(f"{'class':<{width}}  precision  recall")
        for name in self.classes:
            precision = self.precision.get(name)
            shown = "-" if precision is None else f"{precision:.3f}"
            out.append(f"{name:<{width}}  {shown:>9}  {self.recall[name]:6.3f}")
        out += ["", "label \\ decision  " + "  ".join(f"{c:>{width}}" for c in self.classes)]
        for label in self.classes:
            cells = "  ".join(f"{self.confusion[label][c]:>{width}}" for c in self.classes)
            out.append(f"{label:<16}  {cells}")
        return out


def routing_figures(labels: Sequence[str], decisions: Sequence[str]) -> RoutingFigures:
    """Accuracy, precision per specialist, recall per class and the confusion matrix."""
    if len(labels) != len(decisions):
        raise ValueError(f"{len(labels)} labels but {len(decisions)} decisions")
    seen = dict.fromkeys([*labels, *decisions])
    classes = (*sorted(c for c in seen if c != NONE), NONE)
    confusion = {a: {b: 0 for b in classes} for a in classes}
    for label, decision in zip(labels, decisions, strict=True):
        confusion[label][decision] += 1
    precision: dict[str, float | None] = {}
    for name in classes[:-1]:
        sent = sum(confusion[label][name] for label in classes)
        precision[name] = confusion[name][name] / sent if sent else None
    recall = {
        name: confusion[name][name] / total if (total := sum(confusion[name].values())) else 0.0
        for name in classes
    }
    correct = sum(confusion[name][name] for name in classes)
    return RoutingFigures(
        classes=classes,
        accuracy=correct / len(labels) if labels else 0.0,
        precision=precision,
        recall=recall,
        confusion=confusion,
    )


def figures_from_details(details: Sequence[dict[str, object]]) -> RoutingFigures | None:
    """:func:`routing_figures` over scored items' details (``expected`` and ``decision``, as
    :func:`score_route` writes them); ``None`` when no item carries a decision."""
    pairs = [
        (str(d["expected"]), str(d["decision"]))
        for d in details
        if d.get("decision") is not None and d.get("expected") is not None
    ]
    if not pairs:
        return None
    return routing_figures([label for label, _ in pairs], [decision for _, decision in pairs])
