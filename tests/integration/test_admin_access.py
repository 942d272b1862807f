"""The console's doors are shut: login, roles, CSRF on every POST, secure sessions, friendly
errors. The URL map is walked rule by rule, so a new page cannot forget its checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from admin import create_app
from loyalty.db import Database
from loyalty.errors import ConfigurationError
from loyalty.services.console_users import set_active
from tests.integration import stripe_support as st
from tests.integration.test_admin_support import build_app, csrf_token, login, post

# Public on purpose: the login page itself, static assets, and the Stripe webhook (Stripe's
# signature is its authentication).
# Public: sign-in, static files, the reward pictures the member page also serves publicly,
# and Stripe's webhook (signed).
PUBLIC = {
    "auth.login",
    "static",
    "admin.static",
    "reward_image",
    "stripe_webhook.receive_stripe_event",
}
DUMMY = {"int": "1", "path": "x", "string": "x", "default": "x"}


@pytest.fixture
def app(db: Database) -> Iterator[Flask]:
    yield build_app(db)


def _urls(app: Flask, method: str) -> list[tuple[str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if method not in (rule.methods or ()) or rule.endpoint in PUBLIC:
            continue
        values = {
            arg: DUMMY.get(
                type(rule._converters[arg]).__name__.lower().replace("converter", ""), "x"
            )
            for arg in rule.arguments
        }
        with app.test_request_context():
            found.append((rule.endpoint, app.url_for(rule.endpoint, **values)))
    return found


def _shut(response_status: int, location: str) -> bool:
    return response_status == 403 or (response_status == 302 and location.startswith("/login"))


def test_every_get_without_login_redirects_to_login_or_403(app: Flask) -> None:
    client = app.test_client()
    urls = _urls(app, "GET")
    assert len(urls) >= 12
    for endpoint, url in urls:
        response = client.get(url)
        assert _shut(response.status_code, response.headers.get("Location", "")), (
            endpoint,
            url,
            response.status_code,
        )


def test_every_post_without_login_redirects_to_login_or_403(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token(client)  # a valid token, so the login check is what answers
    urls = _urls(app, "POST")
    assert {e for e, _ in urls} >= {
        "adjustments.new",
        "adjustments.approve",
        "rules.draft",
        "events.replay",
        "auth.logout",
        "risk.draft",
        "risk.resolve",
        "risk.assign",
        "risk.scan",
        "risk.freeze",
        "risk.unfreeze",
        "risk.release_hold",
    }
    for endpoint, url in urls:
        response = post(client, url, token, event_id=["a", "b"])
        assert _shut(response.status_code, response.headers.get("Location", "")), (
            endpoint,
            response.status_code,
        )


def test_every_post_without_a_csrf_token_gets_400_bulk_actions_included(app: Flask) -> None:
    client = app.test_client()
    login(client, "admin")
    for endpoint, url in _urls(app, "POST"):
        response = client.post(url, data={"event_id": ["evt_1", "evt_2"], "request_id": "1"})
        assert response.status_code == 400, endpoint
        assert "CSRF" in response.get_data(as_text=True)
        response = client.post(url, data={"csrf_token": "forged", "event_id": ["evt_1"]})
        assert response.status_code == 400, endpoint
    # the login form too
    assert app.test_client().post("/login", data={"username": "admin"}).status_code == 400


def test_the_stripe_webhook_is_exempt_from_csrf_and_checks_its_signature(app: Flask) -> None:
    client = app.test_client()
    event = st.payment_intent_succeeded("pi_csrf", 1000, customer="cus_nobody")
    payload = st.body(event)
    bad = client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": "t=1,v1=0"})
    assert bad.status_code == 400 and bad.json and bad.json["status"] == "rejected"
    good = client.post(
        "/webhooks/stripe", data=payload, headers={"Stripe-Signature": st.sign(payload)}
    )
    assert good.status_code == 200 and good.json and good.json["status"] == "parked"


def test_a_marketing_user_cannot_post_an_adjustment(app: Flask) -> None:
    client = app.test_client()
    token = login(client, "marketing")
    response = post(
        client, "/admin/adjustments/new", token, member="alice", points=5, reason="x y z"
    )
    assert response.status_code == 403
    assert client.get("/admin/adjustments/").status_code == 403
    assert "alice" in client.get("/admin/members/").get_data(as_text=True)  # reading is fine


def test_a_viewer_cannot_change_a_rule(app: Flask) -> None:
    client = app.test_client()
    token = login(client, "viewer")
    assert client.get("/admin/rules/").status_code == 200
    response = post(client, "/admin/rules/draft", token, base_ratio="5", action="publish")
    assert response.status_code == 403
    settings = post(client, "/admin/rules/settings", token, rounding="floor")
    assert settings.status_code == 403
    assert post(client, "/admin/jobs/run", token, job="expire").status_code == 403
    assert client.get("/admin/export/members.csv").status_code == 403


def test_wrong_passwords_disabled_users_and_foreign_redirects(app: Flask, db: Database) -> None:
    client = app.test_client()
    token = csrf_token(client)
    wrong = post(client, "/login", token, username="admin", password="nope-nope")
    assert wrong.status_code == 401
    assert "Wrong username or password" in wrong.get_data(as_text=True)
    set_active(db, username="viewer", active=False)
    with pytest.raises(AssertionError):
        login(app.test_client(), "viewer")
    response = post(
        client,
        "/login",
        token,
        username="admin",
        password="admin-pass-1",
        next="//evil.example/phish",
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_logout_ends_the_session(app: Flask) -> None:
    client = app.test_client()
    token = login(client, "operations")
    assert client.get("/admin/").status_code == 200
    assert post(client, "/logout", token).status_code == 302
    assert client.get("/admin/").status_code == 302


def test_session_cookie_is_secure_httponly_and_lax(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert cookie.secure and cookie.http_only and cookie.same_site == "Lax"


def test_a_secret_key_is_required_outside_testing_and_the_demo(db: Database) -> None:
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        create_app({"JIFEN_DATABASE": db})


def test_unknown_routes_and_errors_get_friendly_pages(db: Database) -> None:
    app = build_app(db, JIFEN_RAISE_ERRORS=False)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom")

    client = app.test_client()
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert "Page not found" in missing.get_data(as_text=True)
    app.testing = False
    failing = client.get("/boom")
    assert failing.status_code == 500
    text = failing.get_data(as_text=True)
    assert "Something went wrong" in text and "kaboom" not in text and "Traceback" not in text
