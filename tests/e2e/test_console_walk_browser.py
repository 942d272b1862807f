"""Marketing's and operations' main tasks on the Chinese demo, walked in a real browser (Debian's
chromium, headless, driven by Playwright) in Simplified Chinese and in English.

Marketing: the dashboard; the analytics for a range of two weeks against the two weeks before,
a chart's numbers opened and the flows downloaded as CSV; the earning rules, a new base ratio
previewed, published for next week and that version cancelled; the reward catalog, the tea
mug opened and a new price published for next week; the tiers. Operations: the members, a
search by the start of a member id and one by the start of an e-mail address (which opens the
member); that member's page with its lots and history; an adjustment that waits for a second
person; the risk cases and the open case; the jobs; the exports, the members CSV downloaded.

Every step is screenshotted at 1280 and 390 pixels wide (``walk-<role>-<step>-<lang>``,
:func:`~tests.e2e.browser_support.screenshots`, which fails on a page wider than the window).
Every Chinese page is read as a person sees it (``document.body.innerText``) and fails on any
run of English words that is not the shop's own data or a code the console shows as a code
(:func:`untranslated`); every CSV starts with a byte order mark, for Excel.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from admin.cli import DEMO_USERS, build_demo
from admin.i18n import CHINESE, read_catalogue
from loyalty.db import Database
from loyalty.jobs import JOB_NAMES
from loyalty.services.demo import (
    DEMO_CATALOG,
    DEMO_FARMER,
    DEMO_PROGRAM,
    DEMO_RISK_RULES,
    DEMO_RULES,
    DEMO_STAFF,
    DEMO_TIERS,
)
from tests.e2e.browser_support import CHROMIUM, PageWatch, require_chromium, screenshots, served
from tests.integration.test_admin_support import build_app
from tests.unit.test_console_catalogue import KEPT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ZONE = ZoneInfo("Asia/Shanghai")
PASSWORDS = {username: password for username, password, _role in DEMO_USERS}
BOM = b"\xef\xbb\xbf"
# Searches: the start of two member ids (张娜, 张婷), the start of one e-mail address.
ID_PART = "张"
EMAIL_PART = "何超@exa"
EMAIL_MEMBER = "何超"
REASON = "门店补偿：会员卡损坏"


def _demo_data() -> tuple[str, ...]:
    """The demo's own names and codes, shown as they are in either language: its program,
    time zone, logins, member id, categories, SKUs, actions, reward codes, names,
    descriptions and prize labels, tier codes, risk rule ids and the jobs."""
    rewards = [code for code, _kind, _stock, _terms in DEMO_CATALOG]
    for _code, _kind, _stock, terms in DEMO_CATALOG:
        rewards += [terms["name"], terms["description"]]
        rewards += [prize["label"] for prize in terms.get("prizes", ())]
    return (
        DEMO_PROGRAM,
        "积分商城 Demo",
        "Asia/Shanghai",
        DEMO_STAFF,
        *PASSWORDS,
        DEMO_FARMER,
        *DEMO_RULES["category_ratios"],
        *DEMO_RULES["sku_ratios"],
        *DEMO_RULES["actions"],
        *rewards,
        *(tier["code"] for tier in DEMO_TIERS["tiers"]),
        *(rule["id"] for rule in DEMO_RISK_RULES["rules"]),
        *JOB_NAMES,
    )


DATA = tuple(sorted(set(_demo_data()), key=len, reverse=True))
# Shown as they are: e-mail addresses, links and paths, CSV file names, versions (v2), a
# chart axis's thousands (15k), and codes spelled in lower case with hyphens, underscores or
# colons (order-000123, sign_in, earn:farm-held).
CODES = re.compile(
    r"\S+@\S+|https?://\S*|(?<!\w)/[\w/.-]+|\b[\w-]+\.csv\b|\bv\d+\b|\b\d[\d.]*k\b"
    r"|\b[a-z0-9]+(?:[-_:][a-z0-9]+)+\b"
)
_WORD = r"[A-Za-z][A-Za-z'’]*"
_RUN = re.compile(rf"{_WORD}(?:[ \t,.'’-]+{_WORD})*")
# What a page shows as codes by its own choice: <code>, a history item's reference (the
# ledger's key, such as action:sign_in:%E4%BD%95…).
CODE = "body code, [data-testid=reference]"
# Text the console does not translate yet, by where it is shown and why; the list only
# shrinks.
NOT_YET: dict[str, str] = {}  # selector: what English it still shows (none now)
_TEXTS = "(selector) => [...document.querySelectorAll(selector)].map((e) => e.innerText)"


def untranslated(shown: str, kept: Sequence[str] = ()) -> list[str]:
    """The runs of English words in ``shown`` (a page's text) that are neither the shop's
    data, a code (:data:`CODES`), one of the texts ``kept`` (the page's codes, text not yet
    translated) nor a word the catalogue keeps in Chinese (:data:`KEPT`), each with a
    little of its surroundings."""
    literals = sorted({*DATA, *(k.strip() for k in kept if k.strip())}, key=len, reverse=True)
    # Whole values only: ``mature`` (a job) is not taken out of ``sweep:mature:1``.
    data = re.compile(
        rf"(?<![A-Za-z0-9_:-])(?:{'|'.join(map(re.escape, literals))})(?![A-Za-z0-9_:-])"
    )
    text = CODES.sub(" · ", data.sub(" · ", shown))
    found: dict[str, str] = {}
    for run in _RUN.finditer(text):
        words = re.findall(_WORD, run.group())
        if all(word in KEPT for word in words):
            continue
        around = text[max(0, run.start() - 20) : run.end() + 20].replace("\n", "⏎")
        found.setdefault(run.group(), f"{run.group()!r} in …{around}…")
    return list(found.values())


def where_from(finding: str) -> str:
    """A finding of :func:`untranslated` with the catalogue's messages that hold its words:
    none (wrap the template's text in ``_()`` and add it to a .po file), or some (the page
    shows the message without passing it through gettext, or shows the English on purpose)."""
    run = finding.split(": ", 1)[1].split(" in …", 1)[0].strip("'\"")
    ids = [m.id for m in read_catalogue(CHINESE) if isinstance(m.id, str) and m.id and run in m.id]
    if not ids:
        return f"{finding} [in no .po file]"
    return f"{finding} [in the .po files as {', '.join(map(repr, ids[:3]))}]"


def test_the_detector_keeps_codes_and_data_and_finds_english() -> None:
    shown = (
        "会员 member-farm 何超@example.com 导出 CSV · 下载 members.csv\n"
        "版本 v2 earn:farm-held Celadon tea mug 青瓷茶杯\n"
        "refund re-farm-012 of order farm-012 succeeded: frozen points taken back\n"
        "奖励 Free coffee 免费咖啡 · Points earned 已发放"
    )
    found = untranslated(shown)
    assert [f.split(" in ")[0] for f in found] == [
        "'refund'",
        "'of order'",
        "'succeeded'",
        "'frozen points taken back'",
        "'Points earned'",
    ]
    assert untranslated("退款 refund re-1", kept=["refund re-1"]) == []


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo database (``jifen demo``'s data and logins), built once for the module."""
    require_chromium()
    path = tmp_path_factory.mktemp("walk") / "demo.db"
    build_demo(path)
    return path


@pytest.fixture
def console(demo_template: Path, tmp_path: Path) -> Iterator[str]:
    """The console on a copy of the demo database, served on a free port."""
    require_chromium()
    path = tmp_path / "console.db"
    shutil.copy(demo_template, path)
    db = Database.from_url(f"sqlite:///{path}")
    app = build_app(
        db,
        seed=False,
        JIFEN_PROGRAM=DEMO_PROGRAM,
        TESTING=False,
        JIFEN_RAISE_ERRORS=False,
        SESSION_COOKIE_SECURE=False,
    )
    with served(app) as base:
        yield base
    db.dispose()


class Walk:
    """One role's page in one language: each step checked and screenshotted."""

    def __init__(self, browser: Browser, base: str, lang: str, role: str) -> None:
        from playwright.sync_api import expect

        self.base, self.lang, self.role = base, lang, role
        # The browser's own language too: date inputs read 2026/12/03 in Chinese.
        locale = "zh-CN" if lang == "zh" else "en-US"
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
        self.page = context.new_page()
        self.watch = PageWatch(base).attach(self.page)
        self.english: list[str] = []
        self.not_yet: set[str] = set()  # the entries of NOT_YET that showed English
        self.page.goto(f"{base}/login?lang={lang}")
        self.page.fill("#username", role)
        self.page.fill("#password", PASSWORDS[role])
        self.page.click("button[type=submit]")
        expect(self.page.get_by_test_id("whoami")).to_contain_text(role)

    def go(self, path: str) -> Page:
        from playwright.sync_api import expect

        self.page.goto(f"{self.base}{path}")
        html_lang = "zh-CN" if self.lang == "zh" else "en"
        expect(self.page.locator("html")).to_have_attribute("lang", html_lang)
        return self.page

    def step(self, name: str) -> None:
        """The page fits a laptop's and a phone's width; in Chinese, it shows no English
        beyond the shop's data and codes."""
        if self.lang == "zh":
            shown = self.page.evaluate("document.body.innerText")
            codes = self.page.evaluate(_TEXTS, CODE)
            for selector in NOT_YET:
                texts = self.page.evaluate(_TEXTS, selector)
                if untranslated(" \n".join(texts), codes):
                    self.not_yet.add(selector)
                codes += texts
            found = untranslated(shown, codes)
            self.english += [f"{self.role} {name} ({self.page.url}): {f}" for f in found]
        screenshots(self.page, f"walk-{self.role}-{name}-{self.lang}")

    def download(self, link: str) -> bytes:
        """The file the link (a selector) downloads."""
        with self.page.expect_download() as info:
            self.page.click(link)
        return Path(info.value.path()).read_bytes()


def _local_today() -> dt.date:
    return dt.datetime.now(ZONE).date()


# The words each step expects, by language (English stays the default); {…} filled in.
WORDS = {
    "zh": {
        "period": "{first} 至 {last}（14 天），对比 {pfirst} 至 {plast}",
        "ratio": "基础比例：1 → 每 1 CNY 得 2 积分",
        "published": "已发布规则版本 2，自 {start}（Asia/Shanghai）起生效。",
        "confirm": "取消规则版本 2？",
        "cancelled": "已取消规则版本 2：它不会在 {start}（Asia/Shanghai）生效。",
        "price": "已发布 tea-mug 的版本 2，自 {start}（Asia/Shanghai）起生效。",
        "scheduled": "待生效",
        "tiers": "会员等级",
        "members": "会员",
        "lots": "积分批次",
        "waits": "调整 #1（+1,500 积分）须由另一人审批",
        "cases": "1 个案件",
        "summary": "近 30 天获得的",
        "jobs": "立即运行",
    },
    "en": {
        "period": "{first} to {last} (14 days) compared with {pfirst} to {plast}",
        "ratio": "base ratio 1 → 2 points per CNY",
        "published": "Published rules version 2, in force from {start} (Asia/Shanghai).",
        "confirm": "Cancel rules version 2?",
        "cancelled": "Cancelled rules version 2: it will not take effect on {start} "
        "(Asia/Shanghai).",
        "price": "Published version 2 of tea-mug, in force from {start} (Asia/Shanghai).",
        "scheduled": "scheduled",
        "tiers": "Tiers",
        "members": "Members",
        "lots": "Lots",
        "waits": "Adjustment #1 of +1,500 points waits for a second person",
        "cases": "1 case",
        "summary": "points earned in 30 days refunded",
        "jobs": "Run now",
    },
}


def said(lang: str, template: str, **days: dt.date) -> re.Pattern[str]:
    """``template`` with each ``{name}`` a day of ``days`` as a page may write it: in a
    table's compact form (2026-12-10) or in a sentence of the page's language (Dec 10, 2026;
    2026年12月10日); ``{start}`` is the start of that day (2026-12-10 00:00, Dec 10, 2026,
    00:00, 2026年12月10日 00:00)."""

    def forms(name: str, day: dt.date) -> str:
        spoken = (
            f"{day.year}年{day.month}月{day.day}日"
            if lang == "zh"
            else f"{day:%b} {day.day}, {day.year}"
        )
        if name == "start":
            spoken += " 00:00" if lang == "zh" else ", 00:00"
            return f"(?:{re.escape(f'{day} 00:00')}|{re.escape(spoken)})"
        return f"(?:{re.escape(day.isoformat())}|{re.escape(spoken)})"

    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(
        forms(part, days[part]) if i % 2 else re.escape(part) for i, part in enumerate(parts)
    )
    return re.compile(pattern)


def walk_marketing(walk: Walk) -> None:
    """The dashboard, analytics, earning rules, the reward catalog and the tiers."""
    from playwright.sync_api import expect

    words = WORDS[walk.lang]
    today = _local_today()
    first, start = today - dt.timedelta(days=13), today + dt.timedelta(days=7)

    page = walk.go("/admin/")
    expect(page.get_by_test_id("health-strip")).to_be_visible()
    expect(page.get_by_test_id("flows-chart")).to_be_visible()
    walk.step("1-dashboard")

    # analytics: two weeks against the two weeks before; a chart's numbers; the flows' CSV
    page = walk.go("/admin/analytics/")
    page.fill("#from", first.isoformat())
    page.fill("#to", today.isoformat())
    page.get_by_test_id("range-form").locator("button[type=submit]").click()
    period = said(
        walk.lang,
        words["period"],
        first=first,
        last=today,
        pfirst=first - dt.timedelta(days=14),
        plast=first - dt.timedelta(days=1),
    )
    expect(page.get_by_test_id("period")).to_contain_text(period)
    walk.step("2-analytics")
    numbers = page.get_by_test_id("chart-issued-numbers")
    numbers.locator("summary").click()
    expect(numbers.locator("table")).to_be_visible()
    expect(numbers.locator("table")).to_contain_text(said(walk.lang, "{day}", day=today))
    walk.step("3-analytics-numbers")
    flows = walk.download("[data-testid=csv-flows]")
    assert flows.startswith(BOM), flows[:40]
    assert first.isoformat().encode() in flows

    # earning rules: a new base ratio previewed, published for next week, then cancelled
    page = walk.go("/admin/rules/")
    page.fill("#base_ratio", "2")
    page.fill("#effective_from", f"{start}T00:00")
    page.get_by_test_id("preview-button").click()
    expect(page.get_by_test_id("changes")).to_contain_text(words["ratio"])
    walk.step("4-rules-preview")
    page.get_by_test_id("publish").click()
    expect(page.locator(".alert-success")).to_have_text(
        said(walk.lang, words["published"], start=start)
    )
    walk.step("5-rules-scheduled")
    page.get_by_test_id("cancel-v2").click()
    expect(page.get_by_test_id("cancel-confirm").locator("h5")).to_have_text(words["confirm"])
    expect(page.get_by_test_id("cancel-changes")).to_contain_text(words["ratio"])
    walk.step("6-rules-cancel")
    page.get_by_test_id("confirm-cancel").click()
    expect(page.locator(".alert-success")).to_have_text(
        said(walk.lang, words["cancelled"], start=start)
    )

    # the reward catalog: the tea mug opened, a new price published for next week
    page = walk.go("/admin/rewards/")
    expect(page.get_by_test_id("catalog")).to_contain_text("tea-mug")
    walk.step("7-rewards")
    page.get_by_test_id("reward-tea-mug").locator("a").first.click()
    expect(page.get_by_test_id("summary")).to_contain_text("1,500")
    walk.step("8-reward")
    form = page.get_by_test_id("publish-form")
    form.locator("[name=points]").fill("1800")
    form.locator("[name=effective_from]").fill(f"{start}T00:00")
    form.locator("button[type=submit]").click()
    expect(page.locator(".alert-success")).to_have_text(
        said(walk.lang, words["price"], start=start)
    )
    expect(page.get_by_test_id("versions")).to_contain_text("1,800")
    expect(page.get_by_test_id("versions")).to_contain_text(words["scheduled"])
    walk.step("9-reward-new-price")

    page = walk.go("/admin/tiers/")
    expect(page.locator("h4, h2").first).to_contain_text(words["tiers"])
    expect(page.get_by_test_id("ladder")).to_contain_text("钻石")
    walk.step("10-tiers")


def walk_operations(walk: Walk) -> None:
    """Members and a search, a member's page and an adjustment, risk, jobs and exports."""
    from playwright.sync_api import expect

    words = WORDS[walk.lang]

    page = walk.go("/admin/members/")
    expect(page.get_by_test_id("members")).to_contain_text(DEMO_FARMER)
    walk.step("1-members")
    page.locator("input[name=q]").fill(ID_PART)
    page.locator("form[role=search] button").click()
    expect(page.get_by_test_id("members")).to_contain_text("张娜")
    expect(page.get_by_test_id("members")).to_contain_text("张婷")
    walk.step("2-search-id")

    # an e-mail address's start finds one member: their page, with lots and history
    page.locator("input[name=q]").fill(EMAIL_PART)
    page.locator("form[role=search] button").click()
    expect(page.get_by_test_id("balance")).to_be_visible()
    expect(page.locator("h4, h2").first).to_contain_text(EMAIL_MEMBER)
    expect(page.get_by_test_id("lots")).to_be_visible()
    expect(page.get_by_test_id("history")).to_be_visible()
    walk.step("3-member")

    # an adjustment above the threshold waits for a second person
    page.fill("#points", "1500")
    page.fill("#reason", REASON)
    page.locator("form:has(#reason) button[type=submit]").click()
    expect(page.locator(".alert")).to_contain_text(words["waits"])
    walk.step("4-adjustment-requested")

    page = walk.go("/admin/risk/")
    expect(page.get_by_test_id("case-total")).to_have_text(words["cases"])
    walk.step("5-risk-cases")
    page.get_by_test_id("case-1").locator("a").first.click()
    expect(page.get_by_test_id("case-summary")).to_contain_text(words["summary"])
    walk.step("6-risk-case")

    page = walk.go("/admin/jobs/")
    expect(page.locator("form:has(input[name=job][value=expire]) button")).to_have_text(
        words["jobs"]
    )
    expect(page.get_by_test_id("forecast")).to_be_visible()
    walk.step("7-jobs")

    page = walk.go("/admin/export/")
    walk.step("8-exports")
    members = walk.download("a[href$='members.csv']")
    assert members.startswith(BOM), members[:40]
    assert DEMO_FARMER.encode() in members and EMAIL_MEMBER.encode() in members


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_marketing_and_operations_walk_their_main_tasks(console: str, lang: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        marketing = Walk(browser, console, lang, "marketing")
        walk_marketing(marketing)
        operations = Walk(browser, console, lang, "operations")
        walk_operations(operations)
        browser.close()
    english = marketing.english + operations.english
    assert not english, "pages in Chinese show English:\n" + "\n".join(map(where_from, english))
    if lang == "zh":
        translated = set(NOT_YET) - marketing.not_yet - operations.not_yet
        assert not translated, f"now in Chinese: take {sorted(translated)} out of NOT_YET"
    marketing.watch.assert_clean()
    operations.watch.assert_clean()
