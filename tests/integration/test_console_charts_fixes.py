"""The dashboard's charts and the jobs page's forecast read right (issue 21): issued above the
zero line and redeemed below it with a legend, one large grant cut at the axis instead of
flattening every other day, the expiry card leading with 90 days and its share, the forecast
week by week with every week, the rows' dates on the bars, its rows paged, and a bad ``days``
answered with a 400 that says what to type. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin.charts import PLOT_H, robust_limit
from admin.views.dashboard import share_text
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import InvalidInput
from loyalty.services.console_queries import forecast_weeks
from loyalty.services.console_users import create_user
from tests.integration.helpers import PROGRAM, earn, enrol, hold, make_program
from tests.integration.test_admin_support import PASSWORDS, build_app, login

SVG = "{http://www.w3.org/2000/svg}"
EXPIRY_DAYS = 80  # 2026-11-21 18:00 local + 80 days: usable until 2027-02-09


def _console(db: Database, *members: str) -> Flask:
    """The console on a program whose points expire 80 days after they are earned."""
    make_program(db, rules={"base_ratio": "1", "expiry": {"days": EXPIRY_DAYS}})
    enrol(db, *members)
    create_user(db, username="viewer", role="viewer", password=PASSWORDS["viewer"])
    return build_app(db, seed=False)


def _viewer(app: Flask) -> FlaskClient:
    client = app.test_client()
    login(client, "viewer")
    return client


def _chart(page: str, testid: str) -> ET.Element:
    found = re.search(rf'data-testid="{testid}">\s*(<svg.*?</svg>)', page, re.S)
    assert found, f"no chart {testid}"
    return ET.fromstring(found.group(1))


def _bars(svg: ET.Element) -> list[dict[str, Any]]:
    bars = []
    for rect in svg.iter(f"{SVG}rect"):
        if "data-value" in rect.attrib:
            title = rect.findtext(f"{SVG}title") or ""
            y, height = float(rect.attrib["y"]), float(rect.attrib["height"])
            bars.append({"title": title, "top": y, "bottom": y + height, "height": height})
    return bars


def _zero_line(svg: ET.Element) -> float:
    [zero] = [ln for ln in svg.iter(f"{SVG}line") if ln.attrib["stroke"] == "#adb5bd"]
    return float(zero.attrib["y1"])


def _texts(svg: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]


# --- the daily chart ---------------------------------------------------------------------------


def test_daily_chart_draws_issued_above_the_line_and_redeemed_below_with_a_legend(
    db: Database,
) -> None:
    app = _console(db, "alice")
    earn(db, "alice", "o-1", 50_000)  # 500 issued today
    hold(db, "alice", "spend", 200)
    s.capture_hold(db, program=PROGRAM, order_id="spend")  # 200 redeemed today
    svg = _chart(_viewer(app).get("/admin/").get_data(as_text=True), "flows-chart")
    zero = _zero_line(svg)
    [issued] = [b for b in _bars(svg) if "issued" in b["title"]]
    [redeemed] = [b for b in _bars(svg) if "redeemed" in b["title"]]
    assert issued["bottom"] == pytest.approx(zero, abs=0.2) and issued["top"] < zero
    assert redeemed["top"] == pytest.approx(zero, abs=0.2) and redeemed["bottom"] > zero
    assert redeemed["height"] == pytest.approx(issued["height"] * 200 / 500, abs=1)
    texts = _texts(svg)
    for name in ("issued \u25b2", "redeemed \u25bc", "expired \u25bc", "cleared \u25bc"):
        assert name in texts
    assert "\u2212" in "".join(texts)  # the axis below zero reads -200 or so


def test_one_large_grant_is_cut_at_the_axis_and_labelled_not_flattening_the_rest(
    db: Database, clock: FixedClock
) -> None:
    app = _console(db, "alice", "bob")
    for n in range(10):  # 3,000 points a day for ten days
        earn(db, "alice", f"o-{n}", 300_000)
        if n == 5:
            s.adjust_points(
                db, program=PROGRAM, member="bob", points=50_000, reason="launch", adjustment_id="g"
            )
        clock.advance(dt.timedelta(days=1))
    svg = _chart(_viewer(app).get("/admin/").get_data(as_text=True), "flows-chart")
    ordinary = [b for b in _bars(svg) if b["title"].endswith("issued: 3,000")]
    assert len(ordinary) == 9
    assert min(b["height"] for b in ordinary) > PLOT_H / 2  # not flattened to a sliver
    [clipped] = [t for t in svg.iter(f"{SVG}text") if "data-clipped" in t.attrib]
    assert clipped.attrib["data-clipped"] == "53000"
    assert (clipped.text or "").strip() == "53,000"
    assert "4k" in _texts(svg) and "60k" not in _texts(svg)  # the axis stops at 4,000


def test_robust_limit_ignores_one_outlier_but_not_ordinary_spread() -> None:
    assert robust_limit([3_000] * 9 + [53_000]) == 3_000
    assert robust_limit([1_000, 2_000, 3_000, 4_000, 5_000, 6_000]) == 6_000
    assert robust_limit([0, 0, 50_000]) == 50_000  # too few days to call anything an outlier
    assert robust_limit([]) == 0


# --- the expiry card ---------------------------------------------------------------------------


def test_expiry_card_leads_with_the_90_day_figure_and_its_share(db: Database) -> None:
    app = _console(db, "alice", "bob")
    earn(db, "alice", "o-1", 1_234_500)  # 12,345 points, usable until 2027-02-09 (80 days)
    page = _viewer(app).get("/admin/").get_data(as_text=True)
    card = page[page.index('data-testid="expiring"') :][:900]
    assert "in 90 days" in card
    assert 'data-testid="expiring-90">12,345<' in card
    assert 'data-testid="expiring-share">100 %<' in card
    assert "0 within 30 days" in card and "0 within 60" in card


def test_share_text() -> None:
    assert share_text(95, 100) == "95 %"
    assert share_text(999, 1_000) == "99 %"  # not rounded up to all of it
    assert share_text(1, 1_000) == "<1 %"
    assert share_text(0, 1_000) == "0 %"
    assert share_text(0, 0) == ""


# --- the forecast ------------------------------------------------------------------------------


def test_forecast_weeks_cover_the_horizon_with_empty_weeks_and_the_rows_dates(
    db: Database,
) -> None:
    make_program(db, rules={"expiry": {"days": EXPIRY_DAYS}})
    enrol(db, "alice", "bob")
    earn(db, "alice", "o-1", 10_000)
    program = s.get_program(db, PROGRAM)
    ahead = forecast_weeks(db, program, days=90)
    assert ahead.today == dt.date(2026, 11, 21)
    assert len(ahead.weeks) == 13  # 21 Nov .. 19 Feb, the last week 13 to 19 February
    assert ahead.weeks[0].first == dt.date(2026, 11, 21)
    assert ahead.weeks[0].last == dt.date(2026, 11, 27)
    assert ahead.weeks[-1].last == dt.date(2027, 2, 19)
    [week] = [w for w in ahead.weeks if w.expiring]
    assert (week.first, week.last) == (dt.date(2027, 2, 6), dt.date(2027, 2, 12))
    assert (week.expiring, week.dates) == (100, ("2027-02-09",))
    [row] = ahead.items
    assert row.last_day == dt.date(2027, 2, 9) and ahead.item_count == 1
    assert len(forecast_weeks(db, program, days=1).weeks) == 1
    with pytest.raises(InvalidInput, match="page must be from 1 to 1"):
        forecast_weeks(db, program, days=90, page=2)


def test_forecast_chart_labels_weeks_with_their_dates_and_notes_the_rows_dates(
    db: Database,
) -> None:
    app = _console(db, "alice")
    earn(db, "alice", "o-1", 10_000)
    page = _viewer(app).get("/admin/jobs/").get_data(as_text=True)
    svg = _chart(page, "forecast-chart")
    title = svg.findtext(f"{SVG}title") or ""
    assert "by week" in title and "next 90 days" in title
    labels = [
        [span.text for span in t.iter(f"{SVG}tspan")]
        for t in svg.iter(f"{SVG}text")
        if t.find(f"{SVG}tspan") is not None
    ]
    assert len(labels) == 13  # every week, the empty ones too
    assert labels[0] == ["11-21", "11-27"] and labels[-1] == ["02-13", "02-19"]
    assert ["02-06", "02-12"] in labels
    assert "on 02-09" in _texts(svg)  # the row's last day, written above its week
    assert "2027-02-09" in page and "by week" in page


def test_forecast_rows_are_paged_with_a_count(db: Database) -> None:
    members = [f"m-{n:02d}" for n in range(55)]
    app = _console(db, *members)
    for n, member in enumerate(members):
        earn(db, member, f"o-{n}", 10_000 + 100 * n)
    client = _viewer(app)
    first = client.get("/admin/jobs/?days=90").get_data(as_text=True)
    assert "rows 1–50 of 55" in first
    assert first.count('href="/admin/members/member?id=m-') == 50
    assert "m-54" in first and "m-04" not in first  # most points first
    assert "page=2" in first
    second = client.get("/admin/jobs/?days=90&page=2").get_data(as_text=True)
    assert "rows 51–55 of 55" in second and "m-00" in second
    assert second.count('href="/admin/members/member?id=m-') == 5
    past = client.get("/admin/jobs/?days=90&page=3")
    assert past.status_code == 400
    assert "page must be from 1 to 2" in past.get_data(as_text=True)


def test_a_bad_days_value_is_a_400_that_says_what_to_type(db: Database) -> None:
    client = _viewer(_console(db))
    for days in ("0", "367", "9999", "abc", "-5", "30.5"):
        response = client.get(f"/admin/jobs/?days={days}")
        assert response.status_code == 400, days
        assert "days must be a whole number from 1 to 366" in response.get_data(as_text=True)
    page = client.get("/admin/jobs/?days=366").get_data(as_text=True)
    assert "next 366 days" in page and 'value="366"' in page
