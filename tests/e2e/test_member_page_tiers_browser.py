"""The member's tier in a real browser: Debian's chromium, headless, driven by Playwright,
against the API on a loopback server over a SQLite file.

A tea shop's silver member (two purchases made her silver, a third earned 1.5 times) opens
the points page and the rewards on a phone (390x844) and a laptop (1280x800), with a Chinese
and an English browser. The tier card shows the tier, the bar to the next tier with its words,
what keeping the tier needs, the benefits; the history says when she moved up; the rewards
show the silver price and a reward for gold members only as not for her. Nothing loads from
elsewhere, the console stays empty (no CSP violation), nothing scrolls sideways. Screenshots
are saved as ``tests/e2e/screenshots/member-tiers-*.png`` (git-ignored) for a person to look
at.
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
LAPTOP = {"width": 1280, "height": 800}
TIERS: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通会员", "threshold": 0},
        {
            "code": "silver",
            "name": "银卡",
            "threshold": 1_000,
            "multiplier": "1.5",
            "benefits": [
                "全场包邮 Free shipping",
                "生日月双倍积分 Double points in your birthday month",
            ],
        },
        {
            "code": "gold",
            "name": "金卡",
            "threshold": 5_000,
            "multiplier": "2",
            "benefits": ["全场包邮 Free shipping", "新茶优先品鉴 First taste of new teas"],
        },
    ],
    "window": "rolling",
    "window_months": 6,
    "anchor": "upgrade",
    "period_months": 12,
}
EXPECTED = {
    "zh-CN": {
        "tier-next": "还差 3,750 积分升级金卡",
        "tier-measured": "已累计 1,250 / 5,000 积分",
        "tier-keep": "2027年11月22日前再获得 1,000 积分即可保住银卡。",
        "change": "升级为银卡",
        "lounge": "仅限特定会员等级",
        "mug": "450 积分",
    },
    "en-US": {
        "tier-next": "3,750 points to 金卡",
        "tier-measured": "1,250 of 5,000 qualifying points",
        "tier-keep": "Earn 1,000 more points by November 22, 2027 to keep 银卡.",
        "change": "Moved up to 银卡",
        "lounge": "For members of certain tiers only",
        "mug": "450 points",
    },
}


def _day(n: int, hour: int = 2) -> dt.datetime:
    """``n`` days after the test clock's start, at ``hour`` UTC (10:00 in Shanghai)."""
    return START.replace(hour=hour) + dt.timedelta(days=n)


def _purchase(db: Database, order_id: str, yuan: int) -> None:
    s.earn_purchase(
        db, program=PROGRAM, member=MEMBER, order_id=order_id, amount_minor=yuan * 100,
        currency="CNY",
    )  # fmt: skip


def _reward(db: Database, code: str, **terms: Any) -> None:
    s.create_reward(
        db, program=PROGRAM, code=code, kind="item", actor="运营小林", stock=20, terms=terms
    )


def _a_silver_member(db: Database, clock: FixedClock) -> None:
    """Purchases of 680 and 420 yuan make her silver; 100 more earn 150 points."""
    clock.set(_day(-1))
    s.create_program(
        db, code=PROGRAM, name="青禾茶铺 Qinghe Tea", currency="CNY", timezone="Asia/Shanghai"
    )
    s.publish_tiers(db, program=PROGRAM, rules=TIERS, created_by="运营小林")
    s.enrol_member(db, program=PROGRAM, external_id=MEMBER)
    _reward(
        db,
        "mug",
        name="青禾马克杯 Qinghe mug",
        points=600,
        tier_points={"silver": 450, "gold": 300},
    )
    _reward(
        db, "tea-party", name="金卡专享·新茶品鉴会 Gold tea tasting", points=800, tiers=["gold"]
    )
    clock.set(_day(0))
    _purchase(db, "QH-20261121-0042", 680)
    clock.set(_day(2, hour=6))
    _purchase(db, "QH-20261123-0107", 420)
    clock.set(_day(9, hour=11))
    _purchase(db, "QH-20261130-0233", 100)
    clock.set(_day(12))


@pytest.fixture
def member_page(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The API on a loopback server over a SQLite file holding the member; the base URL and
    the page's URL with a member token."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI=true requires it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")
    path = tmp_path / "member.db"
    shutil.copy(sqlite_template, path)
    clock = FixedClock(START)
    db = Database.from_url(f"sqlite:///{path}", clock=clock)
    _a_silver_member(db, clock)
    key = create_key(db, program=PROGRAM, scopes=("read",), label="shop site").key
    token = issue_member_token(
        db, key=key, member=MEMBER, secret=SECRET, ttl_seconds=MAX_TTL_SECONDS
    ).token
    app = create_api_app(
        {"JIFEN_DATABASE": db, "SECRET_KEY": SECRET, "RATELIMIT_ENABLED": False}
        | {"JIFEN_REDIS_URL": None}
    )
    with served(app) as base:
        yield base, f"{base}/m/?token={token}"
    db.dispose()


def test_the_tier_on_a_phone_and_a_laptop_in_chinese_and_english(
    member_page: tuple[str, str],
) -> None:
    from playwright.sync_api import ConsoleMessage, expect, sync_playwright

    base, url = member_page
    SHOTS.mkdir(exist_ok=True)
    elsewhere: list[str] = []
    console: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            console.append(message.text)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        for size, viewport in (("390", PHONE), ("1280", LAPTOP)):
            for locale, words in EXPECTED.items():
                context = browser.new_context(
                    viewport=viewport,
                    locale=locale,
                    device_scale_factor=2 if size == "390" else 1,
                    is_mobile=size == "390",
                    has_touch=size == "390",
                )
                page = context.new_page()
                page.on("request", lambda r: r.url.startswith(base) or elsewhere.append(r.url))
                page.on("console", on_console)
                page.goto(url)
                short = "zh" if locale == "zh-CN" else "en"
                expect(page.get_by_test_id("tier-name")).to_have_text("银卡")
                for testid in ("tier-next", "tier-measured", "tier-keep"):
                    expect(page.get_by_test_id(testid)).to_have_text(words[testid])
                bar = page.get_by_role("progressbar")
                expect(bar).to_be_visible()
                expect(bar).to_have_accessible_name(words["tier-next"])
                expect(bar).to_have_attribute("value", "1250")
                expect(page.get_by_test_id("tier-benefits").locator("li")).to_have_count(2)
                expect(page.get_by_test_id("tier-change")).to_have_count(1)
                expect(page.get_by_test_id("tier-change")).to_contain_text(words["change"])
                _fits(page, viewport, f"{size}/{short} points")
                page.screenshot(
                    path=str(SHOTS / f"member-tiers-{size}-{short}.png"), full_page=True
                )

                page.get_by_role(
                    "link", name="积分商城" if short == "zh" else "Rewards", exact=True
                ).click()
                expect(page.get_by_test_id("reward-mug").get_by_test_id("price")).to_have_text(
                    words["mug"]
                )
                expect(page.get_by_test_id("reward-tea-party")).to_contain_text(words["lounge"])
                _fits(page, viewport, f"{size}/{short} rewards")
                page.screenshot(
                    path=str(SHOTS / f"member-tiers-rewards-{size}-{short}.png"), full_page=True
                )
                context.close()
        browser.close()
    assert elsewhere == [], "the page loaded something from elsewhere"
    assert console == [], "the browser complained (a CSP violation?)"


def _fits(page: Any, viewport: dict[str, int], where: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"{where} scrolls sideways"
