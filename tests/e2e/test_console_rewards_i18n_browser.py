"""The reward catalog, a reward's page, the fulfilment queue, a redemption's page, the tiers
page and the member page's tier panel in Simplified Chinese and in English, in a real browser
(Debian's chromium, headless, driven by Playwright).

An admin works through the pages in each language: a refused and an accepted new reward, a
restock, two items moved to packing, a draw's and a voucher's redemption, an item cancelled
with a reason, a tier draft previewed, published for later and cancelled, members placed.
In Chinese, no heading, table header, label, button, badge, navigation link or flash shows an
English word (beyond the names and codes the catalogue test keeps, and the shop's own data:
reward and tier codes, member ids, the time zone); in English, none shows Chinese beyond the
shop's data. Screenshots at 1280 and 390 pixels wide (``console-rewards-<lang>-*``) must not
overflow the window.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from tests.e2e.browser_support import CHROMIUM, PageWatch, require_chromium, screenshots, served
from tests.integration.helpers import PROGRAM, TZ, earn, local
from tests.integration.test_admin_support import PASSWORDS, build_app
from tests.unit.test_console_catalogue import KEPT

if TYPE_CHECKING:
    from playwright.sync_api import Page

# What a person reads as the page's own words: headings, table headers, labels, buttons,
# badges, the navigation and flashes.
CHECKED = "h1, h2, h3, h4, h5, h6, th, label, button, legend, dt, .badge, nav a, .alert"
LADDER = {
    "tiers": [
        {"code": "putong", "name": "普通", "threshold": 0},
        {"code": "yinka", "name": "银卡", "threshold": 1_000, "multiplier": "1.5"},
        {"code": "jinka", "name": "金卡", "threshold": 5_000, "multiplier": "2"},
    ],
    "grace_days": 30,
}
SHIP = {"name": "韩梅梅", "phone": "13900000000", "address": "上海市黄浦区南京东路 1 号"}
# The shop's own data, shown as it is in either language.
DATA = (
    TZ,
    "alice",
    "bob",
    "putong",
    "yinka",
    "jinka",
    "普通",
    "银卡",
    "金卡",
    "mug",
    "cup",
    "coffee20",
    "spin",
    "pen",
    "马克杯",
    "陶瓷杯",
    "咖啡代金券",
    "幸运抽奖",
    "签字笔",
    "简体中文",
)
# A URL's scheme, as the image field's label shows it (https://).
KEPT_HERE = KEPT | {"https"}
_ENGLISH = re.compile(r"[A-Za-z][A-Za-z'’-]+")
_CHINESE = re.compile(r"[\u3400-\u9fff]+")


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Database]]:
    require_chromium()
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    db = Database.from_url(f"sqlite:///{path}", clock=FixedClock(local(2026, 3, 1, 10)))
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    _seed(db)
    with served(app) as base:
        yield base, db
    db.dispose()


def _reward(db: Database, code: str, kind: str, terms: dict[str, object], **kw: object) -> None:
    s.create_reward(db, program=PROGRAM, code=code, kind=kind, terms=terms, actor="t", **kw)


def _seed(db: Database) -> None:
    """Tiers in force; an item, a voucher, a hidden prize and a draw; alice's redemptions."""
    s.publish_tiers(db, program=PROGRAM, rules=LADDER, created_by="marketing")
    _reward(db, "mug", "item", {"name": "马克杯", "points": 800}, stock=50)
    _reward(
        db,
        "coffee20",
        "voucher",
        {
            "name": "咖啡代金券",
            "points": 300,
            "voucher_amount_minor": 2000,
            "voucher_valid_days": 30,
        },
    )
    _reward(db, "pen", "item", {"name": "签字笔", "points": 1, "visible": False}, stock=10)
    prizes = [{"reward": "pen", "chance_ppm": 1_000_000, "label": "签字笔"}]
    _reward(db, "spin", "draw", {"name": "幸运抽奖", "points": 50, "prizes": prizes})
    earn(db, "alice", "o-1", 1_200_000)
    for n in range(3):
        s.redeem_reward(
            db,
            program=PROGRAM,
            member="alice",
            reward="mug",
            idempotency_key=f"m{n}",
            shipping=SHIP,
        )
    s.redeem_reward(db, program=PROGRAM, member="alice", reward="coffee20", idempotency_key="v")
    s.redeem_reward(db, program=PROGRAM, member="alice", reward="spin", idempotency_key="d")


def _without_data(text: str) -> str:
    for value in sorted(DATA, key=len, reverse=True):
        text = text.replace(value, " ")
    return text


def foreign_words(page: Page, lang: str, scope: str = "body") -> list[str]:
    """Words of the other language in what ``scope`` shows as the page's own words."""
    texts = page.locator(scope).locator(CHECKED).all_inner_texts()
    shown = _without_data(" \n".join(texts))
    if lang == "zh":
        return sorted({w for w in _ENGLISH.findall(shown) if w not in KEPT_HERE})
    return sorted(set(_CHINESE.findall(shown)))


def check(page: Page, lang: str, name: str, scope: str = "body") -> None:
    """The page speaks ``lang`` only, and fits a laptop's and a phone's width."""
    found = foreign_words(page, lang, scope)
    assert not found, f"{name} in {lang} shows words of the other language: {found}"
    screenshots(page, f"console-rewards-{lang}-{name}")


# The words each step expects, by language (English stays the default).
WORDS = {
    "zh": {
        "refused": "请修改下方标出的字段",
        "created": "已创建实物 cup，500 积分，库存 20。",
        "restocked": "已为 cup 补货 5：剩余可发放 25。",
        "moved": "所选 2 个兑换单中有 2 个已变更为打包中。",
        "outcome": "现为打包中",
        "cancelled": "800 积分已退还给 alice；库存已恢复。",
        "draw": "抽奖",
        "voucher": "代金券",
        "preview": "预览：按草稿计算的各等级会员数",
        "published": "已发布等级版本 2，自 2026年6月1日 00:00（Asia/Shanghai）起生效。",
        "cancelled_version": "已取消等级版本 2",
        "placed": "已按定级指标为会员定级",
        "panel": "等级记录",
    },
    "en": {
        "refused": "Please correct the fields marked below",
        "created": "Created item cup at 500 points, 20 in stock.",
        "restocked": "Added 5 to cup: 25 left to issue.",
        "moved": "2 of 2 selected redemption(s) are now packing.",
        "outcome": "now packing",
        "cancelled": "800 points went back to alice; the stock is back in the catalog.",
        "draw": "Draw",
        "voucher": "voucher",
        "preview": "Preview: members per tier under the draft",
        "published": "Published tier version 2, in force from Jun 1, 2026, 00:00 (Asia/Shanghai).",
        "cancelled_version": "Cancelled tier version 2",
        "placed": "Placed members by their measure",
        "panel": "Tier history",
    },
}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_reward_and_tier_pages_speak_one_language(
    console: tuple[str, Database], lang: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, db = console
    words = WORDS[lang]
    items = [r.id for r in s.list_redemptions(db, program=PROGRAM, reward="mug", limit=10).items]
    draw = s.list_redemptions(db, program=PROGRAM, reward="spin", limit=1).items[0].id
    voucher = s.list_redemptions(db, program=PROGRAM, reward="coffee20", limit=1).items[0].id
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        watch = PageWatch(base).attach(page)
        page.goto(f"{base}/login?lang={lang}")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORDS["admin"])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text("admin")

        # the catalog: a refused reward, then an accepted one
        page.goto(f"{base}/admin/rewards/")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if lang == "zh" else "en")
        form = page.get_by_test_id("create-form")
        form.locator("#code").fill("cup")
        form.locator("#name").fill("陶瓷杯")
        form.locator("#points").fill("500")
        form.locator("#stock").fill("二十")
        form.locator("button[type=submit]").click()
        expect(page.locator(".alert-danger")).to_contain_text(words["refused"])
        check(page, lang, "1-refused")
        page.get_by_test_id("create-form").locator("#stock").fill("20")
        page.get_by_test_id("create-form").locator("button[type=submit]").click()
        expect(page.locator(".alert-success")).to_have_text(words["created"])

        # the reward's page, restocked
        page.get_by_test_id("restock-form").locator("#quantity").fill("5")
        page.get_by_test_id("restock-form").locator("button[type=submit]").click()
        expect(page.locator(".alert-success")).to_have_text(words["restocked"])
        check(page, lang, "2-reward")
        page.goto(f"{base}/admin/rewards/")
        check(page, lang, "3-catalog")

        # the queue: two items to packing
        page.goto(f"{base}/admin/fulfilment/")
        for redemption in items[:2]:
            page.locator(f"input[name=ids][value='{redemption}']").check()
        page.select_option("#step", "packing")
        page.get_by_test_id("advance").click()
        expect(page.locator(".alert-success")).to_have_text(words["moved"])
        expect(page.get_by_test_id(f"outcome-{items[0]}")).to_contain_text(words["outcome"])
        check(page, lang, "4-queue")

        # a draw's and a voucher's redemption, and an item cancelled with a reason
        page.goto(f"{base}/admin/fulfilment/redemption?id={draw}")
        expect(page.locator("h5", has_text=words["draw"]).first).to_be_visible()
        check(page, lang, "5-draw")
        page.goto(f"{base}/admin/fulfilment/redemption?id={voucher}")
        expect(page.get_by_test_id("voucher")).to_contain_text(words["voucher"])
        check(page, lang, "6-voucher")
        page.goto(f"{base}/admin/fulfilment/redemption?id={items[2]}")
        page.fill("#cancel-reason", "会员要求取消")
        page.get_by_test_id("cancel-form").locator("button[type=submit]").click()
        expect(page.locator(".alert-success")).to_contain_text(words["cancelled"])
        check(page, lang, "7-redemption")

        # tiers: a draft previewed, published for later, cancelled; members placed
        page.goto(f"{base}/admin/tiers/")
        check(page, lang, "8-tiers")
        page.fill("#effective_from", "2026-06-01T00:00")
        page.get_by_test_id("preview-button").click()
        expect(page.get_by_test_id("preview")).to_contain_text(words["preview"])
        check(page, lang, "9-preview")
        page.get_by_test_id("publish").click()
        expect(page.locator(".alert-success")).to_have_text(words["published"])
        check(page, lang, "10-scheduled")
        page.get_by_test_id("cancel-v2").click()
        expect(page.locator(".alert-success")).to_contain_text(words["cancelled_version"])
        page.get_by_test_id("place").click()
        expect(page.locator(".alert-success")).to_contain_text(words["placed"])
        check(page, lang, "11-placed")

        # the member page's tier panel
        page.goto(f"{base}/admin/members/member?id=alice")
        expect(page.get_by_test_id("tier-panel")).to_contain_text(words["panel"])
        check(page, lang, "12-tier-panel", scope="[data-testid=tier-panel]")
        browser.close()
    watch.assert_clean()
