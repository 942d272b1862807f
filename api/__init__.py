"""The HTTP door: the ``/v1`` JSON API, the member page, and ``jifen serve``.

* :func:`create_api_app` builds the API (flask-smorest, OpenAPI 3.1 at ``/v1/openapi.json``,
  Swagger UI at ``/v1/docs``) and the member page (``/m/``);
* :mod:`api.server` joins it with the admin console in one WSGI app for gunicorn.

Every endpoint calls :mod:`loyalty.services`, one unit of work per request.
"""

from api.app import create_api_app

__all__ = ["create_api_app"]
