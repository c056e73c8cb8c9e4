"""Every error the HTTP API returns, in OpenAI's shape (:mod:`serving.protocol.errors`).

Handlers route code raises :class:`~serving.protocol.ProtocolError`;
:func:`install_error_handlers` also turns FastAPI's validation errors, Starlette's HTTP
exceptions (404, 405, …), a failing database (:class:`~database.StoreError`, on any route: 503
``database_unavailable``) and any unexpected exception into that shape. An unexpected exception
is logged with its traceback, and the client gets a generic message: exception text can hold
prompts, URLs or keys. (Keep the app's ``debug`` off: Starlette's debug mode sends tracebacks to
the client.)
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from database import StoreError
from serving.protocol import ProtocolError, database_unavailable, describe_validation_errors

logger = logging.getLogger(__name__)

_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
"""``code`` for Starlette's own HTTP exceptions."""


def error_response(error: ProtocolError) -> JSONResponse:
    """``error`` as the HTTP response that carries it."""
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error ``app`` returns an OpenAI-shaped JSON body."""
    app.add_exception_handler(ProtocolError, _protocol_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(Exception, _unexpected)


async def _protocol_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProtocolError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, param = describe_validation_errors(exc.errors())
    return error_response(ProtocolError(400, None, message, param=param))


async def _http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code)
    message = str(exc.detail)
    return error_response(ProtocolError(exc.status_code, code, message, headers=exc.headers))


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("database failed on %s %s: %s", request.method, request.url.path, exc)
    return error_response(database_unavailable())


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this response is sent, and the server (uvicorn)
    # logs its traceback; this line adds the route, which the server's log does not name.
    logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    message = "The server had an error while processing your request; it has been logged."
    return error_response(ProtocolError(500, "internal_error", message))
