"""The Analytics page in a real browser (Debian's chromium, headless, driven by Playwright).

Sixty days of a small shop: three purchases and a redemption a day, one 60,000-point order
among them, a rule change with a campaign, expiries, grants and a transfer. Over the last 30
days the issued chart keeps the ordinary days tall and shows the big order cut at the axis
with its value, the rule change as a dashed marker and the campaign shaded; each chart's
numbers open under it; a range of 120 days is drawn per week and says so; a bad range is
refused beside the form; the page reads in Chinese too.

Screenshots at 1280 and 390 pixels wide go to ``tests/e2e/screenshots/`` (``analytics-*``).
No page may scroll sideways, break the Content-Security-Policy or load anything from another
site.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services.console_users import create_user
from tests.e2e.browser_support import PageWatch, require_chromium, screenshots, served
from tests.integration.helpers import PROGRAM, earn, enrol, hold, local, make_program
from tests.integration.test_admin_support import PASSWORDS, build_app

CHROMIUM = "/usr/bin/chromium"
RULES = {
    "base_ratio": "1",
    "actions": {"review": {"points": 20}},
    "expiry": {"months": 0, "days": 21, "month_end": False},
}
MEMBERS = [f"member-{n:03d}" for n in range(40)]
FIRST_DAY = local(2026, 9, 23, 9)  # sixty days up to 21 November


def _seed(db: Database, clock: FixedClock) -> None:
    clock.set(FIRST_DAY - dt.timedelta(hours=1))
    make_program(db, rules=RULES, transfers_enabled=True, transfer_fee_points=5)
    enrol(db, *MEMBERS)
    create_user(db, username="marketing", role="marketing", password=PASSWORDS["marketing"])
    for day in range(60):
        clock.set(FIRST_DAY + dt.timedelta(days=day))
        for k in range(3):
            member = MEMBERS[(3 * day + k) % len(MEMBERS)]
            earn(db, member, f"o-{day}-{k}", 20_000 + 3_700 * ((day * 5 + k) % 13))
        if day % 4 == 0:
            s.earn_action(
                db, program=PROGRAM, member=MEMBERS[day % 40], action="review", reference=f"r{day}"
            )
        spender = MEMBERS[(3 * day + 1) % len(MEMBERS)]
        hold(db, spender, f"spend-{day}", 60 + 11 * (day % 7))
        s.capture_hold(db, program=PROGRAM, order_id=f"spend-{day}")
        if day == 40:
            earn(db, "member-007", "big-order", 6_000_000)  # 60,000 points in one day
        if day == 45:
            campaign = {
                "name": "autumn-double",
                "multiplier": "2",
                "starts_at": (FIRST_DAY + dt.timedelta(days=50)).isoformat(),
                "ends_at": (FIRST_DAY + dt.timedelta(days=53)).isoformat(),
            }
            s.publish_rules(
                db,
                program=PROGRAM,
                rules={**RULES, "base_ratio": "1.5", "campaigns": [campaign]},
                effective_from=FIRST_DAY + dt.timedelta(days=46),
            )
        if day % 10 == 5:
            s.adjust_points(
                db,
                program=PROGRAM,
                member=MEMBERS[day % 40],
                points=150,
                reason="service",
                adjustment_id=f"g{day}",
            )
        if day % 15 == 7:
            s.transfer_points(
                db,
                program=PROGRAM,
                sender=MEMBERS[(3 * day) % 40],
                recipient="member-039",
                points=100,
                transfer_id=f"t{day}",
            )
        clock.advance(dt.timedelta(hours=10))
        s.expire_due(db)
    clock.set(local(2026, 11, 21, 18))


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    require_chromium()
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    clock = FixedClock(FIRST_DAY)
    db = Database.from_url(f"sqlite:///{path}", clock=clock)
    _seed(db, clock)
    app = build_app(
        db, seed=False, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False
    )
    with served(app) as base:
        yield base
    db.dispose()


def test_the_analytics_page_reads_right_on_a_laptop_and_a_phone(console: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    base = console
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        watch = PageWatch(base).attach(page)
        page.goto(f"{base}/login")
        page.fill("#username", "marketing")
        page.fill("#password", PASSWORDS["marketing"])
        page.click("button[type=submit]")
        page.get_by_role("link", name="Analytics").first.click()
        expect(page.get_by_test_id("period")).to_contain_text(
            "Oct 23, 2026 to Nov 21, 2026 (30 days)"
        )
        expect(page.get_by_test_id("preset-30d")).to_have_class(re.compile("btn-dark"))

        issued = page.get_by_test_id("chart-issued")
        clipped = issued.locator("text.jifen-clipped")
        expect(clipped).to_have_count(1)
        expect(clipped).to_have_text(re.compile(r"^6\d,\d{3}"))  # the big order's day
        expect(issued.locator("g.jifen-marker")).to_have_count(1)
        expect(issued.locator("rect.jifen-band")).to_have_count(1)
        heights = issued.locator("rect[data-value]").evaluate_all(
            "rs => rs.map(r => r.getBoundingClientRect().height)"
        )
        ordinary = sorted(heights)[len(heights) // 2]
        assert ordinary > 0.15 * max(heights), "ordinary days flattened by the big order"

        numbers = page.get_by_test_id("chart-issued-numbers")
        expect(numbers.locator("table")).to_be_hidden()
        numbers.locator("summary").click()
        expect(numbers.locator("table")).to_be_visible()
        expect(numbers.locator("tr").nth(1)).to_contain_text("2026-10-23")
        screenshots(page, "analytics")

        page.get_by_test_id("preset-90d").click()
        expect(page.get_by_test_id("period")).to_contain_text("(90 days)")
        page.fill("#from", "2026-07-25")
        page.fill("#to", "2026-11-21")
        page.get_by_test_id("range-form").locator("button[type=submit]").click()
        expect(page.get_by_test_id("per-week")).to_be_visible()
        expect(page.get_by_test_id("chart-issued").locator("h6")).to_contain_text("per week")
        screenshots(page, "analytics-weeks")

        page.goto(f"{base}/admin/analytics/?from=2026-11-20&to=2026-11-01")
        expect(page.get_by_test_id("range-refused")).to_contain_text(
            "from (2026-11-20) must not be after to (2026-11-01)"
        )
        expect(page.locator("#from")).to_have_class(re.compile("is-invalid"))
        screenshots(page, "analytics-refused")

        page.goto(f"{base}/admin/analytics/?lang=zh")
        expect(page.locator("h4")).to_contain_text("积分分析")
        screenshots(page, "analytics-zh")
        browser.close()
    watch.assert_clean()
