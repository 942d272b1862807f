"""A real HTTP server on loopback for tests: any WSGI app, served by werkzeug in a thread.

    with live_server(create_api_app(config)) as base_url:
        httpx.get(base_url + "/v1/program", ...)

The server listens on ``127.0.0.1`` on a free port, handles each request in its own thread
and is shut down when the block ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from werkzeug.serving import make_server

from api.app import create_api_app
from loyalty.db import Database

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


@contextmanager
def live_server(app: WSGIApplication) -> Iterator[str]:
    """Serve ``app`` on ``127.0.0.1`` (a free port) in a daemon thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def live_api(
    db: Database, *, secret: str = "live-server-member-token-secret-0123456789"
) -> Iterator[str]:
    """The HTTP API on ``db`` (rate limits off, no Redis), served by :func:`live_server`."""
    app = create_api_app(
        {
            "JIFEN_DATABASE": db,
            "SECRET_KEY": secret,
            "RATELIMIT_ENABLED": False,
            "JIFEN_REDIS_URL": None,
        }
    )
    with live_server(app) as base_url:
        yield base_url
