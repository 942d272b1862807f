"""Helpers for the console's tests: an app on the test database, users per role, logins.

(No tests here; the ``test_admin_*`` modules import these.)
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from admin import create_app
from loyalty.db import Database
from loyalty.services.console_users import create_user
from tests.integration import stripe_support as st
from tests.integration.helpers import PROGRAM, enrol, make_program

PASSWORDS = {
    "viewer": "viewer-pass-1",
    "marketing": "marketing-pass-1",
    "operations": "operations-pass-1",
    "operations2": "operations-pass-2",
    "admin": "admin-pass-1",
}
ROLE_OF = {"operations2": "operations"}
THRESHOLD = 500


def build_app(db: Database, *, seed: bool = True, **config: Any) -> Flask:
    """The console on ``db`` with program ``shop``, two members and a user per role."""
    if seed:
        make_program(
            db,
            rules={"base_ratio": "1", "category_ratios": {"grocery": "0.5"}},
        )
        enrol(db, "alice", "bob")
        for username, password in PASSWORDS.items():
            create_user(
                db, username=username, role=ROLE_OF.get(username, username), password=password
            )
    settings: dict[str, Any] = {
        "JIFEN_DATABASE": db,
        "JIFEN_PROGRAM": PROGRAM,
        "TESTING": True,
        "JIFEN_RAISE_ERRORS": True,
        "SECRET_KEY": "test-secret-key-0123456789-abcdefghijklmnop",
        "STRIPE_WEBHOOK_SECRET": st.SECRET,
        "JIFEN_APPROVAL_THRESHOLD": THRESHOLD,
        "JIFEN_REDIS_URL": None,
        **config,
    }
    return create_app(settings)


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """A CSRF token for the client's session, read from a page's form."""
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def login(client: FlaskClient, username: str) -> str:
    """Sign in as ``username``; returns a CSRF token for later POSTs."""
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={"csrf_token": token, "username": username, "password": PASSWORDS[username]},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return csrf_token(client, "/admin/")


def post(client: FlaskClient, path: str, token: str, **data: Any) -> Any:
    """POST a form with the CSRF token."""
    return client.post(path, data={"csrf_token": token, **data})
