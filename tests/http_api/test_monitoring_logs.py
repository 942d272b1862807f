"""Log lines as an operator reads them, from the whole server (API and console on one
dispatcher): with the JSON format each line parses as one JSON object with a UTC timestamp,
level, logger, message and the extra fields; every line logged while a request is served
carries its request id (the caller's valid ``X-Request-Id`` or a new one, echoed in the
response); each ledger write logs its kind, key, program, member, points, outcome and
duration. Secrets never reach the logs: a request with an API key, a member token, a new
webhook endpoint's signing secret and a refused console sign-in leave none of them in any
line, at DEBUG, in either format."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from api.server import create_server
from loyalty.db import Database
from loyalty.monitoring.logs import (
    JsonLogFormatter,
    RequestIdFilter,
    TextLogFormatter,
    logging_config,
    redact,
)
from loyalty.services.api_keys import create_key
from loyalty.services.console_users import create_user
from tests.http_api.conftest import SECRET, bearer
from tests.integration.helpers import PROGRAM, enrol, make_program

PASSWORD = "correct-horse-battery-9"
WRONG_PASSWORD = "wrong-horse-staple-7"


class Captured:
    """Every record logged meanwhile, formatted as the server would print it."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)
        self.handler.addFilter(RequestIdFilter())

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]


def capture(formatter: logging.Formatter) -> Iterator[Captured]:
    found = Captured(formatter)
    root = logging.getLogger()
    level = root.level
    root.addHandler(found.handler)
    root.setLevel(logging.DEBUG)
    try:
        yield found
    finally:
        root.removeHandler(found.handler)
        root.setLevel(level)


@pytest.fixture
def json_logs() -> Iterator[Captured]:
    yield from capture(JsonLogFormatter())


@pytest.fixture
def text_logs() -> Iterator[Captured]:
    yield from capture(TextLogFormatter())


@pytest.fixture
def server(db: Database) -> tuple[Client, str]:
    """The whole server on the test database, and an admin key of the shop."""
    make_program(db, webhooks_allow_private=True)
    enrol(db, "alice")
    create_user(db, username="ops", role="operations", password=PASSWORD)
    key = create_key(db, program=PROGRAM, scopes=["admin"], label="logs").secret
    app = create_server(
        {
            "JIFEN_DATABASE": db,
            "JIFEN_PROGRAM": PROGRAM,
            "SECRET_KEY": SECRET,
            "TESTING": True,
            "RATELIMIT_ENABLED": False,
            "JIFEN_REDIS_URL": None,
        }
    )
    return Client(app), key


def earn_over_http(client: Client, key: str, order: str, **headers: str) -> Any:
    return client.post(
        "/v1/earnings/purchase",
        json={"member": "alice", "order_id": order, "amount_minor": 12_300, "currency": "CNY"},
        headers={**bearer(key), **headers},
    )


def test_json_lines_carry_the_fields_and_the_request_id(
    server: tuple[Client, str], json_logs: Captured
) -> None:
    client, key = server
    answer = earn_over_http(client, key, "o-1", **{"X-Request-Id": "shop-req.42:a"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.headers["X-Request-Id"] == "shop-req.42:a"
    invented = earn_over_http(
        client, key, "o-2", **{"X-Request-Id": "not valid; ids have no spaces"}
    )
    generated = invented.headers["X-Request-Id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    console = client.get("/login", headers={"X-Request-Id": "console-1"})
    assert console.headers["X-Request-Id"] == "console-1"

    lines = json_logs.json_lines()
    assert lines, "nothing was logged"
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= set(line)
        stamp = dt.datetime.fromisoformat(line["timestamp"])
        assert stamp.utcoffset() == dt.timedelta(0)
    writes = [line for line in lines if line["logger"] == "jifen.ledger"]
    assert [w["request_id"] for w in writes] == ["shop-req.42:a", generated]
    first = writes[0]
    assert first["level"] == "INFO"
    assert first["kind"] == "earn_purchase"
    assert first["key"] == "earn:o-1"
    assert (first["program"], first["member"]) == (PROGRAM, "alice")
    assert first["points"] == answer.get_json()["points_granted"]
    assert first["outcome"] == "ok"
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0
    requests = [line for line in lines if line["logger"] == "jifen.api"]
    assert requests[0]["request_id"] == "shop-req.42:a"

    replay = earn_over_http(client, key, "o-1")
    assert replay.headers["Idempotent-Replayed"] == "true"
    refused = client.post(
        "/v1/earnings/purchase",
        json={"member": "nobody", "order_id": "o-3", "amount_minor": 100, "currency": "CNY"},
        headers=bearer(key),
    )
    assert refused.status_code == 404
    outcomes = [line["outcome"] for line in json_logs.json_lines() if "outcome" in line]
    assert outcomes[-2:] == ["replayed", "member_not_found"]


def test_no_secret_reaches_the_logs(server: tuple[Client, str], json_logs: Captured) -> None:
    client, key = server
    assert earn_over_http(client, key, "o-1").status_code == 201
    wrong_key = key[:-4] + "AAAA"
    assert earn_over_http(client, wrong_key, "o-2").status_code == 401
    token = client.post("/v1/members/alice/tokens", json={}, headers=bearer(key)).get_json()
    member_token = token["token"]
    assert client.get("/v1/members/alice/balance", headers=bearer(member_token)).status_code == 200
    endpoint = client.post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hooks"}, headers=bearer(key)
    )
    signing_secret = endpoint.get_json()["secret"]
    login = client.get("/login").get_data(as_text=True)
    csrf = login.split('name="csrf_token" value="')[1].split('"')[0]
    refused = client.post(
        "/login", data={"csrf_token": csrf, "username": "ops", "password": WRONG_PASSWORD}
    )
    assert refused.status_code == 401

    text = json_logs.text
    for secret in (key, key[12:], wrong_key, member_token, signing_secret, WRONG_PASSWORD, SECRET):
        assert secret not in text
    assert key[:12] in text  # the key's shown prefix tells operators which key it was
    sign_in = [line for line in json_logs.json_lines() if line["logger"] == "jifen.console"]
    assert sign_in and sign_in[-1]["username"] == "ops"
    assert "password" not in json.dumps(sign_in)


def test_the_text_format_shows_the_same_fields_without_secrets(
    server: tuple[Client, str], text_logs: Captured
) -> None:
    client, key = server
    earn_over_http(client, key, "o-1", **{"X-Request-Id": "r-1"})
    line = next(line for line in text_logs.text.splitlines() if "jifen.ledger" in line)
    assert line.endswith("request_id=r-1")
    for part in (
        "INFO jifen.ledger: ledger write earn_purchase ok",
        "key=earn:o-1",
        "member=alice",
    ):
        assert part in line
    assert key not in text_logs.text


def test_redact_cuts_what_looks_like_a_secret() -> None:
    line = (
        "Authorization: Bearer jfn_sk_AbCdEfGhIjKlMnOp key jfn_sk_AbCdEfGhIjKl "
        "token jfn_mt_eyJhbGciOi.xyz secret whsec_c2VjcmV0c2VjcmV0 stripe sk_live_51HqZ"
    )
    cut = redact(line)
    assert "Bearer …" in cut and "jfn_sk_AbCdE…" in cut
    for secret in ("GhIjKl", "eyJhbGciOi", "c2VjcmV0", "51HqZ"):
        assert secret not in cut


def test_logging_config_prints_json_lines_from_any_logger() -> None:
    script = (
        "import logging.config, sys, json\n"
        "from loyalty.monitoring.logs import logging_config\n"
        "logging.config.dictConfig(logging_config('json'))\n"
        "logging.getLogger('gunicorn.error').info('Booting worker with pid: %s', 7)\n"
        "logging.getLogger('gunicorn.access').info('GET / 200')\n"
        "logging.getLogger('jifen.x').warning('password %s', 'jfn_sk_AbCdEfGhIjKlMnOp',"
        " extra={'password': 'hunter2'})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(x["logger"], x["level"]) for x in lines] == [
        ("gunicorn.error", "INFO"),
        ("gunicorn.access", "INFO"),
        ("jifen.x", "WARNING"),
    ]
    assert lines[0]["message"] == "Booting worker with pid: 7"
    assert lines[2]["password"] == "[redacted]" and "hunter2" not in done.stdout
    assert "GhIjKl" not in done.stdout
    quiet = logging_config("json", access_log=False)
    assert quiet["loggers"]["gunicorn.access"]["level"] == "WARNING"
