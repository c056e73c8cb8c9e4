"""Errors of the evaluation suites, under the product's one exception tree::

UnderstudyError
└── EvalError                 anything the evals raise on purpose
    ├── UnknownSuiteError     a suite name that is not one of ``SUITE_NAMES``
    ├── DataUnavailableError  a data set is neither in the data directory nor on the Hub
    ├── MissingExtraError     an optional library the evals need is not installed
    └── JudgeError            a judge is needed and missing, or it did not answer
"""

from __future__ import annotations

from collections.abc import Iterable

from specialists.errors import UnderstudyError


class EvalError(UnderstudyError):
    """Root of the evaluation errors."""


class UnknownSuiteError(EvalError):
    """A suite name that does not exist; lists the ones that do."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown suite {name!r}; suites: {', '.join(self.known)}")


class DataUnavailableError(EvalError):
    """A data set cannot be read; the message says where it was looked for and how to fix it."""

    def __init__(self, dataset: str, problem: str, fix: str) -> None:
        self.dataset = dataset
        self.fix = fix
        super().__init__(f"data set {dataset!r}: {problem}. Fix: {fix}")


class MissingExtraError(EvalError):
    """An optional library is not installed."""

    def __init__(self, package: str, purpose: str, extra: str = "eval") -> None:
        self.package = package
        super().__init__(
            f"{purpose} needs {package}, which is not installed: pip install 'understudy[{extra}]'"
        )


class JudgeError(EvalError):
    """A suite needs a judge and has none, or the judge model failed after its retries."""
