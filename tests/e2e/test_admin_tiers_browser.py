"""Tiers in the console in a real browser (Debian's chromium, headless, driven by Playwright):

1. marketing reads the ladder in force, its settings in words and the forecast, previews a
   draft (members per tier now and under the draft) and publishes it from a local date;
2. the dashboard charts members per tier;
3. admin reads a member's tier panel (progress, history in words) and sets the tier by hand
   with a lock.

Screenshots of each page at 1280 and 390 pixels wide are saved in ``tests/e2e/screenshots/``
(``admin-tiers-*``). No page may overflow the window, break the Content-Security-Policy or
load anything from another site.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from tests.e2e.browser_support import served
from tests.integration.helpers import PROGRAM, earn, enrol, local
from tests.integration.test_admin_support import PASSWORDS, build_app

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"
WIDTHS = (1280, 390)
LADDER = {
    "tiers": [
        {"code": "member", "name": "普通 Member", "threshold": 0},
        {
            "code": "silver",
            "name": "银卡 Silver",
            "threshold": 1_000,
            "multiplier": "1.5",
            "benefits": ["Free shipping", "生日礼物 Birthday gift"],
        },
        {"code": "gold", "name": "金卡 Gold", "threshold": 5_000, "multiplier": "2"},
    ],
    "grace_days": 30,
}


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Database, FixedClock]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI=true requires it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    clock = FixedClock(local(2026, 3, 1, 10))
    db = Database.from_url(f"sqlite:///{path}", clock=clock)
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    with served(app) as base:
        yield base, db, clock
    db.dispose()


def _seed(db: Database, clock: FixedClock) -> None:
    """Tiers in force, and members spread over them (alice silver, carol gold)."""
    s.publish_tiers(db, program=PROGRAM, rules=LADDER, created_by="marketing")
    enrol(db, "carol", "dave", "erin")
    earn(db, "alice", "o-11", 120_000)
    earn(db, "bob", "o-21", 40_000)
    earn(db, "carol", "o-31", 300_000)
    earn(db, "carol", "o-32", 250_000)
    earn(db, "dave", "o-41", 90_000)
    clock.set(local(2027, 2, 1, 10))


def test_marketing_previews_and_publishes_tiers_and_admin_sets_a_member_tier(
    console: tuple[str, Database, FixedClock],
) -> None:
    from playwright.sync_api import ConsoleMessage, Page, Request, expect, sync_playwright

    base, db, clock = console
    _seed(db, clock)
    SHOTS.mkdir(exist_ok=True)

    def shots(page: Page, name: str) -> None:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=str(SHOTS / f"admin-tiers-{name}-{width}.png"), full_page=True)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} at {width}px is {overflow}px wider than the window"
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})

    def sign_in(page: Page, username: str) -> None:
        page.goto(f"{base}/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORDS[username])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text(username)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": WIDTHS[0], "height": 900})
        failed: list[str] = []
        elsewhere: list[str] = []
        console_errors: list[str] = []

        def on_failed(request: Request) -> None:
            if request.failure != "net::ERR_ABORTED":
                failed.append(f"{request.url} {request.failure}")

        def on_request(request: Request) -> None:
            if not request.url.startswith(base):
                elsewhere.append(request.url)

        page.on("requestfailed", on_failed)
        page.on("request", on_request)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not message.text.startswith("Failed to load"):
                console_errors.append(message.text)

        page.on("console", on_console)

        # 1. marketing reads the tiers, previews a draft and publishes it from a local date
        sign_in(page, "marketing")
        page.get_by_role("link", name="Tiers", exact=True).click()
        expect(page.get_by_test_id("in-force")).to_contain_text("tier version 1")
        expect(page.get_by_test_id("ladder-table")).to_contain_text("1,000 points")
        expect(page.get_by_test_id("ladder-settings")).to_contain_text("30 days after the period")
        expect(page.get_by_test_id("forecast-90").locator("td").last).to_have_text("2")
        shots(page, "1-page")
        editor = page.get_by_test_id("ladder-editor")
        editor.get_by_label("tier 3 threshold").fill("3,000")
        editor.get_by_label("tier 4 code").fill("platinum")
        editor.get_by_label("tier 4 name").fill("白金 Platinum")
        editor.get_by_label("tier 4 threshold").fill("2,000")
        page.get_by_test_id("preview-button").click()
        expect(page.get_by_test_id("problem")).to_contain_text("needs a threshold above")
        shots(page, "2-refused")
        page.get_by_test_id("ladder-editor").get_by_label("tier 4 threshold").fill("20,000")
        page.fill("#effective_from", "2027-03-01T00:00")
        page.get_by_test_id("preview-button").click()
        expect(page.get_by_test_id("preview-now-silver")).to_have_text("1")
        expect(page.get_by_test_id("preview-draft-gold")).to_have_text("1")
        expect(page.get_by_test_id("preview-now-platinum")).to_have_text("—")
        shots(page, "3-preview")
        page.get_by_test_id("publish").click()
        expect(page.locator(".alert-success")).to_contain_text(
            "Published tier version 2, in force from Mar 1, 2027, 00:00 (Asia/Shanghai)."
        )
        expect(page.get_by_test_id("scheduled")).to_contain_text("tier version 2")
        expect(page.get_by_test_id("ladder-v2-table")).to_contain_text("白金 Platinum")
        shots(page, "4-scheduled")

        # 2. the dashboard charts members per tier
        page.goto(f"{base}/admin/")
        expect(page.get_by_test_id("tier-chart")).to_contain_text("Members per tier now")
        expect(page.get_by_test_id("tier-counts")).to_contain_text("金卡 Gold 1")
        shots(page, "5-dashboard")
        page.click("text=Sign out")

        # 3. admin reads alice's tier panel and sets her tier by hand with a lock
        sign_in(page, "admin")
        page.goto(f"{base}/admin/members/member?id=alice")
        panel = page.get_by_test_id("tier-panel")
        expect(panel.get_by_test_id("tier-name")).to_have_text("银卡 Silver")
        expect(panel.get_by_test_id("tier-next")).to_contain_text("3,800 points more for 金卡 Gold")
        expect(panel.get_by_test_id("tier-keep")).to_contain_text("Mar 31, 2027")
        expect(panel.get_by_test_id("tier-history")).to_contain_text(
            "Moved up from 普通 Member to 银卡 Silver: earned"
        )
        expect(panel.get_by_test_id("tier-progress")).to_be_visible()
        shots(page, "6-member")
        panel = page.get_by_test_id("tier-panel")
        panel.locator("#tier").select_option("gold")
        panel.locator("#locked_until").fill("2027-06-01")
        panel.locator("#tier_reason").fill("VIP guest")
        panel.locator("button[type=submit]").click()
        expect(page.locator(".alert-success")).to_contain_text("locked until 2027-06-01")
        panel = page.get_by_test_id("tier-panel")
        expect(panel.get_by_test_id("tier-lock")).to_contain_text("until Jun 1, 2027")
        expect(panel.get_by_test_id("tier-history")).to_contain_text(
            "Set to 金卡 Gold by admin: VIP guest, locked until 2027-06-01"
        )
        shots(page, "7-member-locked")
        browser.close()

    assert s.tier_progress(db, program=PROGRAM, member="alice").tier == "gold"
    assert not failed, f"requests failed (assets missing?): {failed}"
    assert not elsewhere, f"the console loaded something from another site: {elsewhere}"
    assert not console_errors, f"the browser reported errors (CSP?): {console_errors}"
