"""Every error the HTTP API returns, in OpenAI's shape, so OpenAI clients can read it.

OpenAI's SDKs raise by status code (``AuthenticationError`` for 401, ``RateLimitError`` for 429,
…) and show ``error.message``; other clients parse the body::

    {"error": {"message": "…", "type": "invalid_request_error", "param": null, "code": "…"}}

Handlers route code raises :class:`ApiError`; :func:`install_error_handlers` also turns
FastAPI's validation errors, Starlette's HTTP exceptions (404, 405, …) and any unexpected
exception into that shape. An unexpected exception is logged with its traceback, and the client
gets a generic message: exception text can hold prompts, URLs or keys. (Keep the app's
``debug`` off: Starlette's debug mode sends tracebacks to the client.)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

MAX_VALIDATION_ERRORS = 5
"""Validation problems named in one message; the rest are counted."""
_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
"""``code`` for Starlette's own HTTP exceptions."""


class ApiError(Exception):
    """An error response: raise it from a route or dependency.

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

    def response(self) -> JSONResponse:
        body = error_body(self.status_code, self.code, self.message, self.type, self.param)
        return JSONResponse(body, status_code=self.status_code, headers=self.headers)


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


def install_error_handlers(app: FastAPI) -> None:
    """Make every error ``app`` returns an OpenAI-shaped JSON body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, param = describe_validation_errors(exc.errors())
    return ApiError(400, None, message, param=param).response()


async def _http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code)
    message = str(exc.detail)
    return ApiError(exc.status_code, code, message, headers=exc.headers).response()


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this response is sent, and the server (uvicorn)
    # logs its traceback; this line adds the route, which the server's log does not name.
    logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    message = "The server had an error while processing your request; it has been logged."
    return ApiError(500, "internal_error", message).response()


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
        parts.append(f"{where}: {error.get('msg', 'invalid value')}")
    if not parts:
        return "The request is invalid.", None
    shown = parts[:MAX_VALIDATION_ERRORS]
    more = len(parts) - len(shown)
    message = "Invalid request: " + "; ".join(shown) + (f" (and {more} more)" if more else "")
    return message, params[0] if params else None
