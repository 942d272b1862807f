"""Adjustments, buttons, flashes and the 403 page in a real browser (Debian's chromium,
headless, Playwright), at 1280 and 1400 px and at a phone's 390 px.

Operations asks for a deduction beyond the balance (refused at once, in red), a large grant
(waiting, in blue) that a second person sees with a green Approve and a red-outlined Reject,
and approves (green). Secondary buttons (Show, Dashboard) are not the pale grey of a
disabled one. A viewer opening the adjustments gets the console's 403 page naming the roles
(its Dashboard button is such a secondary one).
No page scrolls sideways. Screenshots go to ``tests/e2e/screenshots/console-*.png``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loyalty.db import Database
from tests.e2e.test_admin_browser import CHROMIUM, SHOTS, console_url
from tests.integration.helpers import PROGRAM, earn
from tests.integration.test_admin_support import PASSWORDS

__all__ = ["console_url"]  # the fixture, shared with the console's main browser test

WIDTHS = (1280, 1400, 390)
GREEN, RED, BLUE = "rgb(220, 239, 212)", "rgb(248, 215, 216)", "rgb(219, 234, 246)"
DISABLED_GREY = "rgb(233, 236, 239)"  # the swatch's btn-outline-secondary, as if disabled
RED_OUTLINE = "rgb(179, 24, 29)"


@pytest.fixture
def console(console_url: tuple[str, str]) -> Iterator[str]:
    base, database_url = console_url
    db = Database.from_url(database_url)
    earn(db, "alice", "o-browser-1", 262_100, program=PROGRAM)  # 2,621 points
    db.dispose()
    yield base


def test_adjustment_buttons_flashes_and_the_403_page(console: str) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    base = console
    SHOTS.mkdir(exist_ok=True)
    overflowing: list[str] = []

    def look(page: Page, name: str) -> None:
        """Screenshots at every width, noting any page that scrolls sideways."""
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
            if wide:
                overflowing.append(f"{name} at {width} px")
            if width != 1400:
                page.screenshot(path=str(SHOTS / f"console-{name}-{width}.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

    def sign_in(page: Page, username: str) -> None:
        page.goto(f"{base}/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORDS[username])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text(username)

    def alert_colour(page: Page) -> str:
        return str(page.eval_on_selector(".alert", "e => getComputedStyle(e).backgroundColor"))

    def adjust(page: Page, points: str, reason: str) -> None:
        page.fill("#member", "alice")
        page.fill("#points", points)
        page.fill("#reason", reason)
        page.click("[data-testid=adjust-form] button[type=submit]")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        ops = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(ops, "operations")
        ops.goto(f"{base}/admin/adjustments/")
        adjust(ops, "-1000000", "stock count correction")
        expect(ops.locator(".alert")).to_contain_text("2,621 points")
        expect(ops.locator(".alert")).to_contain_text("1,000,000")
        assert alert_colour(ops) == RED
        expect(ops.get_by_test_id("pending")).to_contain_text("Nothing waits for approval")
        look(ops, "adjust-refused")

        adjust(ops, "1500", "apology for a lost parcel")
        expect(ops.locator(".alert")).to_contain_text("waits for a second person")
        assert alert_colour(ops) == BLUE
        withdraw = ops.locator("[data-testid=pending] button", has_text="Withdraw")
        assert withdraw.evaluate("e => getComputedStyle(e).borderTopColor") == RED_OUTLINE
        look(ops, "adjust-waiting")

        second = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(second, "operations2")
        second.goto(f"{base}/admin/adjustments/")
        reject = second.locator("[data-testid=pending] button", has_text="Reject")
        assert reject.evaluate("e => getComputedStyle(e).borderTopColor") == RED_OUTLINE
        assert reject.evaluate("e => getComputedStyle(e).color") == RED_OUTLINE
        look(second, "adjust-queue")
        second.click("[data-testid=pending] button:has-text('Approve')")
        expect(second.locator(".alert")).to_contain_text("+1,500 points")
        assert alert_colour(second) == GREEN
        look(second, "adjust-approved")

        viewer = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(viewer, "viewer")
        viewer.goto(f"{base}/admin/members/")
        response = viewer.goto(f"{base}/admin/adjustments/", referer=f"{base}/admin/members/")
        assert response is not None and response.status == 403
        expect(viewer.get_by_test_id("roles-needed")).to_contain_text("operations or admin")
        expect(viewer.get_by_test_id("signed-in-as")).to_contain_text("viewer")
        expect(viewer.get_by_test_id("whoami")).to_contain_text("viewer")
        secondary = viewer.locator(".btn-outline-secondary", has_text="Dashboard")
        assert secondary.evaluate("e => getComputedStyle(e).borderTopColor") != DISABLED_GREY
        assert secondary.evaluate("e => getComputedStyle(e).color") != DISABLED_GREY
        look(viewer, "forbidden")
        viewer.click("[data-testid=back]")
        expect(viewer).to_have_url(f"{base}/admin/members/")
        browser.close()

    assert not overflowing, f"pages scroll sideways: {', '.join(overflowing)}"
