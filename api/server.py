"""The whole server as one WSGI app: the API and member page beside the admin console.

Requests under ``/v1`` and ``/m`` go to the API app (:func:`api.create_api_app`), everything
else (``/admin``, ``/login``, ``/webhooks/stripe``…) to the console (:func:`admin.create_app`).
Both share one :class:`~loyalty.db.Database` (one connection pool per process). The paths
are not rewritten: each app sees the full path.

For gunicorn: ``gunicorn 'api.server:create_server()'``, or ``jifen serve``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from loyalty.db.database import Database
from loyalty.errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

API_PREFIXES = ("/v1", "/m")


class PathDispatcher:
    """Send each request to the API or to the console by its path's first segment."""

    def __init__(self, api: WSGIApplication, console: WSGIApplication) -> None:
        self.api = api
        self.console = console

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        for prefix in API_PREFIXES:
            if path == prefix or path.startswith(prefix + "/"):
                return self.api(environ, start_response)
        return self.console(environ, start_response)


def create_server(config: Mapping[str, Any] | None = None) -> PathDispatcher:
    """The API, the member page and the console over one database.

    ``config`` goes to both apps (see :func:`api.app.create_api_app` and
    :func:`admin.create_app`); the ``JIFEN_*`` environment fills the gaps.
    """
    from admin import create_app
    from api.app import create_api_app

    given = dict(config or {})
    database = given.get("JIFEN_DATABASE")
    if database is None:
        database = Database.from_url(given.get("JIFEN_DATABASE_URL"))
    if not isinstance(database, Database):
        raise ConfigurationError("JIFEN_DATABASE must be a loyalty.db.Database")
    given["JIFEN_DATABASE"] = database
    return PathDispatcher(create_api_app(given), create_app(given))
