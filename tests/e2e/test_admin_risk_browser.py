"""Risk control in the console in a real browser (Debian's chromium, headless, driven by
Playwright):

1. admin opens the risk rules (none in force: the editor holds a typical rule set), previews
   it in sentences (English and Chinese) and publishes it with a note;
2. a member buys and refunds over and over (buy-and-refund farming); operations runs the
   risk scan from the cases page, opens the case (evidence, figures, the member on hold),
   assigns it to themselves and resolves it with "release": a success flash, the points
   available;
3. operations freezes the member from the member page's risk panel, then unfreezes them;
4. a viewer reads the case but has no forms, and a resolve or publish they post is refused
   with 403.

Screenshots of each page at 1280 and 390 pixels wide are saved in ``tests/e2e/screenshots/``
(``admin-risk-*``). No page may overflow the window, break the Content-Security-Policy or
load anything from another site.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from tests.e2e.browser_support import (
    CHROMIUM,
    WIDTHS,
    PageWatch,
    require_chromium,
    screenshots,
    served,
)
from tests.integration.helpers import PROGRAM, earn, local
from tests.integration.test_admin_support import PASSWORDS, build_app


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Database, FixedClock]]:
    require_chromium()
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    clock = FixedClock(local(2026, 3, 1, 10))
    db = Database.from_url(f"sqlite:///{path}", clock=clock)
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    with served(app) as base:
        yield base, db, clock
    db.dispose()


def farm(db: Database, clock: FixedClock) -> None:
    """alice buys and refunds five times in five hours (500 points earned, all refunded),
    and bob shops honestly."""
    for i in range(5):
        clock.advance(dt.timedelta(hours=1))
        earn(db, "alice", f"A-10{i}", 10_000, location="store-03", device="till-7")
        s.refund_order(
            db,
            program=PROGRAM,
            order_id=f"A-10{i}",
            refund_id=f"re_10{i}",
            amount_minor=10_000,
            currency="CNY",
            succeeded=True,
        )
    earn(db, "bob", "B-200", 25_000, location="store-01")


def test_admin_publishes_rules_and_operations_work_a_farming_case_and_a_freeze(
    console: tuple[str, Database, FixedClock],
) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    base, db, clock = console

    def shots(page: Page, name: str) -> None:
        screenshots(page, f"admin-risk-{name}")

    def sign_in(page: Page, username: str) -> None:
        page.goto(f"{base}/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORDS[username])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text(username)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": WIDTHS[0], "height": 900})
        watch = PageWatch(base).attach(page)

        # 1. admin previews the typical rule set in sentences and publishes it
        sign_in(page, "admin")
        page.get_by_role("link", name="Risk", exact=True).click()
        page.get_by_test_id("risk-tabs").get_by_role("link", name="Rules").click()
        expect(page.get_by_test_id("in-force")).to_contain_text("No risk rules are in force")
        expect(page.get_by_test_id("example")).to_be_visible()
        shots(page, "1-rules-empty")
        page.get_by_label("Buy-and-refund farming rule 1 once earned at least").fill("400")
        page.get_by_test_id("preview-button").click()
        preview = page.get_by_test_id("preview")
        expect(preview.get_by_test_id("preview-rules-refund-farming")).to_contain_text(
            "after earning at least 400"
        )
        expect(preview.get_by_test_id("preview-rules-earn-burst")).to_contain_text(
            "每位会员在 1 小时内超过 20 笔积分获取：拒绝该操作。"
        )
        page.fill("#note", "launch of risk control")
        shots(page, "2-preview")
        page.get_by_test_id("publish").click()
        expect(page.locator(".alert-success")).to_contain_text(
            "Published risk rules version 1, in force now (6 rules)."
        )
        expect(page.get_by_test_id("versions-table")).to_contain_text("launch of risk control")
        expect(page.get_by_test_id("rules-in-force-gift-ring")).to_contain_text(
            "5 or more members sending points to one member within 24 hours"
        )
        shots(page, "3-rules-in-force")
        page.click("text=Sign out")

        # 2. alice farms; operations scans, opens the case and releases it
        farm(db, clock)
        sign_in(page, "operations")
        page.get_by_role("link", name="Risk", exact=True).click()
        expect(page.get_by_test_id("cases")).to_contain_text("No open cases")
        page.get_by_test_id("scan-now").click()
        expect(page.locator(".alert-success")).to_contain_text("cases 1 opened")
        [case] = s.list_risk_cases(db, program=PROGRAM).items
        row = page.get_by_test_id(f"case-{case.id}")
        expect(row).to_contain_text("refund-farming")
        expect(row).to_contain_text("alice")
        expect(row).to_contain_text("2026-03-01 15:00")  # 07:00 UTC, in Asia/Shanghai
        earn(db, "alice", "A-200", 30_000)  # held: stays pending until released
        shots(page, "4-cases")
        row.get_by_role("link", name="refund-farming").click()
        expect(page.get_by_test_id("case-summary")).to_contain_text("5 refunds")
        expect(page.get_by_test_id("case-held")).to_have_text("300")
        expect(page.get_by_test_id("evidence")).to_contain_text("re_104")
        expect(page.get_by_test_id("figures")).to_contain_text("500")
        shots(page, "5-case")
        page.get_by_test_id("assign-me").click()
        expect(page.get_by_test_id("case-assignee")).to_have_text("operations")
        form = page.get_by_test_id("resolve-form")
        expect(form.locator("#points")).to_have_value("300")
        form.get_by_label("Release: the held points become available").check()
        form.locator("#note").fill("customer returned faulty goods; confirmed with the store")
        form.get_by_test_id("resolve").click()
        flash = page.locator(".alert-success")
        expect(flash).to_contain_text(f"Resolved case {case.id}: released.")
        expect(flash).to_contain_text("alice's 300 held points are available.")
        expect(page.get_by_test_id("case-status")).to_have_text("resolved")
        expect(page.get_by_test_id("trail")).to_contain_text("assigned to operations")
        expect(page.get_by_test_id("trail")).to_contain_text(
            "resolved as released (300 held points made available)"
        )
        shots(page, "6-case-resolved")

        # 3. operations freezes alice from her member page, then unfreezes her
        page.get_by_test_id("case-subject").get_by_role("link", name="alice").click()
        panel = page.get_by_test_id("risk-panel")
        expect(panel.get_by_test_id("risk-hold")).to_have_text("not on hold")
        panel.locator("#freeze-reason").fill("card reported stolen")
        panel.get_by_role("button", name="Freeze account").click()
        expect(page.locator(".alert-success")).to_contain_text("Froze alice's account")
        panel = page.get_by_test_id("risk-panel")
        expect(panel.get_by_test_id("risk-account")).to_contain_text("frozen card reported stolen")
        shots(page, "7-member-frozen")
        panel.locator("#unfreeze-reason").fill("card found by the customer")
        panel.get_by_role("button", name="Unfreeze").click()
        expect(page.locator(".alert-success")).to_contain_text("Unfroze alice's account")
        expect(page.get_by_test_id("risk-panel").get_by_test_id("risk-account")).to_have_text(
            "active"
        )
        page.click("text=Sign out")

        # 4. a viewer reads the case without forms; what they post is refused
        sign_in(page, "viewer")
        page.goto(f"{base}/admin/risk/case?id={case.id}")
        expect(page.get_by_test_id("case-resolution")).to_contain_text("released")
        expect(page.get_by_test_id("resolve-form")).to_have_count(0)
        page.goto(f"{base}/admin/risk/rules")
        expect(page.get_by_test_id("read-only")).to_be_visible()
        token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        for path, form_data in (
            ("/admin/risk/case/resolve", {"id": str(case.id), "outcome": "dismiss"}),
            ("/admin/risk/rules/draft", {"action": "publish", "farming.id": "x"}),
        ):
            answer = page.request.post(
                f"{base}{path}", form={"csrf_token": token, "note": "x", **form_data}
            )
            assert answer.status == 403, (path, answer.status)
        browser.close()

    balance = s.balance(db, program=PROGRAM, member="alice")
    assert (balance.available, balance.pending) == (300, 0)
    assert s.get_member(db, program=PROGRAM, external_id="alice").status == "active"
    assert [v.version for v in s.risk_rule_versions_of(db, program=PROGRAM)] == [1]
    watch.assert_clean()
