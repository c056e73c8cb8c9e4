"""Every error in OpenAI's shape, so OpenAI clients can read it — from the chat API and in batch
output lines alike.

OpenAI's SDKs raise by status code (``AuthenticationError`` for 401, ``RateLimitError`` for 429,
…) and show ``error.message``; other clients parse the body::

    {"error": {"message": "…", "type": "invalid_request_error", "param": null, "code": "…"}}

:class:`ProtocolError` is one such error; the functions below make the ones both surfaces share,
so a request the API refuses is refused by batch validation with the same status, code and
message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from database import StoreError
from orchestrator.outcome import FailureKind, RunResult
from orchestrator.request import InvalidRequest, Limit, OverLimit, UnsupportedParameter
from specialists.errors import ConfigurationError, SpecialistPaused, UnderstudyError

MAX_VALIDATION_ERRORS = 5
"""Validation problems named in one message; the rest are counted."""

_OVER_LIMIT: dict[Limit, tuple[int, str, str]] = {
    Limit.messages: (400, "too_many_messages", "messages"),
    Limit.characters: (413, "request_too_large", "messages"),
    Limit.max_tokens: (400, "max_tokens_too_large", "max_tokens"),
}
"""Status, code and param of a request over each limit."""


class ProtocolError(Exception):
    """An error response.

    Args:
        status_code: HTTP status.
        code: Machine-readable code, e.g. ``invalid_api_key``, ``rate_limit_exceeded``.
        message: What went wrong and how to fix it, for the person reading the client's output.
        type_: OpenAI's error type; default: the one OpenAI uses for ``status_code``.
        param: The request field at fault, if one is.
        headers: Extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status_code: int,
        code: str | None,
        message: str,
        *,
        type_: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.message = message
        self.type = type_ or error_type(status_code)
        self.param = param
        self.headers = dict(headers or {})
        super().__init__(f"{status_code} {code}: {message}")

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return error_body(self.status_code, self.code, self.message, self.type, self.param)


def error_type(status: int) -> str:
    """OpenAI's ``type`` for a status: what its API returns, where it is consistent."""
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(
    status: int,
    code: str | None,
    message: str,
    type_: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """The JSON body of an error response in OpenAI's shape."""
    return {
        "error": {
            "message": message,
            "type": type_ or error_type(status),
            "param": param,
            "code": code,
        }
    }


def invalid_body(errors: Sequence[Any]) -> ProtocolError:
    """A chat request body that failed validation (pydantic's or FastAPI's ``errors()``): 400
    ``invalid_body``, or ``invalid_json`` when it was not JSON at all."""
    message, param = describe_validation_errors(errors)
    not_json = any(error.get("type") == "json_invalid" for error in errors)
    return ProtocolError(400, "invalid_json" if not_json else "invalid_body", message, param=param)


def refusal(exc: UnderstudyError) -> ProtocolError:
    """Why the orchestrator would not run a request, as the error the client gets.

    A request over a limit gets the limit's own status and code; a parameter the run cannot
    honour 400 ``unsupported_parameter`` naming it; any other malformed request 400
    ``invalid_request``; a paused specialist 409 ``specialist_paused``; a mode whose lead is
    not configured 503 ``model_not_configured``; a database failure (the run's record lost
    included) 503 ``database_unavailable``; anything else 500 ``internal_error``.
    """
    if isinstance(exc, OverLimit):
        status, code, param = _OVER_LIMIT[exc.limit]
        return ProtocolError(status, code, str(exc), param=param)
    if isinstance(exc, UnsupportedParameter):
        return ProtocolError(400, "unsupported_parameter", str(exc), param=exc.param)
    if isinstance(exc, SpecialistPaused):
        return ProtocolError(409, "specialist_paused", str(exc), param="model")
    if isinstance(exc, InvalidRequest):
        return ProtocolError(400, "invalid_request", str(exc))
    if isinstance(exc, ConfigurationError):
        return ProtocolError(503, "model_not_configured", str(exc))
    if isinstance(exc, StoreError):
        return database_unavailable()
    return ProtocolError(500, "internal_error", str(exc))


def database_unavailable() -> ProtocolError:
    """The database failed (it refused a write, or cannot be reached): 503
    ``database_unavailable``, with ``Retry-After``. The cause stays in the server's log: it
    names the database."""
    return ProtocolError(
        503,
        "database_unavailable",
        "The service's database is unavailable, so the request could not be completed; "
        "try again shortly.",
        headers={"Retry-After": "5"},
    )


_FAILURES: dict[FailureKind, str] = {
    FailureKind.lead_unavailable: "the lead model is unavailable",
    FailureKind.lead_rate_limited: "the lead model is unavailable (rate limited)",
    FailureKind.lead_timeout: "the lead model did not answer within the run's time budget",
    FailureKind.lead_refused: "the lead model refused the request",
    FailureKind.lead_invalid_output: "the lead model answered with something unusable",
    FailureKind.budget_exhausted: "the run spent its budget of lead turns or tokens",
    FailureKind.run_timeout: "the run's time budget ran out",
    FailureKind.specialist_unavailable: "the specialist model is unavailable",
    FailureKind.specialist_failed: "the specialist model failed to answer",
    FailureKind.invalid_format: "the answer did not match the requested response_format",
    FailureKind.shutdown: "the server shut down before the run ended",
    FailureKind.invalid_request: "the request was refused",
    FailureKind.unclassified: "the run failed",
}
"""What each failure kind tells a client, in our words: never the upstream's error text, which
can hold its internals (URLs, account details, our prompts); the transcript keeps that text."""


def describe_failure(result: RunResult) -> str:
    """What went wrong in ``result``, for the client, from its failure's kind."""
    kind = result.failure.kind if result.failure else FailureKind.unclassified
    return _FAILURES[kind]


SHUTDOWN_RETRY_AFTER_S = 1
"""``Retry-After`` of a request a stopping server refused or cut: another server (behind the
same balancer), or this one restarted, can take it at once."""


def shutting_down() -> ProtocolError:
    """The error of a request a stopping server will not finish: 503 ``shutting_down``, for a
    request that arrived during the drain and for a run still going when the drain ran out."""
    return ProtocolError(
        503,
        "shutting_down",
        "The server is shutting down; retry the request.",
        headers={"Retry-After": str(SHUTDOWN_RETRY_AFTER_S)},
    )


def unanswered(result: RunResult) -> ProtocolError:
    """The error of a run that produced no answer: 503 ``upstream_unavailable``, saying what
    failed from the run's failure kind (whatever the kind: clients retry on the status); a run
    the server's shutdown cut is :func:`shutting_down`."""
    if result.failure is not None and result.failure.kind is FailureKind.shutdown:
        return shutting_down()
    return ProtocolError(
        503, "upstream_unavailable", f"No answer was produced: {describe_failure(result)}."
    )


def degraded(result: RunResult, *, streamed: bool = False) -> ProtocolError:
    """The error of a degraded run the client does not take as an answer: 503 ``degraded``.

    Args:
        streamed: Part of the lead's answer was already streamed, so the fallback's answer
            cannot be given instead (it would be spliced onto text it does not continue).
    """
    why = (
        "the lead's answer was cut short after it began streaming"
        if streamed
        else "only a fallback answer is available and the request asked for on_degraded 'error'"
    )
    return ProtocolError(503, "degraded", f"{describe_failure(result).capitalize()}: {why}.")


_UNKNOWN_PARAMETER = (
    "unknown or unsupported parameter (Understudy refuses what it would otherwise ignore)"
)


def describe_validation_errors(errors: Sequence[Any]) -> tuple[str, str | None]:
    """One readable message naming each bad field, and the first field's dotted path.

    Only a field's location and pydantic's message are used, never the input it rejected: that
    input is the client's own request, possibly a long prompt.
    """
    parts: list[str] = []
    params: list[str] = []
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = error.get("ctx", {}).get("error", "")
            parts.append(f"the request body is not valid JSON{': ' + reason if reason else ''}")
            continue
        location = [str(item) for item in error.get("loc", ())]
        if location and location[0] in {"body", "query", "path", "header", "cookie"}:
            source, location = location[0], location[1:]
        else:
            source = "body"
        field = ".".join(location)
        params.append(field or source)
        where = f"'{field}'" if field else f"the request {source}"
        reason = (
            _UNKNOWN_PARAMETER
            if error.get("type") == "extra_forbidden"
            else error.get("msg", "invalid value")
        )
        parts.append(f"{where}: {reason}")
    if not parts:
        return "The request is invalid.", None
    shown = parts[:MAX_VALIDATION_ERRORS]
    more = len(parts) - len(shown)
    message = "Invalid request: " + "; ".join(shown) + (f" (and {more} more)" if more else "")
    return message, params[0] if params else None
