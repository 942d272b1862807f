"""The members list, a member's page (with its tier, risk and rewards panels), the risk cases,
a case's page and the risk rules in Simplified Chinese and in English, in a real browser
(Debian's chromium, headless, driven by Playwright).

An admin works through the pages in each language: a member search with no match, then one
that finds alice (whose buy-and-refund farming put her on hold, and who redeemed rewards);
her account frozen and unfrozen and her hold released from the risk panel; the cases (one
for alice, one for a till), a filter with no match, a case assigned and released; the rules,
a draft refused beside its row, previewed, published; the risk scan run now.

In Chinese, no heading, table header, label, legend, button, badge, summary, navigation link
or flash shows an English word (beyond the names and codes the catalogue test keeps, and the
shop's own data: member ids, rule ids, locations, the time zone, reward and tier names); in
English, none shows Chinese beyond the shop's data. A case's summary and a rule's sentence
are in the page's language. Screenshots at 1280 and 390 pixels wide
(``console-members-<lang>-*``) must not overflow the window.
"""

from __future__ import annotations

import datetime as dt
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
from tests.integration.helpers import PROGRAM, TZ, earn, execute, local
from tests.integration.test_admin_support import PASSWORDS, build_app
from tests.unit.test_console_catalogue import KEPT

if TYPE_CHECKING:
    from playwright.sync_api import Page

# What a person reads as the page's own words: headings, table headers, labels, legends,
# buttons, badges, summaries, the navigation and flashes (codes inside them left out).
CHECKED = "h1, h2, h3, h4, h5, h6, th, label, legend, button, .badge, summary, nav a, .alert"
_OWN_WORDS = """([scope, selector]) => {
  const root = document.querySelector(scope);
  return [...root.querySelectorAll(selector)].map((element) => {
    const copy = element.cloneNode(true);
    copy.querySelectorAll("code").forEach((code) => code.remove());
    return copy.innerText ?? copy.textContent;
  });
}"""
RULES = {
    "rules": [
        {"id": "refund-farming", "kind": "farming", "refunded_percent": 50, "days": 30,
         "min_points": 300, "action": "hold"},
        {"id": "till-burst", "kind": "velocity", "scope": "location", "measure": "earns",
         "limit": 3, "window": "day", "action": "flag"},
    ]
}  # fmt: skip
LADDER = {
    "tiers": [
        {"code": "putong", "name": "普通", "threshold": 0},
        {"code": "jinka", "name": "金卡", "threshold": 5_000, "multiplier": "2"},
    ]
}
WHY = "顾客报失会员卡"
# The shop's own data, shown as it is in either language.
DATA = (
    TZ, "alice", "bob", "admin", "refund-farming", "till-burst", "store-03", "putong", "jinka",
    "普通", "金卡", "mug", "马克杯", "补偿", WHY, "简体中文",
)  # fmt: skip
_ENGLISH = re.compile(r"[A-Za-z][A-Za-z'’-]+")
_CHINESE = re.compile(r"[\u3400-\u9fff]+")

# The words each step expects, by language (English stays the default).
WORDS = {
    "zh": {
        "search": "外部 ID、邮箱、手机号或 Stripe 客户（cus_…）",
        "no_match": "没有与“nobody”匹配的会员。",
        "balance": "余额",
        "froze": f"已冻结 alice 的账户：{WHY}",
        "frozen": "冻结",
        "unfroze": "已解冻 alice 的账户",
        "released": "已解除 alice 的暂扣：100 暂扣积分已变为可用。",
        "rewards": "兑换记录",
        "cases": "2 个案件",
        "no_cases": "没有符合筛选条件的待处理案件。",
        "summary": "近 30 天获得的 500 积分中 100% 已退款（5 笔退款），超过 50%",
        "sentence": "会员近 30 天获得的积分中退款比例超过 50%",
        "assigned": "已指派给 admin。",
        "resolved": "已结案：已放行。",
        "trail": "结案：已放行",
        "refused": "频次限制，第 1 行 'till-burst'：暂扣会让会员的新积分保持待生效",
        "preview": "预览：草稿的规则说明",
        "published": "已发布风控规则版本 2，立即生效（2 条规则）。",
        "scanned": "风控扫描完成",
    },
    "en": {
        "search": "external id, email, phone or Stripe customer (cus_…)",
        "no_match": "No member matches “nobody”.",
        "balance": "Balance",
        "froze": f"Froze alice's account: {WHY}",
        "frozen": "frozen",
        "unfroze": "Unfroze alice's account",
        "released": "Released alice's hold: 100 held points are available.",
        "rewards": "Rewards",
        "cases": "2 cases",
        "no_cases": "No open cases match these filters.",
        "summary": "100 % of 500 points earned in 30 days refunded (5 refunds), over 50 %",
        "sentence": "A member who had more than 50 % of the points they earned",
        "assigned": "assigned to admin.",
        "resolved": ": released.",
        "trail": "resolved as released",
        "refused": "Velocity, row 1 'till-burst': 'hold' keeps a member's points pending",
        "preview": "Preview: the draft in sentences",
        "published": "Published risk rules version 2, in force now (2 rules).",
        "scanned": "Risk scan done",
    },
}


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Database]]:
    require_chromium()
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    clock = FixedClock(local(2026, 3, 1, 10))
    db = Database.from_url(f"sqlite:///{path}", clock=clock)
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    _seed(db, clock)
    with served(app) as base:
        yield base, db
    db.dispose()


def _seed(db: Database, clock: FixedClock) -> None:
    """Tiers and risk rules in force; alice buys and refunds five times at one till (a
    farming case that holds her, a till case), is granted points and redeems a mug; her next
    earn is held."""
    s.publish_tiers(db, program=PROGRAM, rules=LADDER, created_by="marketing")
    s.publish_risk_rules(db, program=PROGRAM, rules=RULES, actor="admin", note="上线")
    execute(db, "UPDATE members SET email = 'alice@shop.example' WHERE external_id = 'alice'")
    for i in range(5):
        clock.advance(dt.timedelta(hours=1))
        earn(db, "alice", f"A-10{i}", 10_000, location="store-03")
        s.refund_order(
            db,
            program=PROGRAM,
            order_id=f"A-10{i}",
            refund_id=f"re_10{i}",
            amount_minor=10_000,
            currency="CNY",
            succeeded=True,
        )
    s.adjust_points(
        db, program=PROGRAM, member="alice", points=900, reason="补偿", adjustment_id="g1"
    )  # a grant: not an earn the farming rule counts
    s.create_reward(
        db,
        program=PROGRAM,
        code="mug",
        kind="item",
        terms={"name": "马克杯", "points": 800},
        actor="t",
        stock=5,
    )
    s.redeem_reward(
        db,
        program=PROGRAM,
        member="alice",
        reward="mug",
        idempotency_key="m1",
        shipping={"name": "韩梅梅", "phone": "13900000000", "address": "上海市黄浦区南京东路 1 号"},
    )
    s.scan_risk(db, program=PROGRAM)
    earn(db, "alice", "A-300", 10_000)  # held by the farming case: stays pending


def foreign_words(page: Page, lang: str, scope: str = "body") -> list[str]:
    """Words of the other language in what ``scope`` shows as the page's own words."""
    shown = " \n".join(page.evaluate(_OWN_WORDS, [scope, CHECKED]))
    for value in sorted(DATA, key=len, reverse=True):
        shown = shown.replace(value, " ")
    if lang == "zh":
        return sorted({w for w in _ENGLISH.findall(shown) if w not in KEPT})
    return sorted(set(_CHINESE.findall(shown)))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_member_and_risk_pages_speak_one_language(
    console: tuple[str, Database], lang: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, db = console
    words = WORDS[lang]
    farming = s.list_risk_cases(db, program=PROGRAM, rule_id="refund-farming").items[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        watch = PageWatch(base).attach(page)

        def check(name: str) -> None:
            """The page speaks ``lang`` only, and fits a laptop's and a phone's width."""
            found = foreign_words(page, lang)
            assert not found, f"{name} in {lang} shows words of the other language: {found}"
            screenshots(page, f"console-members-{lang}-{name}")

        page.goto(f"{base}/login?lang={lang}")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORDS["admin"])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text("admin")

        # the members: a search with no match, then one that finds alice
        page.goto(f"{base}/admin/members/")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if lang == "zh" else "en")
        search = page.locator("input[name=q]")
        expect(search).to_have_attribute("placeholder", words["search"])
        check("1-members")
        search.fill("nobody")
        page.locator("form[role=search] button").click()
        expect(page.get_by_test_id("members")).to_contain_text(words["no_match"])
        page.locator("input[name=q]").fill("alice")
        page.locator("form[role=search] button").click()

        # alice's page: frozen and unfrozen, her hold released
        expect(page.get_by_test_id("balance")).to_be_visible()
        expect(page.locator("h5.card-title").first).to_have_text(words["balance"])
        expect(page.locator("#rewards")).to_contain_text(words["rewards"])
        expect(page.locator("#rewards")).to_contain_text("马克杯")
        expect(page.get_by_test_id("tier-panel")).to_be_visible()
        check("2-member")
        panel = page.get_by_test_id("risk-panel")
        panel.locator("#freeze-reason").fill(WHY)
        panel.get_by_test_id("freeze-form").locator("button").click()
        expect(page.locator(".alert-success")).to_contain_text(words["froze"])
        expect(page.get_by_test_id("risk-account")).to_contain_text(words["frozen"])
        check("3-member-frozen")
        page.get_by_test_id("risk-panel").locator("#unfreeze-reason").fill(WHY)
        page.get_by_test_id("unfreeze-form").locator("button").click()
        expect(page.locator(".alert-success")).to_contain_text(words["unfroze"])
        page.get_by_test_id("risk-panel").locator("#release-reason").fill(WHY)
        page.get_by_test_id("release-form").locator("button").click()
        expect(page.locator(".alert-success")).to_contain_text(words["released"])
        check("4-member-released")

        # the cases: the list, a filter with no match, a case assigned and released
        page.goto(f"{base}/admin/risk/")
        expect(page.get_by_test_id("case-total")).to_have_text(words["cases"])
        expect(page.get_by_test_id(f"case-{farming.id}")).to_contain_text(words["summary"])
        check("5-cases")
        page.locator("#member").fill("nobody")
        page.get_by_test_id("case-filters").locator("button").click()
        expect(page.get_by_test_id("cases")).to_contain_text(words["no_cases"])
        page.goto(f"{base}/admin/risk/case?id={farming.id}")
        expect(page.get_by_test_id("case-summary")).to_have_text(words["summary"])
        expect(page.get_by_test_id("rule-sentence")).to_contain_text(words["sentence"])
        check("6-case")
        page.get_by_test_id("assign-me").click()
        expect(page.locator(".alert-success")).to_contain_text(words["assigned"])
        form = page.get_by_test_id("resolve-form")
        form.locator("#outcome-release").check()
        form.locator("#note").fill(WHY)
        form.get_by_test_id("resolve").click()
        expect(page.locator(".alert-success")).to_contain_text(words["resolved"])
        expect(page.get_by_test_id("trail")).to_contain_text(words["trail"])
        check("7-case-resolved")

        # the rules: a draft refused beside its row, previewed, published; the scan now
        page.goto(f"{base}/admin/risk/rules")
        expect(page.get_by_test_id("rules-in-force-refund-farming")).to_contain_text(
            words["sentence"]
        )
        check("8-rules")
        velocity = page.get_by_test_id("kind-velocity")
        velocity.locator("select[name='velocity.action']").first.select_option("hold")
        page.get_by_test_id("preview-button").click()
        expect(page.get_by_test_id("problem")).to_contain_text(words["refused"])
        check("9-rules-refused")
        velocity = page.get_by_test_id("kind-velocity")
        velocity.locator("select[name='velocity.action']").first.select_option("flag")
        velocity.locator("input[name='velocity.limit']").first.fill("4")
        page.get_by_test_id("preview-button").click()
        expect(page.get_by_test_id("preview")).to_contain_text(words["preview"])
        expect(page.get_by_test_id("changes")).to_contain_text("till-burst")
        check("10-rules-preview")
        page.get_by_test_id("publish").click()
        expect(page.locator(".alert-success")).to_contain_text(words["published"])
        page.goto(f"{base}/admin/risk/")
        page.get_by_test_id("scan-now").click()
        expect(page.locator(".alert-success")).to_contain_text(words["scanned"])
        check("11-scanned")
        browser.close()
    watch.assert_clean()
