"""The routing suite's report: precision per specialist, recall and the confusion matrix, from
the scored items' decisions, in report.md and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

from evals.harness import EvalOutcome, EvalPlan
from evals.report import summarise, write_report
from evals.scorers.routing import score_route
from orchestrator.modes import Mode
from tests.evals.test_metrics import item

ROUTES = [  # (label, the cascade's route)
    ("math", "cascade:accepted:math"),
    ("math", "cascade:lead"),
    ("email", "cascade:escalated:email"),
    ("none", "cascade:accepted:email"),
    ("none", "cascade:lead"),
]


def test_the_routing_report_has_precision_recall_and_the_confusion_matrix(tmp_path: Path) -> None:
    items = []
    for index, (label, route) in enumerate(ROUTES):
        score = score_route(route, label)
        items.append(
            item(
                f"routing:{index}",
                suite="routing",
                route=route,
                score=score.value,
                score_details=score.details,
            )
        )
    outcome = EvalOutcome(
        plan=EvalPlan(suite="routing", modes=(Mode.cascade,)),
        samples=[],
        fingerprint={},
        config_hashes={"cascade": "h"},
        items={"cascade": items},
        ran=len(items),
        reused=0,
    )
    write_report(outcome, summarise(outcome), tmp_path)
    routing = json.loads((tmp_path / "summary.json").read_text())["routing"]["cascade"]
    assert routing["accuracy"] == 3 / 5
    assert routing["precision"] == {"email": 0.5, "math": 1.0}
    assert routing["recall"] == {"email": 1.0, "math": 0.5, "none": 0.5}
    assert routing["confusion"]["none"] == {"email": 1, "math": 0, "none": 1}
    report = (tmp_path / "report.md").read_text()
    assert "## Routing (cascade): precision per specialist, recall, confusion" in report
    assert "label \\ decision" in report
