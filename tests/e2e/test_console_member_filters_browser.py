"""The members list's filter bar in a real browser (Debian's chromium, headless, Playwright),
in Simplified Chinese and in English, at a laptop's and a phone's width.

Operations open the members list, search on part of a phone number written with spaces,
pick a tier, a lowest balance and a sort, page on with the filter kept, sort on a column by
its header, and download "Export these members (CSV)": the file holds the members the list
showed, in its order, with times in the program's zone and offset. A bad value typed into
the URL is a readable 400 page. Screenshots ``console-member-filters-<lang>-*`` at 1280 and
390 pixels wide must not overflow the window; the page's own words are in its language.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
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
from tests.e2e.test_console_members_i18n_browser import foreign_words
from tests.integration.helpers import PROGRAM, earn, execute, local
from tests.integration.test_admin_support import PASSWORDS, build_app

if TYPE_CHECKING:
    from playwright.sync_api import Page

LADDER = {
    "tiers": [
        {"code": "putong", "name": "普通", "threshold": 0},
        {"code": "jinka", "name": "金卡", "threshold": 5_000},
    ]
}
MEMBERS = 40  # m00..m39: balance n points, phone +86 138 0000 00nn, every other one gold
WORDS = {
    "zh": {"export": "导出这些会员（CSV）", "bad": "最低余额（20）高于最高余额（10）。"},
    "en": {
        "export": "Export these members (CSV)",
        "bad": "The lowest balance (20) is above the highest (10).",
    },
}
_LOCAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")


@pytest.fixture
def console(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Database]]:
    require_chromium()
    path = tmp_path / "console.db"
    shutil.copy(sqlite_template, path)
    clock = FixedClock(local(2026, 3, 1, 10))
    db = Database.from_url(f"sqlite:///{path}", clock=clock)
    app = build_app(db, TESTING=False, JIFEN_RAISE_ERRORS=False, SESSION_COOKIE_SECURE=False)
    s.publish_tiers(db, program=PROGRAM, rules=LADDER, created_by="marketing")
    for n in range(MEMBERS):
        member = f"m{n:02d}"
        s.enrol_member(db, program=PROGRAM, external_id=member, phone=f"+86 138 0000 00{n:02d}")
        earn(db, member, f"o-{member}", (n + 1) * 100)
        clock.advance(dt.timedelta(hours=1))
    gold = ", ".join(f"'m{n:02d}'" for n in range(0, MEMBERS, 2))
    execute(db, f"UPDATE members SET tier = 'jinka' WHERE external_id IN ({gold})")
    with served(app) as base:
        yield base, db
    db.dispose()


def listed(page: Page) -> list[str]:
    return [
        link.inner_text()
        for link in page.locator("[data-testid=members] tbody td:first-child a").all()
    ]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_operations_filter_sort_page_and_export_members(
    console: tuple[str, Database], lang: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _db = console
    words = WORDS[lang]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        watch = PageWatch(base).attach(page)

        def check(name: str) -> None:
            found = foreign_words(page, lang)
            assert not found, f"{name} in {lang} shows words of the other language: {found}"
            screenshots(page, f"console-member-filters-{lang}-{name}")

        page.goto(f"{base}/login?lang={lang}")
        page.fill("#username", "operations")
        page.fill("#password", PASSWORDS["operations"])
        page.click("button[type=submit]")
        expect(page.get_by_test_id("whoami")).to_contain_text("operations")

        page.goto(f"{base}/admin/members/")
        expect(page.get_by_test_id("member-filters")).to_be_visible()
        check("1-everyone")

        # part of a phone as people write it, gold members, from 10 points, most first
        page.locator("input[name=q]").fill("138 0000 00")
        page.select_option("#filter-tier", "jinka")
        page.locator("#filter-min").fill("10")
        page.select_option("#filter-sort", "balance")
        page.select_option("#filter-order", "desc")
        page.locator("form[role=search] button").click()
        expect(page.get_by_test_id("member-count")).to_contain_text("15")
        first = listed(page)
        assert first[:3] == ["m38", "m36", "m34"] and len(first) == 15
        assert "tier=jinka" in page.url and "min=10" in page.url
        expect(page.locator("#filter-tier")).to_have_value("jinka")
        check("2-filtered")

        # the export link carries the same filter: the file is the list
        export = page.get_by_test_id("export-members")
        expect(export).to_have_text(words["export"])
        href = export.get_attribute("href") or ""
        assert "tier=jinka" in href and "sort=balance" in href and "order=desc" in href
        response = page.request.get(base + href)
        assert response.status == 200
        rows = list(csv.DictReader(io.StringIO(response.body().decode("utf-8-sig"))))
        assert [row["external_id"] for row in rows] == first
        assert all(_LOCAL.match(row["created_at"]) for row in rows)
        assert all(_LOCAL.match(row["last_activity"]) for row in rows)

        # a header sorts on its column (newest first), the filter kept; again: the other way
        joined = page.locator("[data-testid=members] thead a[data-sort=joined]")
        joined.click()
        expect(page).to_have_url(re.compile(r"sort=joined&order=desc"))
        assert "tier=jinka" in page.url
        assert listed(page) == sorted(first, reverse=True)
        joined.click()
        expect(page).to_have_url(re.compile(r"sort=joined&order=asc"))
        assert listed(page) == sorted(first)
        check("3-sorted")

        # pages keep the filter (42 members without a hold: two pages)
        page.goto(f"{base}/admin/members/?hold=no&sort=balance")
        assert listed(page)[:3] == ["alice", "bob", "m00"]  # no points, then 1 point
        page.locator(".pagination a").last.click()
        assert "hold=no" in page.url and "sort=balance" in page.url and "page=2" in page.url
        assert listed(page)[-1] == "m39"
        check("4-page-two")

        # a bad value is refused, not ignored
        answer = page.goto(f"{base}/admin/members/?min=20&max=10")
        assert answer is not None and answer.status == 400
        expect(page.locator("body")).to_contain_text(words["bad"])

        watch.assert_clean()
        browser.close()
