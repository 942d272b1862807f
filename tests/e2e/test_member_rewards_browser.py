"""The member page's rewards in a real browser: Debian's chromium, headless, driven by
Playwright, against the API on a loopback server over a SQLite file.

A member of a tea shop browses the catalog, redeems a mug (typing the address) and a coffee
coupon by clicking through the two forms (no JavaScript), then a voucher and a draw, and
finds them under my rewards: the coupon's code, the voucher's last day, the draw's outcome,
the mug's address and, once the shop ships it, "shipped". Nothing is
loaded from elsewhere, no Content-Security-Policy rule is broken, nothing scrolls sideways.
Screenshots of the catalog and my rewards at 1280 and 390 px in Chinese and English go to
``tests/e2e/screenshots/member-rewards-*.png`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
STAFF = "ops"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}
LANGUAGES = {"zh": "zh-CN", "en": "en-US"}


@dataclass
class Shop:
    base: str
    tokens: dict[str, str]
    db: Database


def _catalog(db: Database) -> None:
    """A tea shop's catalog: a coffee coupon, a voucher, a mug, a draw and a trip."""
    rewards = [
        ("coffee", "coupon", None, "免费咖啡 Free coffee", 300, "coffee", {}),
        ("v20", "voucher", None, "¥20 抵用券 ¥20 off", 2000, "voucher", {}),
        ("mug", "item", 12, "青瓷茶杯 Celadon mug", 1500, "mug", {}),
        ("sample", "item", 5, "品鉴茶礼盒 Tasting set", 1, "", {"visible": False}),
        ("trip", "item", 1, "杭州茶园之旅 A day in Hangzhou", 90_000, "", {}),
    ]
    for code, kind, stock, name, points, image, extra in rewards:
        terms: dict[str, object] = {"name": name, "points": points, **extra}
        if image:
            terms["image_url"] = f"/m/static/rewards/{image}.svg"
        if kind == "voucher":
            terms |= {"voucher_amount_minor": 2000, "voucher_valid_days": 30}
        s.create_reward(
            db, program=PROGRAM, code=code, kind=kind, terms=terms, actor=STAFF, stock=stock
        )
    s.generate_reward_codes(
        db, program=PROGRAM, reward="coffee", count=20, prefix="CAFE-", length=8, actor=STAFF
    )
    prizes = [{"reward": "sample", "chance_ppm": 200_000, "label": "品鉴茶礼盒"}]
    s.create_reward(
        db,
        program=PROGRAM,
        code="draw",
        kind="draw",
        terms={"name": "积分抽奖 Lucky draw", "points": 100, "prizes": prizes}
        | {"image_url": "/m/static/rewards/draw.svg"},
        actor=STAFF,
    )


@pytest.fixture
def shop(sqlite_template: Path, tmp_path: Path) -> Iterator[Shop]:
    """The API on a loopback server over a SQLite file; a token per language's member."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI=true requires it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs Debian's chromium")
    path = tmp_path / "rewards.db"
    shutil.copy(sqlite_template, path)
    db = Database.from_url(f"sqlite:///{path}", clock=FixedClock(START))
    s.create_program(
        db, code=PROGRAM, name="青禾茶铺 Qinghe Tea", currency="CNY", timezone="Asia/Shanghai"
    )
    _catalog(db)
    key = create_key(db, program=PROGRAM, scopes=("read",), label="shop site").key
    tokens = {}
    for lang in LANGUAGES:
        member = f"{lang}@example.cn"
        s.enrol_member(db, program=PROGRAM, external_id=member)
        s.earn_purchase(
            db,
            program=PROGRAM,
            member=member,
            order_id=f"QH-{lang}",
            amount_minor=500_000,
            currency="CNY",
        )
        tokens[lang] = issue_member_token(
            db, key=key, member=member, secret=SECRET, ttl_seconds=MAX_TTL_SECONDS
        ).token
    app = create_api_app(
        {"JIFEN_DATABASE": db, "SECRET_KEY": SECRET, "RATELIMIT_ENABLED": False}
        | {"JIFEN_REDIS_URL": None}
    )
    with served(app) as base:
        yield Shop(base, tokens, db)
    db.dispose()


ADDRESS = {
    "zh": ("李伟", "138 0013 8000", "浙江省杭州市西湖区龙井路 1 号"),
    "en": ("Li Wei", "+86 138 0013 8000", "1 Longjing Road, Xihu District"),
}
WORDS = {
    "zh": {"rewards": "积分商城", "redeem": "兑换", "confirm": "确认兑换", "mine": "我的兑换"}
    | {"shipped": "已发货", "voucher": "有效期至 2026年12月20日"},
    "en": {"rewards": "Rewards", "redeem": "Redeem", "confirm": "Confirm and redeem"}
    | {"mine": "My rewards", "shipped": "Shipped", "voucher": "Use by December 20, 2026"},
}


def test_a_member_redeems_a_mug_and_a_coupon_and_finds_them_under_my_rewards(shop: Shop) -> None:
    from playwright.sync_api import ConsoleMessage, Page, expect, sync_playwright

    SHOTS.mkdir(exist_ok=True)
    elsewhere: list[str] = []
    console: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            console.append(message.text)

    def fits(page: Page, width: int, where: str) -> None:
        # a form sent twice (the double click below) may still be replacing the document
        page.wait_for_load_state("load")
        page.wait_for_function("document.documentElement !== null")
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{where} scrolls sideways"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        for lang, locale in LANGUAGES.items():
            words = WORDS[lang]
            context = browser.new_context(viewport=LAPTOP, locale=locale)
            page = context.new_page()
            page.on("request", lambda r: r.url.startswith(shop.base) or elsewhere.append(r.url))
            page.on("console", on_console)
            page.goto(f"{shop.base}/m/?token={shop.tokens[lang]}")
            page.get_by_role("link", name=words["rewards"], exact=True).click()
            catalog = page.get_by_test_id("catalog")
            expect(catalog.locator("li.reward")).to_have_count(5)  # the prize is hidden
            expect(page.get_by_test_id("reward-trip").get_by_test_id("reasons")).to_be_visible()
            page.wait_for_load_state("load")
            # the first picture shows; none is broken (those below the fold load lazily)
            assert page.locator("img.picture").evaluate_all(
                "images => images[0].naturalWidth > 0"
                " && images.every(i => !i.complete || i.naturalWidth > 0)"
            )
            fits(page, LAPTOP["width"], f"{lang} catalog")
            page.screenshot(path=str(SHOTS / f"member-rewards-laptop-{lang}.png"), full_page=True)

            mug = page.get_by_test_id("reward-mug")
            name, phone, address = ADDRESS[lang]
            mug.locator("input[name=ship_name]").fill(name)
            mug.locator("input[name=ship_phone]").fill(phone)
            mug.locator("input[name=ship_address]").fill(address)
            mug.get_by_role("button", name=words["redeem"]).click()
            expect(page.get_by_test_id("question")).to_contain_text("1,500")
            expect(page.get_by_test_id("address")).to_contain_text(address)
            page.wait_for_load_state("load")
            page.screenshot(path=str(SHOTS / f"member-rewards-confirm-laptop-{lang}.png"))
            page.get_by_role("button", name=words["confirm"]).click()
            expect(page.get_by_test_id("done")).to_be_visible()
            expect(page.get_by_test_id("ship-to")).to_contain_text(address)

            page.get_by_role("link", name=words["rewards"], exact=True).click()
            coffee = page.get_by_test_id("reward-coffee")
            coffee.get_by_role("button", name=words["redeem"]).click()
            # an impatient double click sends the form twice: one coupon all the same
            page.get_by_role("button", name=words["confirm"]).dblclick()
            expect(page.get_by_test_id("code")).to_have_text(re.compile(r"CAFE-[0-9A-Z]{8}"))
            for reward in ("v20", "draw"):  # the other kinds, so my rewards shows each
                page.get_by_role("link", name=words["rewards"], exact=True).click()
                page.get_by_test_id(f"reward-{reward}").get_by_role("button").click()
                page.get_by_role("button", name=words["confirm"]).click()
                expect(page.get_by_test_id("done")).to_be_visible()
            expect(page.get_by_test_id("draw")).to_be_visible()

            mug_id = (
                s.list_redemptions(
                    shop.db, program=PROGRAM, member=f"{lang}@example.cn", reward="mug"
                )
                .items[0]
                .id
            )
            s.advance_fulfilment(
                shop.db, program=PROGRAM, redemption=mug_id, status="shipped", actor=STAFF
            )
            page.goto(f"{shop.base}/m/?token={shop.tokens[lang]}")
            page.get_by_role("link", name=words["mine"], exact=True).click()
            mine = page.get_by_test_id("mine")
            expect(mine.locator("article.redemption:not(.prize article)")).to_have_count(4)
            expect(mine.get_by_test_id("voucher")).to_contain_text(words["voucher"])
            shipped = page.get_by_test_id(f"redemption-{mug_id}")
            expect(shipped.get_by_test_id("state")).to_have_text(words["shipped"])
            expect(shipped.get_by_test_id("events")).to_contain_text(words["shipped"])
            expect(mine.get_by_test_id("code")).to_have_text(re.compile(r"CAFE-[0-9A-Z]{8}"))
            fits(page, LAPTOP["width"], f"{lang} my rewards")
            page.screenshot(
                path=str(SHOTS / f"member-rewards-mine-laptop-{lang}.png"), full_page=True
            )

            page.set_viewport_size(PHONE)
            fits(page, PHONE["width"], f"{lang} my rewards on a phone")
            page.screenshot(
                path=str(SHOTS / f"member-rewards-mine-phone-{lang}.png"), full_page=True
            )
            page.get_by_role("link", name=words["rewards"], exact=True).click()
            fits(page, PHONE["width"], f"{lang} catalog on a phone")
            page.screenshot(path=str(SHOTS / f"member-rewards-phone-{lang}.png"), full_page=True)
            context.close()
        browser.close()
    for lang in LANGUAGES:
        done = s.list_redemptions(shop.db, program=PROGRAM, member=f"{lang}@example.cn")
        redeemed = sorted(r.reward for r in done.items if r.parent is None)
        assert redeemed == ["coffee", "draw", "mug", "v20"]
    assert elsewhere == [], "the page loaded something from elsewhere"
    assert console == [], "the browser complained (a CSP violation?)"
