"""The console's Analytics page on the known two weeks of ``test_analytics``, on SQLite and
PostgreSQL: every role reads it; its figures with the previous period and the change; the
issued chart's rule version marker and campaign band; a bad range refused in the page (400)
with the form keeping what was typed; every table as CSV with a BOM, its header, times in the
program's zone with their offset, and the download audited."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services.analytics import TABLES
from loyalty.services.console_users import create_user
from tests.integration.test_admin_support import PASSWORDS, ROLE_OF, build_app, login
from tests.integration.test_analytics import seed_two_weeks

WEEK = "/admin/analytics/?from=2026-11-15&to=2026-11-21"


@pytest.fixture
def app(db: Database, clock: FixedClock) -> Flask:
    seed_two_weeks(db, clock)
    for username, password in PASSWORDS.items():
        create_user(db, username=username, role=ROLE_OF.get(username, username), password=password)
    return build_app(db, seed=False)


def _client(app: Flask, role: str = "marketing") -> FlaskClient:
    client = app.test_client()
    login(client, role)
    return client


def _text(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def _testid(page: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}">([^<]*)<', page)
    assert found, f"no {testid}"
    return found.group(1)


@pytest.mark.parametrize("role", ["viewer", "marketing", "operations", "admin"])
def test_every_role_reads_the_page_from_the_menu(app: Flask, role: str) -> None:
    client = _client(app, role)
    assert 'href="/admin/analytics/"' in _text(client, "/admin/")
    page = _text(client, "/admin/analytics/")
    assert "<title>Analytics · Jifen console</title>" in page
    assert "Oct 23, 2026 to Nov 21, 2026 (30 days)" in page  # the last 30 days by default
    assert 'data-testid="preset-30d"' in page


def test_the_weeks_figures_against_the_week_before(app: Flask) -> None:
    page = _text(_client(app), WEEK)
    assert "Nov 15, 2026 to Nov 21, 2026 (7 days) compared with Nov 8, 2026 to Nov 14, 2026" in page
    expected = {
        "issued": ("280", "150"),
        "redeemed": ("30", "40"),
        "expired": ("73", "110"),
        "cleared": ("30", "0"),
        "reversed": ("100", "0"),
        "adjusted": ("10", "30"),
        "outstanding": ("85", "30"),
        "active": ("4", "3"),
        "new": ("1", "3"),
        "transfers": ("20", "0"),
        "breakage": ("36.8 %", "73.3 %"),
        "redemption": ("10.7 %", "26.7 %"),
    }
    for key, (value, previous) in expected.items():
        assert (_testid(page, f"value-{key}"), _testid(page, f"previous-{key}")) == (
            value,
            previous,
        ), key
    assert 'data-change="up">\u25b2 +86.7 %<' in page  # issued: 280 against 150
    assert 'data-change="down">\u25bc \u221225.0 %<' in page  # redeemed: 30 against 40
    assert 'data-change="new">new<' in page  # cleared: nothing the week before
    assert 'data-change="down">\u25bc \u221236.5 pp<' in page  # breakage
    assert "liability CNY 0.85" in page


def test_the_issued_chart_marks_the_rule_change_and_the_campaign(app: Flask) -> None:
    page = _text(_client(app), WEEK)
    issued = page[page.index('data-testid="chart-issued"') :]
    issued = issued[: issued.index('data-testid="chart-redeemed"')]
    assert 'class="jifen-marker" data-label="v2"' in issued
    assert "rule version 2 in force from 2026-11-16 12:00 +0800" in issued
    assert issued.count('class="jifen-band"') == 1
    assert "campaign double-days \u00d72" in issued
    assert [int(v) for v in re.findall(r'data-value="(\d+)"', issued)] == [205, 60, 15]
    numbers = issued[issued.index('data-testid="chart-issued-numbers"') :]
    assert '<td class="text-nowrap">2026-11-15</td><td class="num text-nowrap">205</td>' in numbers
    assert "per day" in issued


def test_the_tables_show_both_periods(app: Flask) -> None:
    page = _text(_client(app), WEEK)
    versions = page[page.index('data-testid="versions-table"') :]
    assert (
        "v2" in versions and "base ratio 2" in versions and "2.00 points per CNY paid" in versions
    )
    top = page[page.index('data-testid="top-members-table"') :]
    alice = r'>alice</a></td><td class="num">205</td><td class="num text-nowrap">73.2 %<'
    assert re.search(alice, top)
    assert "store-1" in page[page.index('data-testid="locations-table"') :]
    assert "double-days \u00d72, Nov 18, 2026, 00:00 to Nov 20, 2026, 00:00" in page


def test_a_long_range_is_drawn_per_week(app: Flask) -> None:
    page = _text(_client(app), "/admin/analytics/?from=2026-06-01&to=2026-11-21")
    assert "per week" in page and 'data-testid="per-week"' in page
    issued = page[page.index('data-testid="chart-issued-numbers"') :]
    assert "2026-11-16 – 2026-11-21" in issued  # the last week, shorter


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("from=2026-11-31&to=2026-11-21", "from", "from is not a date of the calendar: 2026-11-31"),
        ("from=2026-11-20&to=2026-11-10", "from", "from (2026-11-20) must not be after to"),
        ("from=2026-11-01&to=2026-11-22", "to", "to (2026-11-22) must not be after today"),
        ("from=2026-11-01", "to", "give both dates, from and to: to is missing"),
        (
            "from=abc&to=2026-11-21",
            "from",
            "from must be a date written YYYY-MM-DD, got &#39;abc&#39;",
        ),
        ("range=fortnight", None, "range must be one of 7d, 30d, 90d, this-month, last-month"),
    ],
)
def test_a_bad_range_is_refused_in_the_page(
    app: Flask, query: str, field: str | None, words: str
) -> None:
    page = _text(_client(app), f"/admin/analytics/?{query}", status=400)
    refused = page[page.index('data-testid="range-refused"') :]
    assert refused.startswith(f'data-testid="range-refused">Not shown: {words}')
    assert "Below: the last 30 days." in refused
    assert 'class="navbar' in page  # inside the console
    assert "Oct 23, 2026 to Nov 21, 2026 (30 days)" in page  # the default range below
    if field:
        assert re.search(rf'class="[^"]*is-invalid" type="date" id="{field}"', page)
    if field == "from" and "abc" in query:
        assert 'id="from" name="from" value="abc"' in page


def _csv(client: FlaskClient, name: str, query: str = "from=2026-11-15&to=2026-11-21") -> Any:
    response = client.get(f"/admin/analytics/{name}.csv?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/csv"
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    return response, list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_every_table_downloads_as_csv_with_a_bom(app: Flask) -> None:
    client = _client(app, "viewer")
    page = _text(client, WEEK)
    for name in TABLES:
        assert f'href="/admin/analytics/{name}.csv?from=2026-11-15&amp;to=2026-11-21"' in page
        response, rows = _csv(client, name)
        assert rows and rows[0][0], name
        disposition = response.headers["Content-Disposition"]
        assert disposition == f'attachment; filename="jifen-shop-{name}-2026-11-15-2026-11-21.csv"'


def test_the_flows_csv_has_local_times_with_their_offset(app: Flask) -> None:
    _response, rows = _csv(_client(app), "flows")
    header = rows[0]
    assert header[:9] == [
        "period",
        "from",
        "until",
        "issued",
        "redeemed",
        "expired",
        "cleared",
        "reversed",
        "adjusted",
    ]
    first = dict(zip(header, rows[1], strict=True))
    assert first["period"] == "this"
    assert first["from"] == "2026-11-15T00:00:00+08:00"
    assert first["until"] == "2026-11-16T00:00:00+08:00"
    assert (first["issued"], first["cleared"], first["outstanding_at_end"]) == ("205", "30", "205")
    previous = [r for r in rows[1:] if r[0] == "previous"]
    assert len(previous) == 7 and previous[0][1] == "2026-11-08T00:00:00+08:00"


def test_the_summary_and_versions_csv(app: Flask) -> None:
    client = _client(app)
    _response, summary = _csv(client, "summary")
    assert summary[0] == [
        "figure",
        "this_period",
        "previous_period",
        "change_percent",
        "change_percentage_points",
    ]
    by_name = {row[0]: row[1:] for row in summary[1:]}
    assert by_name["period_start"][:2] == ["2026-11-15T00:00:00+08:00", "2026-11-08T00:00:00+08:00"]
    assert by_name["issued"] == ["280", "150", "86.7", ""]
    assert by_name["breakage_rate_percent"] == ["36.8", "73.3", "", "-36.5"]
    _response, versions = _csv(client, "versions")
    v2 = dict(zip(versions[0], versions[2], strict=True))
    assert v2["version"] == "v2"
    assert v2["effective_from"] == "2026-11-16T12:00:00+08:00"
    assert v2["purchase_points_per_unit_this_period"] == "2.0"


def test_a_download_is_audited_and_a_bad_one_refused(app: Flask, db: Database) -> None:
    client = _client(app, "viewer")
    _csv(client, "top_members")
    entry = s.list_audit(db, program="shop", limit=1).items[0]
    assert (entry.actor, entry.action, entry.target) == (
        "viewer",
        "analytics.csv",
        "top_members.csv",
    )
    assert entry.after == {"table": "top_members", "from": "2026-11-15", "to": "2026-11-21"}
    assert client.get("/admin/analytics/nothing.csv").status_code == 400
    bad = client.get("/admin/analytics/flows.csv?from=2026-11-15&to=2026-12-01")
    assert bad.status_code == 400
    assert "must not be after today" in bad.get_data(as_text=True)


def test_the_page_reads_in_chinese(app: Flask) -> None:
    page = _text(_client(app), WEEK + "&lang=zh")
    assert "积分分析" in page
    assert "2026年11月15日 至 2026年11月21日（7 天），对比 2026年11月8日 至 2026年11月14日" in page
    assert "失效率" in page and "个百分点" in page
