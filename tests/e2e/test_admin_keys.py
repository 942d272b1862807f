"""The console's API keys page: only admins open it; a new key's secret is shown once, on the
page that answers the form, and nowhere after; revoking and the origins are audited; a
browser at laptop width renders it within the Content-Security-Policy.

The screenshot is saved in ``tests/e2e/screenshots/``.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from loyalty.db import Database
from loyalty.errors import NotAuthenticated
from loyalty.services import api_keys, list_audit
from tests.e2e.browser_support import served
from tests.integration.helpers import PROGRAM, row_counts
from tests.integration.test_admin_support import PASSWORDS, build_app, login, post

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"
PAGE = "/admin/keys/"
SECRET = re.compile(r"jfn_sk_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def app(db: Database) -> Flask:
    return build_app(db)


def signed_in(app: Flask, username: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, username)


def audit_actions(db: Database, prefix: str) -> list[tuple[str, str, str]]:
    found = list_audit(db, program=PROGRAM, action=prefix).items
    return [(a.actor, a.action, a.target) for a in found]


@pytest.mark.parametrize("username", ["viewer", "marketing", "operations"])
def test_only_admins_may_open_or_change_keys(app: Flask, db: Database, username: str) -> None:
    key = api_keys.create_key(db, program=PROGRAM, scopes=["read"], label="storefront").key
    client, token = signed_in(app, username)
    assert client.get(PAGE).status_code == 403
    assert "API keys" not in client.get("/admin/").get_data(as_text=True)  # not in the menu
    before = row_counts(db)
    for path, form in [
        ("create", {"label": "x", "scopes": "admin"}),
        ("revoke", {"key_id": key.id}),
        ("origins/add", {"origin": "https://evil.example"}),
        ("origins/remove", {"origin": "https://evil.example"}),
    ]:
        assert post(client, PAGE + path, token, **form).status_code == 403, path
    assert row_counts(db) == before
    assert api_keys.list_keys(db, program=PROGRAM)[0].revoked_at is None


def test_admin_creates_a_key_and_sees_its_secret_only_once(app: Flask, db: Database) -> None:
    client, token = signed_in(app, "admin")
    assert "API keys" in client.get("/admin/").get_data(as_text=True)
    response = client.post(
        PAGE + "create",
        data={
            "csrf_token": token,
            "label": "checkout server",
            "scopes": ["earn", "read"],
            "expires_in_days": "30",
        },
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    secrets = set(SECRET.findall(page))
    assert len(secrets) == 1, page
    secret = secrets.pop()
    assert "shown only this once" in page

    key = api_keys.authenticate(db, secret)
    assert (key.label, key.scopes, key.created_by) == ("checkout server", ("read", "earn"), "admin")
    assert key.expires_at is not None
    assert key.expires_at - db.clock.now() == dt.timedelta(days=30)

    listing = client.get(PAGE).get_data(as_text=True)
    assert secret not in listing
    assert f"{key.prefix}…" in listing
    assert not SECRET.search(listing)  # only prefixes, and no leftover flash of the secret
    assert audit_actions(db, "api_key.") == [("admin", "api_key.create", f"api key {key.prefix}")]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"label": "no scopes"}, "scopes"),
        ({"label": "bad scope", "scopes": ["read", "root"]}, "Must be one of"),
        ({"scopes": ["read"]}, "label"),
        ({"label": "past", "scopes": ["read"], "expires_in_days": "0"}, "expires_in_days"),
        ({"label": "text", "scopes": ["read"], "expires_in_days": "soon"}, "expires_in_days"),
    ],
)
def test_a_bad_new_key_form_is_refused_and_creates_nothing(
    app: Flask, db: Database, form: dict[str, object], message: str
) -> None:
    client, token = signed_in(app, "admin")
    response = client.post(PAGE + "create", data={"csrf_token": token, **form})
    assert response.status_code == 302
    page = client.get(PAGE).get_data(as_text=True)
    assert "please correct the form" in page
    assert message in page
    assert api_keys.list_keys(db, program=PROGRAM) == []


def test_admin_revokes_a_key_and_it_is_audited(app: Flask, db: Database) -> None:
    created = api_keys.create_key(db, program=PROGRAM, scopes=["read"], label="old storefront")
    client, token = signed_in(app, "admin")
    response = post(client, PAGE + "revoke", token, key_id=created.key.id)
    assert response.status_code == 302
    page = client.get(PAGE).get_data(as_text=True)
    assert f"API key {created.key.prefix}… (old storefront) is revoked" in page
    assert "revoked</span>" in page
    with pytest.raises(NotAuthenticated, match="revoked"):
        api_keys.authenticate(db, created.secret)
    assert ("admin", "api_key.revoke", f"api key {created.key.prefix}") in audit_actions(
        db, "api_key."
    )

    missing = post(client, PAGE + "revoke", token, key_id=999)
    assert missing.status_code == 302
    assert "no single API key" in client.get(PAGE).get_data(as_text=True)


def test_admin_manages_the_origins(app: Flask, db: Database) -> None:
    client, token = signed_in(app, "admin")
    post(client, PAGE + "origins/add", token, origin="https://Shop.example/")
    page = client.get(PAGE).get_data(as_text=True)
    assert "https://shop.example is allowed" in page
    assert api_keys.list_origins(db, program=PROGRAM) == ["https://shop.example"]

    post(client, PAGE + "origins/add", token, origin="javascript:alert(1)")
    page = client.get(PAGE).get_data(as_text=True)
    assert "an origin is scheme://host[:port]" in page
    assert api_keys.list_origins(db, program=PROGRAM) == ["https://shop.example"]

    post(client, PAGE + "origins/remove", token, origin="https://shop.example")
    assert "is no longer allowed" in client.get(PAGE).get_data(as_text=True)
    assert api_keys.list_origins(db, program=PROGRAM) == []
    actions = [action for _, action, _ in audit_actions(db, "api_origin.")]
    assert sorted(actions) == ["api_origin.add", "api_origin.remove"]


def test_a_post_without_the_csrf_token_is_refused(app: Flask, db: Database) -> None:
    client, _ = signed_in(app, "admin")
    response = client.post(PAGE + "create", data={"label": "x", "scopes": "read"})
    assert response.status_code == 400
    assert api_keys.list_keys(db, program=PROGRAM) == []


# --- in a browser ---------------------------------------------------------------------------


@pytest.fixture
def console_url(sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    db = Database.from_url(f"sqlite:///{path}")
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    api_keys.create_key(db, program=PROGRAM, scopes=["read"], label="storefront")
    old = api_keys.create_key(db, program=PROGRAM, scopes=["earn", "redeem"], label="old till")
    api_keys.revoke_key(db, program=PROGRAM, key=old.key.id)
    api_keys.add_origin(db, program=PROGRAM, origin="https://shop.example")
    with served(app) as base:
        yield base
    db.dispose()


def test_the_keys_page_in_a_browser_at_laptop_width(console_url: str) -> None:
    from playwright.sync_api import ConsoleMessage, expect, sync_playwright

    base = console_url
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        errors: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not message.text.startswith("Failed to load"):
                errors.append(message.text)

        page.on("console", on_console)
        page.goto(f"{base}/login")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORDS["admin"])
        page.click("button[type=submit]")
        page.get_by_role("link", name="API keys").click()
        expect(page.get_by_test_id("keys")).to_contain_text("storefront")
        expect(page.get_by_test_id("keys")).to_contain_text("revoked")
        expect(page.get_by_test_id("origins")).to_contain_text("https://shop.example")

        page.fill("#label", "checkout server")
        page.check("#scope-earn")
        page.check("#scope-redeem")
        page.fill("#expires_in_days", "90")
        page.click("[data-testid=key-form] button[type=submit]")
        secret = page.get_by_test_id("secret").input_value()
        assert SECRET.fullmatch(secret)
        expect(page.locator(".alert-warning")).to_contain_text("shown only this once")
        page.screenshot(path=str(SHOTS / "8-api-key-created.png"), full_page=True)

        page.get_by_role("link", name="back to the keys").click()
        expect(page.get_by_test_id("keys")).to_contain_text("checkout server")
        assert secret not in page.content()
        page.screenshot(path=str(SHOTS / "8-api-keys.png"), full_page=True)
        browser.close()
    assert not errors, f"the browser reported errors (CSP?): {errors}"
