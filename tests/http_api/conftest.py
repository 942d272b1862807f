"""Fixtures of the HTTP API tests: an app on the test database, keys, a client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api import create_api_app
from loyalty.db import Database
from loyalty.services.api_keys import SCOPES, create_key
from tests.integration.helpers import PROGRAM, make_program

SECRET = "test-secret-key-for-member-tokens-0123456789abcdef"


@pytest.fixture
def program_db(db: Database) -> Database:
    """The test database with the program ``shop`` (CNY, Asia/Shanghai)."""
    make_program(db)
    return db


@pytest.fixture
def api_app(program_db: Database) -> Flask:
    """The API on the test database, rate limits off."""
    return create_api_app(
        {
            "JIFEN_DATABASE": program_db,
            "SECRET_KEY": SECRET,
            "RATELIMIT_ENABLED": False,
            "JIFEN_REDIS_URL": None,
        }
    )


@pytest.fixture
def client(api_app: Flask) -> FlaskClient:
    """A test client of the API."""
    return api_app.test_client()


def new_key(db: Database, *scopes: str, program: str = PROGRAM, **options: Any) -> str:
    """A new server key's secret."""
    return create_key(db, program=program, scopes=scopes or SCOPES, label="test", **options).secret


@pytest.fixture
def admin_key(program_db: Database) -> str:
    """A key with every scope."""
    return new_key(program_db, "admin")


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def auth(admin_key: str) -> Iterator[dict[str, str]]:
    """Headers with the admin key."""
    yield bearer(admin_key)
