"""Every API error as an RFC 9457 ``application/problem+json`` body.

The body carries the error tree's stable ``code`` (see :mod:`loyalty.errors`), the message as
``detail``, the error's ``details``, the request id, and for malformed input the offending
fields under ``errors``. Statuses: 400 bad input, 401 no or bad credential, 403 missing scope
or another member's token, 404, 409 conflicts (an idempotency key reused with another body),
413 too large, 422 the rules say no, 429 rate limited (with ``Retry-After``), 503 database
down (the driver's message, which names the server, is only logged). An unexpected failure
is a 500 problem with no traceback (it is logged with the request id). Never an HTML page.
"""

from __future__ import annotations

import http
import json
import logging
from typing import Any

from flask import Flask, Response, g, request
from flask_smorest import Api, Blueprint
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException, InternalServerError

from api.schemas import Problem
from loyalty.errors import (
    DatabaseUnavailable,
    InvalidInput,
    LoyaltyError,
    NotAuthenticated,
    RateLimited,
)

PROBLEM_TYPE = "application/problem+json"
log = logging.getLogger("jifen.api")

# The database cannot serve the request (down, refusing connections, the pool exhausted, a
# deadlock or a cancelled statement): 503, worth a retry.
_DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)

# Codes for statuses that no LoyaltyError produced (routing, parsing, limits).
_HTTP_CODES = {
    400: InvalidInput.code,
    401: NotAuthenticated.code,
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: InvalidInput.code,
    429: RateLimited.code,
}


def problem(
    status: int,
    *,
    code: str,
    detail: str,
    details: dict[str, Any] | None = None,
    errors: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": http.HTTPStatus(status).phrase,
        "status": status,
        "code": code,
        "detail": detail,
        "details": details or {},
        "instance": request.path,
        "request_id": getattr(g, "request_id", ""),
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body, default=str), status=status, mimetype=PROBLEM_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def loyalty_problem(error: LoyaltyError) -> Response:
    """The problem for an error of the tree (malformed-input errors answer 400)."""
    headers = {}
    if isinstance(error, RateLimited) and "retry_after" in error.details:
        headers["Retry-After"] = str(error.details["retry_after"])
    return problem(
        error.http_status,
        code=error.code,
        detail=error.message,
        details=_plain(error.details),
        headers=headers,
    )


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` as JSON can carry them (values it cannot are shown as text)."""
    return json.loads(json.dumps(details, default=str))  # type: ignore[no-any-return]


class JifenApi(Api):  # type: ignore[misc]
    """flask-smorest's Api answering every HTTP error as problem+json."""

    ERROR_SCHEMA = Problem

    def handle_http_exception(self, error: HTTPException) -> Response:
        """Werkzeug's and webargs' errors (404, 405, 413, a body that fails its schema)."""
        status = error.code or 500
        if status >= 500:
            return problem(500, code="internal_error", detail="the server failed; retry later")
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        if errors:  # webargs: the body or query did not match the schema
            status = 400
            detail = "the request does not match the API's schema: " + _first(errors)
        else:
            detail = data.get("message") or error.description or http.HTTPStatus(status).phrase
        response = problem(
            status,
            code=_HTTP_CODES.get(error.code or 500, "http_error"),
            detail=str(detail),
            errors=errors,
            headers=dict(data.get("headers") or {}),
        )
        if status == 405 and getattr(error, "valid_methods", None):
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    def _register_responses(self) -> None:
        """Document every error status as problem+json (the default says application/json)."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["content"] = {PROBLEM_TYPE: {"schema": self.ERROR_SCHEMA}}
            self.spec.components.response(status.name, response, lazy=True)
        self.spec.components.response(
            "DEFAULT_ERROR",
            {"description": "Problem", "content": {PROBLEM_TYPE: {"schema": self.ERROR_SCHEMA}}},
            lazy=True,
        )


class _ArgumentsParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400


class JifenBlueprint(Blueprint):  # type: ignore[misc]
    """flask-smorest's Blueprint documenting a body or query that fails its schema as the 400
    problem the API answers (flask-smorest's default documents 422, which here means that
    the rules said no)."""

    ARGUMENTS_PARSER = _ArgumentsParser()


def _first(errors: Any) -> str:
    """The first field error, as ``location.field: message``."""
    path: list[str] = []
    node = errors
    while isinstance(node, dict) and node:
        key, node = next(iter(node.items()))
        path.append(str(key))
    message = node[0] if isinstance(node, list) and node else node
    return f"{'.'.join(path)}: {message}"


def init_problems(app: Flask) -> None:
    """Answer errors of the tree and unexpected exceptions with problem+json."""

    @app.errorhandler(LoyaltyError)
    def on_loyalty_error(error: LoyaltyError) -> Response:
        if error.http_status >= 500:
            log.error("request %s: %s", getattr(g, "request_id", "-"), error)
        return loyalty_problem(error)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def on_database_down(error: Exception) -> Response:
        log.error("request %s: database down", getattr(g, "request_id", "-"), exc_info=error)
        return problem(
            DatabaseUnavailable.http_status,
            code=DatabaseUnavailable.code,
            detail="the database is unavailable or too busy now; retry later",
        )

    @app.errorhandler(InternalServerError)
    def on_crash(error: InternalServerError) -> Response:
        original = getattr(error, "original_exception", None)
        if isinstance(original, _DATABASE_DOWN):  # raised where no handler is looked up
            return on_database_down(original)
        log.error("request %s failed", getattr(g, "request_id", "-"), exc_info=original or error)
        return problem(
            500,
            code="internal_error",
            detail="the server failed; the request id is in the logs; retry later",
        )
