"""The dashboard's charts and the jobs page's forecast in a real browser (Debian's chromium,
headless, Playwright), at 1280 and 1400 pixels and at a phone's 390.

Thirty days of purchases and redemptions with one 50,000-point grant among them: the daily
chart keeps the ordinary days tall and shows the grant cut at the axis with its total, issued
above the line and redeemed below it with the legend in view; the expiry card leads with 90
days; the forecast has a bar for every week and its rows in pages. No page may scroll
sideways; on a phone the charts scroll inside their cards. Screenshots are saved in
``tests/e2e/screenshots/``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
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
START = dt.datetime(2026, 10, 20, 2, 0, tzinfo=dt.UTC)
RULES = {"base_ratio": "1", "expiry": {"months": 3, "days": 0, "month_end": True}}
MEMBERS = [f"member-{n:03d}" for n in range(60)]
PAGE_OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


def _seed(db: Database, clock: FixedClock) -> None:
    """Sixty members; for thirty days two of them buy and one redeems; one 50,000 grant."""
    make_program(db, rules=RULES)
    enrol(db, *MEMBERS)
    create_user(db, username="viewer", role="viewer", password=PASSWORDS["viewer"])
    for day in range(30):
        for k in range(2):
            member = MEMBERS[(2 * day + k) % len(MEMBERS)]
            earn(db, member, f"order-{day}-{k}", 150_000 + 7_300 * ((day * 3 + k) % 11))
        spender = MEMBERS[(2 * day) % len(MEMBERS)]
        hold(db, spender, f"spend-{day}", 600 + 40 * (day % 9))
        s.capture_hold(db, program=PROGRAM, order_id=f"spend-{day}")
        if day == 12:
            s.adjust_points(
                db,
                program=PROGRAM,
                member="member-007",
                points=50_000,
                reason="launch",
                adjustment_id="launch-grant",
            )
        clock.advance(dt.timedelta(days=1))


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


def test_dashboard_charts_and_the_forecast_read_right_at_1280_1400_and_on_a_phone(
    console: str,
) -> None:
    from playwright.sync_api import ConsoleMessage, Page, expect, sync_playwright

    base = console
    SHOTS.mkdir(exist_ok=True)

    def look(page: Page, name: str, width: int) -> None:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"charts-{name}-{width}.png"), full_page=True)
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
        page.fill("#username", "viewer")
        page.fill("#password", PASSWORDS["viewer"])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text("viewer")

        page.goto(f"{base}/admin/")
        flows = page.get_by_test_id("flows-chart")
        clipped = flows.locator("text.jifen-clipped")
        expect(clipped).to_have_count(1)
        # the launch day's total, written out in full
        expect(clipped).to_have_text(re.compile(r"^5\d,\d{3}"))
        expect(page.get_by_test_id("expiring")).to_contain_text("in 90 days")
        for width in WIDE:
            look(page, "dashboard", width)
            assert clipped.is_visible()
            for name in ("issued", "redeemed"):
                assert flows.locator("text", has_text=name).is_visible()
            tallest = flows.locator("rect[data-value]").evaluate_all(
                "rs => rs.filter(r => r.querySelector('title').textContent.includes('issued'))"
                ".map(r => r.getBoundingClientRect().height)"
            )
            ordinary = sorted(tallest)[len(tallest) // 2]
            assert ordinary > 0.25 * max(tallest), f"ordinary days flattened at {width}px"
        look(page, "dashboard", PHONE)

        page.goto(f"{base}/admin/jobs/?days=120")
        forecast = page.get_by_test_id("forecast")
        expect(forecast.locator("h5")).to_contain_text("by week")
        expect(page.get_by_test_id("forecast-count")).to_contain_text("rows 1–50 of")
        weeks = page.get_by_test_id("forecast-chart").locator("text:has(tspan)")
        expect(weeks).to_have_count(18)  # 120 days from 19 November
        for width in WIDE:
            look(page, "forecast", width)
        look(page, "forecast", PHONE)
        page.get_by_test_id("forecast-pages").get_by_role("link", name="Next").click()
        expect(page.get_by_test_id("forecast-count")).to_contain_text("rows 51–")
        look(page, "forecast-page-2", PHONE)
        page.goto(f"{base}/admin/jobs/?days=0")
        expect(page.locator("body")).to_contain_text("days must be a whole number from 1 to 366")
        look(page, "forecast-bad-days", WIDE[0])
        browser.close()
    assert not console_errors, f"the browser reported errors (CSP?): {console_errors}"
