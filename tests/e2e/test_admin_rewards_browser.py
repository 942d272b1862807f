"""The reward catalog and the fulfilment queue in a real browser (Debian's chromium, headless,
driven by Playwright):

1. marketing creates a voucher and an item (with an image) in the console, and sees a
   refusal beside its field;
2. members redeem through the service; the reward's page charts them;
3. operations moves two items to packing at once and cancels one with a reason;
4. the member's page lists their rewards.

Screenshots of each page at 1280 and 390 pixels wide are saved in ``tests/e2e/screenshots/``
(``admin-rewards-*``). No page may break the Content-Security-Policy or load anything from
another site.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalty import services as s
from loyalty.db import Database
from tests.e2e.browser_support import served
from tests.integration.helpers import PROGRAM, earn
from tests.integration.test_admin_support import PASSWORDS, build_app

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"
# An image the console serves itself, so the thumbnail loads with no network.
IMAGE = "/admin/static/vendor/leaflet/images/marker-icon-2x.png"
SHIP = {"name": "韩梅梅", "phone": "13900000000", "address": "上海市黄浦区南京东路 1 号 12 楼"}
WIDTHS = (1280, 390)


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Database]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI=true requires it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    db = Database.from_url(f"sqlite:///{path}")
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    with served(app) as base:
        yield base, db
    db.dispose()


def test_marketing_builds_the_catalog_and_operations_works_the_queue(
    console: tuple[str, Database],
) -> None:
    from playwright.sync_api import ConsoleMessage, Page, expect, sync_playwright

    base, db = console
    SHOTS.mkdir(exist_ok=True)

    def shots(page: Page, name: str) -> None:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=str(SHOTS / f"admin-rewards-{name}-{width}.png"), full_page=True)
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
        page.on(
            "requestfailed",
            lambda r: r.failure == "net::ERR_ABORTED" or failed.append(f"{r.url} {r.failure}"),
        )
        page.on("request", lambda r: r.url.startswith(base) or elsewhere.append(r.url))

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not message.text.startswith("Failed to load"):
                console_errors.append(message.text)

        page.on("console", on_console)

        # 1. marketing creates a voucher and an item; a taken code is refused beside its field
        sign_in(page, "marketing")
        page.goto(f"{base}/admin/rewards/")
        form = page.get_by_test_id("create-form")
        form.locator("#kind").select_option("voucher")
        form.locator("#code").fill("twenty-off")
        form.locator("#name").fill("CNY 20 off your next order")
        form.locator("#points").fill("2,000")
        form.locator("#voucher_amount").fill("20")
        form.locator("#voucher_valid_days").fill("30")
        form.locator("#limit_month").fill("2")
        form.locator("button[type=submit]").click()
        expect(page.locator(".alert-success")).to_contain_text("Created voucher twenty-off")
        page.goto(f"{base}/admin/rewards/")
        form = page.get_by_test_id("create-form")
        form.locator("#kind").select_option("item")
        form.locator("#code").fill("twenty-off")
        form.locator("#name").fill("Jifen enamel mug 积分马克杯")
        form.locator("#points").fill("800")
        form.locator("#stock").fill("1200")
        form.locator("#image_url").fill(IMAGE)
        form.locator("#description").fill("Enamel, 350 ml, ships in 3 days.")
        form.locator("button[type=submit]").click()
        expect(page.get_by_test_id("error-code")).to_contain_text("choose another code")
        shots(page, "1-refused")
        page.get_by_test_id("create-form").locator("#code").fill("mug")
        page.get_by_test_id("create-form").locator("button[type=submit]").click()
        expect(page.locator(".alert-success")).to_contain_text("1,200 in stock")
        page.goto(f"{base}/admin/rewards/")
        expect(page.get_by_test_id("reward-mug")).to_contain_text("1,200 / 1,200")
        expect(page.get_by_test_id("reward-mug").locator("img.jifen-thumb")).to_be_visible()
        shots(page, "2-catalog")

        # 2. members redeem through the service; the reward's page charts them
        for n, member in enumerate(("alice", "bob")):
            earn(db, member, f"order-{n}", 1_000_000)
        redeemed = [
            s.redeem_reward(
                db,
                program=PROGRAM,
                member=member,
                reward="mug",
                idempotency_key=f"mug-{member}-{n}",
                shipping=SHIP,
            ).id
            for n, member in enumerate(("alice", "bob", "alice"))
        ]
        s.redeem_reward(
            db, program=PROGRAM, member="bob", reward="twenty-off", idempotency_key="v-bob"
        )
        page.goto(f"{base}/admin/rewards/reward?code=mug")
        expect(page.get_by_test_id("stock")).to_have_text("1,197 / 1,200")
        expect(page.get_by_test_id("chart")).to_contain_text("redeemed")
        shots(page, "3-reward")
        page.click("text=Sign out")

        # 3. operations moves two items to packing at once, and cancels the third
        sign_in(page, "operations")
        page.goto(f"{base}/admin/fulfilment/?status=issued")
        queue = page.get_by_test_id("queue")
        for redemption in redeemed[:2]:
            queue.get_by_label(f"select redemption {redemption}").check()
        page.select_option("#step", "packing")
        page.get_by_test_id("advance").click()
        expect(page.get_by_test_id("outcomes")).to_contain_text("now packing")
        expect(page.locator(".alert-success")).to_contain_text("2 of 2 selected")
        shots(page, "4-queue")
        page.goto(f"{base}/admin/fulfilment/redemption?id={redeemed[2]}")
        page.fill("#cancel-reason", "member asked: wrong colour")
        page.get_by_test_id("cancel-form").locator("button[type=submit]").click()
        expect(page.locator(".alert-success")).to_contain_text("800 points went back to alice")
        expect(page.get_by_test_id("state")).to_have_text("cancelled")
        expect(page.get_by_test_id("events")).to_contain_text("member asked: wrong colour")
        expect(page.get_by_test_id("shipping")).to_contain_text("南京东路")
        shots(page, "5-redemption")

        # 4. the member's page lists their rewards
        page.goto(f"{base}/admin/members/member?id=bob")
        rewards = page.get_by_test_id("member-rewards")
        expect(rewards).to_contain_text("CNY 20 off your next order")
        expect(rewards).to_contain_text("CNY 20.00")
        shots(page, "6-member")
        browser.close()

    assert s.balance(db, program=PROGRAM, member="alice").available == 10_000 - 800
    assert not failed, f"requests failed (assets missing?): {failed}"
    assert not elsewhere, f"the console loaded something from another site: {elsewhere}"
    assert not console_errors, f"the browser reported errors (CSP?): {console_errors}"
