"""The rules page in a real browser (Debian's chromium, headless, Playwright): marketing
schedules a version with a weekend campaign, sees it apart from the version in force, every
campaign column without a scroll box, the preview naming both sides and its changes in words,
opens the scheduled version in the editor, cancels it after a confirmation that says what
stays in force and what it would have changed, and reads both in the audit log in words.

At 1280 and 1400 px and at 390 px (a phone) no page scrolls sideways. Screenshots go to
``tests/e2e/screenshots/rules-*.png``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.e2e.test_admin_browser import CHROMIUM, SHOTS, console_url
from tests.integration.test_admin_support import PASSWORDS

__all__ = ["console_url"]  # the fixture, shared with the console's main browser test

WIDE = ({"width": 1280, "height": 900}, {"width": 1400, "height": 900})
PHONE = {"width": 390, "height": 844}


def _sideways(page: Any) -> int:
    """How far the page reaches past the window's right edge (0: it fits)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def _hidden_campaign_columns(page: Any) -> list[str]:
    """Headers of the campaign table cut off by its card or the window."""
    return list(
        page.evaluate(
            """() => {
              const table = document.querySelector('[data-testid=campaigns]');
              const card = table.closest('.card-body').getBoundingClientRect();
              const right = Math.min(card.right, window.innerWidth);
              let box = table.parentElement;
              const clipped = box.scrollWidth > box.clientWidth;
              return [...table.querySelectorAll('th')]
                .filter(th => clipped || th.getBoundingClientRect().right > right + 1)
                .map(th => th.textContent);
            }"""
        )
    )


def test_marketing_schedules_compares_and_cancels_a_version_and_reads_it_in_words(
    console_url: tuple[str, str],
) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    base, _database_url = console_url
    SHOTS.mkdir(exist_ok=True)
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).astimezone(
        dt.timezone(dt.timedelta(hours=8))
    )
    local_start = start.strftime("%Y-%m-%dT00:00")
    # in the editor's labels and the page's sentences, the English way ("Dec 5, 2026, 00:00")
    long_start = f"{start:%b} {start.day}, {start.year}, 00:00"

    def shot(page: Page, name: str) -> None:
        page.screenshot(path=str(SHOTS / f"rules-{name}.png"), full_page=True)

    def fits(page: Page, where: str, *, campaigns: bool = False) -> None:
        for viewport in WIDE:
            page.set_viewport_size(viewport)
            assert _sideways(page) <= 0, f"{where} scrolls sideways at {viewport['width']} px"
            if campaigns:
                hidden = _hidden_campaign_columns(page)
                assert not hidden, f"{where}: {hidden} cut off at {viewport['width']} px"
        page.set_viewport_size(PHONE)
        assert _sideways(page) <= 0, f"{where} scrolls sideways at 390 px"
        shot(page, f"{where}-390")
        page.set_viewport_size(WIDE[0])
        shot(page, f"{where}-1280")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport=WIDE[0])
        page.goto(f"{base}/login")
        page.fill("#username", "marketing")
        page.fill("#password", PASSWORDS["marketing"])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text("marketing")

        page.goto(f"{base}/admin/rules/")
        expect(page.get_by_test_id("campaigns").locator("th").nth(1)).to_have_text("multiplier")
        fits(page, "page", campaigns=True)

        page.fill("#base_ratio", "2")
        page.locator("[name=camp_name]").first.fill("Weekend")
        page.locator("[name=camp_multiplier]").first.fill("2")
        page.locator("[name=camp_starts]").first.fill(local_start)
        page.locator("[name=camp_ends]").first.fill(local_start.replace("T00", "T23"))
        page.locator("[name=camp_weekdays]").first.fill("Sat Sun")
        page.fill("#effective_from", local_start)
        page.click("[data-testid=preview-button]")
        expect(page.get_by_test_id("preview-label-current")).to_contain_text(
            "Version 1 (in force now"
        )
        expect(page.get_by_test_id("preview-label-draft")).to_have_text(
            f"Draft, in force from {long_start}"
        )
        expect(page.get_by_test_id("changes")).to_contain_text("base ratio 1 → 2 points per CNY")
        expect(page.get_by_test_id("changes")).to_contain_text(
            "campaign Weekend added: ×2, Sat Sun"
        )
        fits(page, "preview", campaigns=True)
        page.click("[data-testid=publish]")
        expect(page.locator(".alert-success")).to_contain_text("Published rules version 2")

        expect(page.get_by_test_id("in-force")).to_contain_text("In force now: version 1")
        expect(page.get_by_test_id("scheduled")).to_contain_text(
            f"Scheduled: version 2, in force from {long_start} (Asia/Shanghai)"
        )
        expect(page.get_by_test_id("editor-base")).to_contain_text("starts from version 1")
        expect(page.locator("#base_ratio")).to_have_value("1")
        fits(page, "scheduled", campaigns=True)

        page.click("[data-testid=start-from-v2]")
        expect(page.get_by_test_id("editor-base")).to_contain_text(
            f"starts from version 2 (scheduled from {long_start})"
        )
        expect(page.locator("#base_ratio")).to_have_value("2")
        expect(page.locator("[name=camp_weekdays]").first).to_have_value("Sat Sun")
        fits(page, "editing-scheduled", campaigns=True)

        page.click("[data-testid=cancel-v2]")
        confirm = page.get_by_test_id("cancel-confirm")
        expect(confirm).to_contain_text(f"scheduled to take effect on {long_start}")
        expect(confirm).to_contain_text("version 1 (in force now")
        expect(page.get_by_test_id("cancel-changes")).to_contain_text(
            "campaign Weekend added: ×2, Sat Sun"
        )
        fits(page, "cancel-confirm")
        page.click("[data-testid=keep]")
        expect(page.get_by_test_id("scheduled")).to_contain_text("version 2")
        page.click("[data-testid=cancel-v2]")
        page.click("[data-testid=confirm-cancel]")
        expect(page.locator(".alert-success")).to_contain_text("Cancelled rules version 2")
        expect(page.get_by_test_id("schedule")).to_contain_text("Nothing scheduled.")
        fits(page, "cancelled")

        page.goto(f"{base}/admin/audit/?action=rules.")
        words = page.get_by_test_id("audit-words")
        expect(words.first).to_contain_text("version 2 cancelled before its time")
        expect(words.nth(1)).to_contain_text("campaign Weekend added: ×2, Sat Sun")
        page.set_viewport_size(WIDE[0])
        assert _sideways(page) <= 0, "the audit log scrolls sideways at 1280 px"
        shot(page, "audit-1280")
        browser.close()
