"""The console's member page and the dashboard's top earners in a real browser (Debian's
chromium, headless, Playwright), at 1280 and 1400 pixels and at a phone's 390.

A member with a long history (pending points, maturing sweeps with their long references,
a spend, a refund, a manual grant with a long reason) must not make the page scroll sideways
at any width; at 1280 and 1400 the history must fit its card (nothing hidden in a scroll box),
on a phone it may scroll inside its card. Screenshots are saved in ``tests/e2e/screenshots/``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services.console_users import create_user
from tests.e2e.browser_support import served
from tests.integration.helpers import PROGRAM, earn, enrol, hold, make_program
from tests.integration.test_admin_support import PASSWORDS, build_app

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"
WIDE = (1280, 1400)
PHONE = 390
START = dt.datetime(2026, 10, 1, 2, 0, tzinfo=dt.UTC)
RULES = {
    "base_ratio": "1",
    "pending_days": 7,
    "expiry": {"months": 3, "days": 0, "month_end": True},
}


def _seed(db: Database, clock: FixedClock) -> None:
    """alice: eight orders with long ids, each matured by a sweep, a spend, a refund being
    processed, a grant with a long reason; bob: a small order and a 50,000-point grant."""
    make_program(db, rules=RULES, clearing_policy="all")
    enrol(db, "alice", "bob")
    for username, password in PASSWORDS.items():
        role = "operations" if username == "operations2" else username
        create_user(db, username=username, role=role, password=password)
    for n in range(8):
        earn(db, "alice", f"shanghai-flagship-store-order-2026-{n:04d}", 123_400 + n * 1_000)
        clock.advance(dt.timedelta(days=8))
        s.mature_pending(db)
    hold(db, "alice", "shanghai-flagship-store-order-2026-spend", 2_500)
    s.capture_hold(db, program=PROGRAM, order_id="shanghai-flagship-store-order-2026-spend")
    s.refund_order(
        db,
        program=PROGRAM,
        order_id="shanghai-flagship-store-order-2026-0003",
        refund_id="re_3PvQx8Lk2eZvKYlo2C7n9aBc",
        amount_minor=50_000,
        currency="CNY",
    )
    s.adjust_points(
        db,
        program=PROGRAM,
        member="alice",
        points=800,
        reason="parcel lost twice by the courier; customer called the Pudong store about it",
        adjustment_id="goodwill-alice-1",
        actor="operations",
    )
    earn(db, "bob", "bob-order-1", 30_000)
    s.adjust_points(
        db, program=PROGRAM, member="bob", points=50_000, reason="goodwill", adjustment_id="g"
    )


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI=true requires it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    clock = FixedClock(START)
    db = Database.from_url(f"sqlite:///{path}", clock=clock)
    _seed(db, clock)
    app = build_app(
        db, seed=False, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False
    )
    with served(app) as base:
        yield base
    db.dispose()


# How far the page, and each table's scroll box, is wider than what shows it.
PAGE_OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
BOX_OVERFLOW = "e => e.scrollWidth - e.clientWidth"


def test_the_member_page_and_top_earners_fit_at_1280_1400_and_on_a_phone(console: str) -> None:
    from playwright.sync_api import ConsoleMessage, Page, expect, sync_playwright

    base = console
    SHOTS.mkdir(exist_ok=True)

    def look(page: Page, name: str, width: int) -> None:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"admin-{name}-{width}.png"), full_page=True)
        overflow = page.evaluate(PAGE_OVERFLOW)
        assert overflow <= 0, f"{name} at {width}px scrolls sideways by {overflow}px"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": WIDE[0], "height": 900})
        console_errors: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not message.text.startswith("Failed to load"):
                console_errors.append(message.text)

        page.on("console", on_console)
        page.goto(f"{base}/login")
        page.fill("#username", "operations")
        page.fill("#password", PASSWORDS["operations"])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text("operations")

        page.goto(f"{base}/admin/members/member?id=alice")
        history = page.get_by_test_id("history")
        expect(history).to_contain_text("Earned, pending")
        expect(history).to_contain_text("Manual grant")
        expect(history).to_contain_text("Refund: frozen")
        expect(history).not_to_contain_text("earn_pending")
        box = page.locator(".table-responsive", has=history)
        for width in WIDE:
            look(page, "member", width)
            hidden = box.evaluate(BOX_OVERFLOW)
            assert hidden <= 0, f"the history hides {hidden}px in a scroll box at {width}px"
        look(page, "member", PHONE)

        page.goto(f"{base}/admin/")
        top = page.get_by_test_id("top-earners")
        expect(top.locator("tbody tr").first).to_contain_text("alice")
        expect(top.locator("tbody tr").nth(1)).to_contain_text("50,000")
        earners = page.locator(".table-responsive", has=top)
        for width in WIDE:
            look(page, "dashboard-top-earners", width)
            hidden = earners.evaluate(BOX_OVERFLOW)
            assert hidden <= 0, f"top earners hide {hidden}px in a scroll box at {width}px"
        look(page, "dashboard-top-earners", PHONE)
        browser.close()
    assert not console_errors, f"the browser reported errors (CSP?): {console_errors}"
