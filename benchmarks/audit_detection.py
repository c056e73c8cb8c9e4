"""How fast live audits catch a drifting specialist, and what catching it costs, against the
audit rate (issue 14, scenario b).

An active version agrees with the lead 95 % of the time until it has had a full window of
audits, then 60 %. The real audit rate, window, figures and drift verdict
(:mod:`orchestrator.audits.simulation`) judge it after every audit. For each audit floor (the
rate a version with a tight interval is audited at; the ceiling stays 10 % unless the floor
is above it) it prints the detection delay — audits, eligible requests, and the lead's cost of
those audits at ``--lead-cost`` dollars an audit — mean and worst over ``--seeds`` seeds.

    python benchmarks/audit_detection.py [--seeds 40] [--floors 0.005,0.01,0.02,0.05,0.1]
                                         [--lead-cost 0.002]
"""

from __future__ import annotations

import argparse
from statistics import mean

from orchestrator.audits.policy import AuditPolicy
from orchestrator.audits.simulation import ScriptedVersion, simulate
from orchestrator.audits.verdicts import LifecyclePolicy

CEILING = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--floors", default="0.005,0.01,0.02,0.05,0.1")
    parser.add_argument("--lead-cost", type=float, default=0.002, help="USD per audit")
    args = parser.parse_args()
    policy = LifecyclePolicy()
    print(
        f"drift 95 % -> 60 % after a full window; bar {policy.target_precision:.2f}, "
        f"decision confidence {policy.confidence:.2f}, {args.seeds} seeds, "
        f"${args.lead_cost:g} a lead audit"
    )
    print(
        f"{'floor':>6} {'audits mean':>11} {'worst':>6} {'requests mean':>13} {'worst':>7} "
        f"{'audit $ mean':>12} {'worst':>7} {'missed':>6}"
    )
    for floor in (float(f) for f in args.floors.split(",")):
        audits = AuditPolicy(rate=max(CEILING, floor), floor=floor)
        delays = []
        for seed in range(args.seeds):
            run = simulate(
                ScriptedVersion(0.95, drifted=0.60, drift_after_audits=audits.window),
                seed=seed,
                requests=int(50 * audits.window / floor),
                audits=audits,
                policy=policy,
            )
            delays.append(run.delay)
        caught = [delay for delay in delays if delay is not None]
        if not caught:
            print(f"{floor:>6.3f} {'never caught':>11}")
            continue
        spent = [a for a, _ in caught]
        seen = [r for _, r in caught]
        print(
            f"{floor:>6.3f} {mean(spent):>11.1f} {max(spent):>6} {mean(seen):>13.0f} "
            f"{max(seen):>7} {mean(spent) * args.lead_cost:>12.3f} "
            f"{max(spent) * args.lead_cost:>7.3f} {len(delays) - len(caught):>6}"
        )


if __name__ == "__main__":
    main()
