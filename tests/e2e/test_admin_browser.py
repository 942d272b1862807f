"""The console end to end in a real browser: Debian's chromium, headless, driven by Playwright.

1. marketing changes the ratio, sees the preview, publishes;
2. a purchase recorded through the SDK shows on the dashboard and the member page;
3. operations makes a large adjustment and a second person approves it;
4. both are in the audit log.

No page may break the Content-Security-Policy (no inline script or style): the browser's
console errors (other than HTTP statuses, such as the bad query's 400) must stay empty.

Screenshots of every step are saved in ``tests/e2e/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalty.db import Database
from sdk import Jifen
from tests.e2e.browser_support import served
from tests.integration.helpers import PROGRAM
from tests.integration.test_admin_support import PASSWORDS, build_app

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture
def console_url(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI=true requires it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    db = Database.from_url(url)
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    with served(app) as base:
        yield base, url
    db.dispose()


def test_marketing_publishes_a_purchase_shows_and_a_large_adjustment_is_approved(
    console_url: tuple[str, str],
) -> None:
    from playwright.sync_api import ConsoleMessage, Page, expect, sync_playwright

    base, database_url = console_url
    SHOTS.mkdir(exist_ok=True)

    def shot(page: Page, name: str) -> None:
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def sign_in(page: Page, username: str) -> None:
        page.goto(f"{base}/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORDS[username])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text(username)

    def sign_out(page: Page) -> None:
        page.click("text=Sign out")
        expect(page).to_have_url(f"{base}/login")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        failed: list[str] = []
        elsewhere: list[str] = []
        page.on(
            "requestfailed",
            lambda r: r.failure == "net::ERR_ABORTED" or failed.append(f"{r.url} {r.failure}"),
        )
        page.on("request", lambda r: r.url.startswith(base) or elsewhere.append(r.url))
        console_errors: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not message.text.startswith("Failed to load"):
                console_errors.append(message.text)

        page.on("console", on_console)

        # 1. marketing: change the ratio, preview, publish
        sign_in(page, "marketing")
        page.goto(f"{base}/admin/rules/")
        page.fill("#base_ratio", "2")
        page.click("[data-testid=preview-button]")
        expect(page.get_by_test_id("preview-current")).to_have_text("100 points")
        expect(page.get_by_test_id("preview-draft")).to_have_text("200 points")
        shot(page, "1-rules-preview")
        page.click("[data-testid=publish]")
        expect(page.locator(".alert-success")).to_contain_text("Published rules version 2")
        shot(page, "1-rules-published")
        sign_out(page)

        # 2. a purchase through the SDK shows on the dashboard and the member page
        with Jifen(database_url, program=PROGRAM) as jifen:
            earned = jifen.earn(member="alice", order_id="order-e2e-1", amount_minor=10_000)
        assert earned.points_granted == 200
        sign_in(page, "viewer")
        page.goto(f"{base}/admin/")
        expect(page.get_by_test_id("outstanding")).to_have_text("200")
        expect(page.get_by_test_id("top-earners")).to_contain_text("alice")
        shot(page, "2-dashboard")
        page.goto(f"{base}/admin/members/?q=alice")
        expect(page.get_by_test_id("available")).to_have_text("200")
        expect(page.get_by_test_id("history")).to_contain_text("earn")
        shot(page, "2-member")
        sign_out(page)

        # 3. operations asks for a large adjustment; a second person approves it
        sign_in(page, "operations")
        page.goto(f"{base}/admin/adjustments/")
        page.fill("#member", "alice")
        page.fill("#points", "5000")
        page.fill("#reason", "apology for a lost parcel")
        page.click("[data-testid=adjust-form] button[type=submit]")
        expect(page.locator(".alert-info")).to_contain_text("waits for a second person")
        expect(page.get_by_test_id("pending")).to_contain_text("needs another person")
        shot(page, "3-adjustment-pending")
        sign_out(page)
        sign_in(page, "operations2")
        page.goto(f"{base}/admin/adjustments/")
        page.get_by_test_id("pending").get_by_role("button", name="Approve").click()
        expect(page.locator(".alert-success")).to_contain_text("approved and applied")
        shot(page, "3-adjustment-approved")
        page.goto(f"{base}/admin/members/member?id=alice")
        expect(page.get_by_test_id("available")).to_have_text("5,200")

        # 4. both are in the audit log
        page.goto(f"{base}/admin/audit/")
        audit = page.get_by_test_id("audit")
        expect(audit).to_contain_text("rules.publish")
        expect(audit).to_contain_text("adjustment.approve")
        expect(audit).to_contain_text("adjustment.applied")
        shot(page, "4-audit-log")
        page.goto(f"{base}/admin/jobs/")
        shot(page, "5-jobs")
        page.goto(f"{base}/admin/export/")
        expect(page.locator(".jifen-max-40")).to_be_visible()
        shot(page, "6-export")
        page.goto(f"{base}/admin/members/?q=%00")
        expect(page.locator("body")).to_contain_text("U+0000")
        shot(page, "7-bad-query")
        browser.close()
    assert not failed, f"requests failed (assets missing?): {failed}"
    assert not elsewhere, f"the console loaded something from another site: {elsewhere}"
    assert not console_errors, f"the browser reported errors (CSP?): {console_errors}"
