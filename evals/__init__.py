"""evals: suites and scorers (``evals.suites``, ``evals.scorers``), the harness that compares the
modes on identical samples (``evals.harness``, ``understudy eval run``) and the offline router
evaluation on RouteLLM's labels (``evals.router_eval``, ``understudy eval router``)."""
