"""CORS for browsers holding a member token: each program allows a list of origins.

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) carries no credential, so it
is answered for an origin that any program allows; the real request is then answered with
``Access-Control-Allow-Origin`` only when its origin is allowed by the program of the
credential it carries. A request refused before its credential named a program (an expired
token, a rate limit) is answered like a preflight, so the page can show why. Origins are
managed with ``jifen keys origins`` or the console.
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from api.context import database
from loyalty.services.api_keys import list_origins, origin_allowed_anywhere

ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, Jifen-Program, X-Request-Id"
EXPOSED_HEADERS = "Idempotent-Replayed, Retry-After, X-Request-Id"


def init_cors(app: Flask) -> None:
    """Answer preflights and add the CORS headers for allowed origins."""

    @app.before_request
    def preflight() -> Response | None:
        origin = request.headers.get("Origin")
        if (
            request.method != "OPTIONS"
            or not origin
            or "Access-Control-Request-Method" not in request.headers
        ):
            return None
        response = Response(status=204)
        response.headers["Vary"] = "Origin"
        if origin_allowed_anywhere(database(), origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    @app.after_request
    def allow_origin(response: Response) -> Response:
        origin = request.headers.get("Origin")
        program = getattr(g, "program", None)
        if not origin or request.method == "OPTIONS":
            return response
        response.vary.add("Origin")
        if program:
            allowed = origin.lower() in list_origins(database(), program=program)
        else:  # refused before a credential named its program (401, 429, a bad query)
            allowed = origin_allowed_anywhere(database(), origin)  # so the page can read why
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return response
