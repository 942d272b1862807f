"""The member page in a real browser: Debian's chromium, headless, driven by Playwright, against
the API on a loopback server over a SQLite file.

A realistic member (purchases, a pending lot that matured, a hold captured, a refund, an
adjustment, points expiring soon) opens the page on a phone (390x844) and a laptop (1280x800),
with a Chinese and an English browser. The page must show the numbers and the phrases, load
nothing from anywhere but the server, break no Content-Security-Policy rule (the browser's
console stays empty) and never scroll sideways. The four screenshots are saved in
``tests/e2e/screenshots/member-*.png`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api import create_api_app
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services.api_keys import create_key
from loyalty.services.member_tokens import MAX_TTL_SECONDS, issue_member_token
from tests.conftest import START
from tests.e2e.browser_support import served

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"
SECRET = "browser-test-secret-0123456789abcdef0123456789"
PROGRAM = "qinghe"
MEMBER = "li.wei@example.cn"
PHONE = {"width": 390, "height": 844}
NARROW = {"width": 360, "height": 740}
LAPTOP = {"width": 1280, "height": 800}


def _day(n: int, hour: int = 2) -> dt.datetime:
    """``n`` days after the test clock's start, at ``hour`` UTC (10:00 in Shanghai)."""
    return START.replace(hour=hour) + dt.timedelta(days=n)


def _purchase(db: Database, order_id: str, yuan: int) -> None:
    s.earn_purchase(
        db,
        program=PROGRAM,
        member=MEMBER,
        order_id=order_id,
        amount_minor=yuan * 100,
        currency="CNY",
    )


def _a_members_months(db: Database, clock: FixedClock) -> None:
    """Two months of a tea shop's customer: purchases pending for 7 days, points good for 60."""
    clock.set(_day(-1))
    s.create_program(
        db,
        code=PROGRAM,
        name="青禾茶铺 Qinghe Tea",
        currency="CNY",
        timezone="Asia/Shanghai",
        rules={"pending_days": 7, "expiry": {"days": 60}, "actions": {"review": {"points": 20}}},
    )
    s.enrol_member(db, program=PROGRAM, external_id=MEMBER)
    clock.set(_day(0))
    _purchase(db, "QH-20261121-0042", 328)
    clock.set(_day(2, hour=11))
    s.earn_action(db, program=PROGRAM, member=MEMBER, action="review", reference="rv-881")
    clock.set(_day(8))
    s.mature_pending(db)
    clock.set(_day(9, hour=6))
    _purchase(db, "QH-20261130-0107", 1_288)
    clock.set(_day(17))
    s.mature_pending(db)
    clock.set(_day(18, hour=12))
    s.hold_points(
        db,
        program=PROGRAM,
        member=MEMBER,
        order_id="QH-20261209-0233",
        points=500,
        order_total_minor=26_800,
        currency="CNY",
    )
    s.capture_hold(db, program=PROGRAM, order_id="QH-20261209-0233")
    clock.set(_day(20, hour=8))
    refund = {"program": PROGRAM, "order_id": "QH-20261130-0107", "currency": "CNY"}
    s.refund_order(db, refund_id="re_3Qx81", amount_minor=38_800, **refund)
    clock.set(_day(22, hour=8))
    s.complete_refund(db, program=PROGRAM, refund_id="re_3Qx81")
    s.adjust_points(
        db,
        program=PROGRAM,
        member=MEMBER,
        points=50,
        reason="包裹延误，致歉补偿 (parcel delayed)",
        adjustment_id="adj-77",
        actor="客服小周",
    )
    clock.set(_day(24, hour=13))
    _purchase(db, "QH-20261215-0318", 96)
    clock.set(_day(26))


@pytest.fixture
def member_page(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The API on a loopback server over a SQLite file holding the member; the page's URL
    with a member token, and the member's balance."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI=true requires it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")
    path = tmp_path / "member.db"
    shutil.copy(sqlite_template, path)
    clock = FixedClock(START)
    db = Database.from_url(f"sqlite:///{path}", clock=clock)
    _a_members_months(db, clock)
    key = create_key(db, program=PROGRAM, scopes=("read",), label="shop site").key
    token = issue_member_token(
        db, key=key, member=MEMBER, secret=SECRET, ttl_seconds=MAX_TTL_SECONDS
    ).token
    points = s.balance(db, program=PROGRAM, member=MEMBER, expiring_within_days=90)
    app = create_api_app(
        {"JIFEN_DATABASE": db, "SECRET_KEY": SECRET, "RATELIMIT_ENABLED": False}
        | {"JIFEN_REDIS_URL": None}
    )
    with served(app) as base:
        yield base, f"{base}/m/?token={token}", {"balance": points}
    db.dispose()


def test_the_member_page_on_a_phone_and_a_laptop_in_chinese_and_english(
    member_page: tuple[str, str, dict[str, Any]],
) -> None:
    from playwright.sync_api import ConsoleMessage, expect, sync_playwright

    base, url, facts = member_page
    points = facts["balance"]
    assert points.available > 0 and points.pending > 0 and points.expiring
    SHOTS.mkdir(exist_ok=True)
    elsewhere: list[str] = []
    console: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # a status (the 401 page's) is reported as "Failed to load resource"; anything else,
        # such as a Content-Security-Policy violation, is a failure
        if message.type in ("error", "warning") and not message.text.startswith("Failed to load"):
            console.append(message.text)

    expected = {
        "zh-CN": ["可用积分", "积分已到账", "订单使用积分", "即将过期", "商家补发积分"],
        "en-US": ["Available points", "Points became available", "Points used for an order"],
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        for size_name, viewport in (("phone", PHONE), ("laptop", LAPTOP)):
            for locale, phrases in expected.items():
                context = browser.new_context(
                    viewport=viewport,
                    locale=locale,
                    device_scale_factor=2 if size_name == "phone" else 1,
                    is_mobile=size_name == "phone",
                    has_touch=size_name == "phone",
                )
                page = context.new_page()
                page.on("request", lambda r: r.url.startswith(base) or elsewhere.append(r.url))
                page.on("console", on_console)
                page.goto(url)
                lang = "zh-CN" if locale == "zh-CN" else "en"
                expect(page.locator("html")).to_have_attribute("lang", lang)
                expect(page.get_by_test_id("available")).to_have_text(f"{points.available:,}")
                expect(page.get_by_test_id("available")).to_be_visible()
                for phrase in phrases:
                    expect(page.get_by_text(phrase).first).to_be_visible()
                expect(page.get_by_test_id("expiring").locator("li")).to_have_count(
                    len(points.expiring)
                )
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], f"{size_name}/{locale} scrolls sideways"
                short = "zh" if locale == "zh-CN" else "en"
                page.screenshot(path=str(SHOTS / f"member-{size_name}-{short}.png"), full_page=True)
                if size_name == "phone":  # the narrowest phone in common use still fits
                    page.set_viewport_size(NARROW)
                    width = page.evaluate("document.documentElement.scrollWidth")
                    assert width <= NARROW["width"], f"{locale} scrolls sideways at 360 px"
                context.close()
        context = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True)
        page = context.new_page()
        page.on("request", lambda r: r.url.startswith(base) or elsewhere.append(r.url))
        page.on("console", on_console)
        answer = page.goto(url.replace("token=jfn_mt_", "token=jfn_mt_x"))
        assert answer is not None and answer.status == 401
        expect(page.get_by_test_id("notice")).to_contain_text("链接已失效")
        page.screenshot(path=str(SHOTS / "member-phone-zh-expired.png"), full_page=True)
        context.close()
        browser.close()
    assert elsewhere == [], "the page loaded something from elsewhere"
    assert console == [], "the browser complained (a CSP violation?)"
