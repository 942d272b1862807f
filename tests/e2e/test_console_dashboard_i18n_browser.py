"""The dashboard, the earning rules (with a preview, a publish and a cancellation), the
adjustments, the jobs and their forecast, and the error pages in Simplified Chinese and in
English, in a real browser (Debian's chromium, headless, driven by Playwright).

An admin works through the pages in each language: the dashboard with its health strip and
charts; a rules draft with a weekend campaign typed with the language's weekday names,
previewed with its changes in words, published for later, its cancellation asked and done,
the program settings saved; an adjustment applied, one waiting for a second person and
withdrawn; a job run from the console, a refused forecast horizon; a page that does not
exist; a viewer refused the adjustments. In Chinese no heading, table header, label, button,
option, badge, navigation link, flash, health-strip label, chart legend or rule change
shows an English word (beyond the names and codes the catalogue test keeps, and the shop's
own data: member ids, job codes, the time zone); in English none shows Chinese beyond the
shop's data. Screenshots at 1280 and 390 pixels wide (``console-dashboard-<lang>-*``) must
not overflow the window.
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
from loyalty.jobs import JOB_NAMES
from loyalty.jobs.runs import run_job
from tests.e2e.browser_support import CHROMIUM, PageWatch, require_chromium, screenshots, served
from tests.integration.helpers import PROGRAM, TZ, earn, local
from tests.integration.test_admin_support import PASSWORDS, build_app
from tests.unit.test_console_catalogue import KEPT

if TYPE_CHECKING:
    from playwright.sync_api import Page

# What a person reads as the page's own words.
CHECKED = (
    "h1, h2, h3, h4, h5, h6, th, label, button, legend, dt, option, .badge, nav a, .alert,"
    " .jifen-health, .form-text, .card .label, figure svg > text, [data-testid=changes] li,"
    " [data-testid=cancel-changes] li, [data-testid=roles-needed], [data-testid=signed-in-as]"
)
CAMPAIGN = "双十二"
# The shop's own data and codes, shown as they are in either language.
DATA = (
    TZ,
    "alice",
    "bob",
    "viewer",
    "Shop",
    "shop",
    "grocery",
    CAMPAIGN,
    "简体中文",
    "v1",
    "v2",
    *JOB_NAMES,
)
_ENGLISH = re.compile(r"[A-Za-z][A-Za-z'’-]+")
_CHINESE = re.compile(r"[\u3400-\u9fff]+")


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Database]]:
    require_chromium()
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    db = Database.from_url(f"sqlite:///{path}", clock=FixedClock(local(2026, 11, 21, 18)))
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    _seed(db)
    with served(app) as base:
        yield base, db
    db.dispose()


def _seed(db: Database) -> None:
    """Points earned, an action rule and caps in force, tiers, one job run."""
    rules = {
        "base_ratio": "1",
        "category_ratios": {"grocery": "0.5"},
        "actions": {"sign_in": {"points": 5, "limit": 1, "period": "day"}},
        "caps": {"member_daily": 5_000},
        "expiry": {"months": 2, "days": 0, "month_end": True},
    }
    s.publish_rules(db, program=PROGRAM, rules=rules, created_by="marketing")
    ladder = {"tiers": [{"code": "putong", "name": "普通", "threshold": 0}]}
    s.publish_tiers(db, program=PROGRAM, rules=ladder, created_by="marketing")
    earn(db, "alice", "o-1", 1_250_000)
    earn(db, "bob", "o-2", 80_000)
    run_job(db, "expire", trigger="cron")


def _without_data(text: str) -> str:
    for value in sorted(DATA, key=len, reverse=True):
        text = text.replace(value, " ")
    return text


def foreign_words(page: Page, lang: str) -> list[str]:
    """Words of the other language in what the page shows as its own words."""
    # innerText where there is one (HTML), textContent for the charts' SVG text.
    texts = page.locator(CHECKED).evaluate_all("els => els.map(e => e.innerText ?? e.textContent)")
    shown = _without_data(" \n".join(texts))
    if lang == "zh":
        return sorted({w for w in _ENGLISH.findall(shown) if w not in KEPT})
    return sorted(set(_CHINESE.findall(shown)) - {"普通"})


def check(page: Page, lang: str, name: str) -> None:
    """The page speaks ``lang`` only, and fits a laptop's and a phone's width."""
    found = foreign_words(page, lang)
    assert not found, f"{name} in {lang} shows words of the other language: {found}"
    screenshots(page, f"console-dashboard-{lang}-{name}")


# The words each step expects, by language (English stays the default).
WORDS = {
    "zh": {
        "expire": "过期",
        "waiting": "积压",
        "flows": "近 90 天每日积分",
        "weekdays": "周六 周日",
        "changes": f"新增营销活动 {CAMPAIGN}：×3，周六 周日，"
        "2026年12月12日 00:00–2026年12月14日 00:00",
        "ratio": "基础比例：1 → 每 1 CNY 得 2 积分",
        "draft": "草稿，自 2026年12月10日 00:00 起生效",
        "published": "已发布规则版本 3，自 2026年12月10日 00:00（Asia/Shanghai）起生效。",
        "confirm": "取消规则版本 3？",
        "cancelled": "已取消规则版本 3：它不会在 2026年12月10日 00:00（Asia/Shanghai）生效。",
        "settings": "积分计划设置已保存。",
        "applied": "调整 #1 已生效：alice +100 积分。",
        "waits": "调整 #2（+900 积分）须由另一人审批",
        "withdrawn": "调整 #2（+900 积分）已撤回；未记入任何积分。",
        "ran": "过期 已运行：",
        "refused": "未显示：天数必须是 1 到 366 之间的整数。",
        "missing": "页面不存在",
        "forbidden": "仅对以下角色开放：运营或管理员",
    },
    "en": {
        "expire": "expire",
        "waiting": "Waiting",
        "flows": "Points per day, last 90 days",
        "weekdays": "Sat Sun",
        "changes": f"campaign {CAMPAIGN} added: ×3, Sat Sun, "
        "Dec 12, 2026, 00:00–Dec 14, 2026, 00:00",
        "ratio": "base ratio 1 → 2 points per CNY",
        "draft": "Draft, in force from Dec 10, 2026, 00:00",
        "published": "Published rules version 3, in force from Dec 10, 2026, 00:00 "
        "(Asia/Shanghai).",
        "confirm": "Cancel rules version 3?",
        "cancelled": "Cancelled rules version 3: it will not take effect on Dec 10, 2026, 00:00 "
        "(Asia/Shanghai).",
        "settings": "Program settings saved.",
        "applied": "Adjustment #1 applied: +100 points to alice.",
        "waits": "Adjustment #2 of +900 points waits for a second person",
        "withdrawn": "Adjustment #2 of +900 points withdrawn; nothing was written.",
        "ran": "expire ran:",
        "refused": "Not shown: days must be a whole number from 1 to 366.",
        "missing": "Page not found",
        "forbidden": "is open to the role operations or admin",
    },
}


def sign_in(page: Page, base: str, lang: str, username: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/login?lang={lang}")
    page.fill("#username", username)
    page.fill("#password", PASSWORDS[username])
    page.click("button[type=submit]")
    expect(page.get_by_test_id("whoami")).to_contain_text(username)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_dashboard_rules_adjustments_and_jobs_speak_one_language(
    console: tuple[str, Database], lang: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _db = console
    words = WORDS[lang]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        watch = PageWatch(base).attach(page)
        sign_in(page, base, lang, "admin")

        # the dashboard: the health strip, the figures and the charts
        page.goto(f"{base}/admin/")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if lang == "zh" else "en")
        expect(page.get_by_test_id("health-job-expire")).to_contain_text(words["expire"])
        expect(page.get_by_test_id("health-waiting")).to_contain_text(words["waiting"])
        expect(page.get_by_test_id("flows-chart").locator("title").first).to_contain_text(
            words["flows"]
        )
        check(page, lang, "1-dashboard")

        # the rules: a draft previewed, published for later, its cancellation asked and done
        page.goto(f"{base}/admin/rules/")
        check(page, lang, "2-rules")
        page.fill("#base_ratio", "2")
        page.locator("[name=camp_name]").first.fill(CAMPAIGN)
        page.locator("[name=camp_multiplier]").first.fill("3")
        page.locator("[name=camp_starts]").first.fill("2026-12-12T00:00")
        page.locator("[name=camp_ends]").first.fill("2026-12-14T00:00")
        page.locator("[name=camp_weekdays]").first.fill(words["weekdays"])
        page.fill("#effective_from", "2026-12-10T00:00")
        page.click("[data-testid=preview-button]")
        expect(page.get_by_test_id("changes")).to_contain_text(words["changes"])
        expect(page.get_by_test_id("changes")).to_contain_text(words["ratio"])
        expect(page.get_by_test_id("preview-label-draft")).to_have_text(words["draft"])
        check(page, lang, "3-preview")
        page.click("[data-testid=publish]")
        expect(page.locator(".alert-success")).to_have_text(words["published"])
        page.click("[data-testid=start-from-v3]")
        expect(page.locator("[name=camp_weekdays]").first).to_have_value(words["weekdays"])
        check(page, lang, "4-scheduled")
        page.click("[data-testid=cancel-v3]")
        expect(page.get_by_test_id("cancel-confirm").locator("h5")).to_have_text(words["confirm"])
        expect(page.get_by_test_id("cancel-changes")).to_contain_text(words["changes"])
        check(page, lang, "5-cancel")
        page.click("[data-testid=confirm-cancel]")
        expect(page.locator(".alert-success")).to_have_text(words["cancelled"])
        page.select_option("#rounding", "half_up")
        page.locator("#settings button[type=submit]").click()
        expect(page.locator(".alert-success")).to_have_text(words["settings"])

        # adjustments: one applied, one waiting for a second person, then withdrawn
        page.goto(f"{base}/admin/adjustments/")
        form = page.get_by_test_id("adjust-form")
        for points in ("100", "900"):
            form.locator("#member").fill("alice")
            form.locator("#points").fill(points)
            form.locator("#reason").fill("门店补偿")
            form.locator("button[type=submit]").click()
            expected = words["applied"] if points == "100" else words["waits"]
            expect(page.locator(".alert")).to_contain_text(expected)
        check(page, lang, "6-adjustments")
        page.get_by_test_id("pending").locator("button.btn-outline-danger").click()
        expect(page.locator(".alert")).to_have_text(words["withdrawn"])

        # jobs: a run from the console, a refused horizon
        page.goto(f"{base}/admin/jobs/")
        page.locator("form:has(input[name=job][value=expire]) button").click()
        expect(page.locator(".alert-success")).to_contain_text(words["ran"])
        check(page, lang, "7-jobs")
        page.goto(f"{base}/admin/jobs/?days=999#forecast")
        expect(page.get_by_test_id("forecast-refused")).to_contain_text(words["refused"])
        check(page, lang, "8-forecast-refused")

        # a page that does not exist; a viewer refused the adjustments
        page.goto(f"{base}/admin/nowhere")
        expect(page.locator("h2")).to_have_text(words["missing"])
        check(page, lang, "9-not-found")
        viewer = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        sign_in(viewer, base, lang, "viewer")
        viewer.goto(f"{base}/admin/adjustments/")
        expect(viewer.get_by_test_id("roles-needed")).to_contain_text(words["forbidden"])
        check(viewer, lang, "10-forbidden")
        browser.close()
    watch.assert_clean()
