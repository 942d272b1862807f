"""The console's members list with its filter bar, and the CSV exports filtered the same way.

The list and the "Export these members (CSV)" link build one :class:`MemberFilter` from the
same query arguments, so the file holds exactly the list's rows, every page, in its order.
Every time in every export is in the program's zone with its offset (Asia/Shanghai, +08:00).
A filter value the list does not offer is a readable 400, on the list and on the export,
and is never ignored.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from helpers import PROGRAM, earn, execute
from test_admin_support import build_app, login

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.services.audit import list_audit
from loyalty.services.console_queries import MemberFilter, search_members

OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+08:00$")
LADDER = {
    "tiers": [
        {"code": "putong", "name": "普通", "threshold": 0},
        {"code": "jinka", "name": "金卡", "threshold": 5_000},
    ]
}


@pytest.fixture
def app(db: Database, clock: FixedClock) -> Iterator[Flask]:
    """The console with alice and bob, and 30 more members (m00..m29) of balances 0..29
    points, phones +86138000000NN, every third one a gold (jinka) member."""
    console = build_app(db)
    s.publish_tiers(db, program=PROGRAM, rules=LADDER, created_by="marketing")
    for n in range(30):
        member = f"m{n:02d}"
        s.enrol_member(db, program=PROGRAM, external_id=member, phone=f"+86 138 0000 00{n:02d}")
        if n:
            earn(db, member, f"o-{member}", n * 100)
        clock.advance(dt.timedelta(hours=1))
    execute(db, "UPDATE members SET tier = 'jinka' WHERE external_id IN ('m00', 'm03', 'm06')")
    yield console


def _csv(client: FlaskClient, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/admin/export/members.csv{query}")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    rows = list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    return rows


def _listed(client: FlaskClient, query: str) -> list[str]:
    page = client.get(f"/admin/members/{query}")
    assert page.status_code == 200
    return re.findall(r'href="/admin/members/member\?id=([^"]+)"', page.get_data(as_text=True))


def test_the_export_holds_what_the_filtered_list_shows(app: Flask, db: Database) -> None:
    client = app.test_client()
    login(client, "operations")
    query = "?q=138+0000&min=5&max=20&sort=balance&order=desc"
    listed = _listed(client, query) + _listed(client, query + "&page=2")
    assert len(listed) == 16 and listed[0] == "m20" and listed[-1] == "m05"
    rows = _csv(client, query)
    assert [row["external_id"] for row in rows] == listed
    criteria = MemberFilter(
        query="138 0000", balance_min=5, balance_max=20, sort="balance", descending=True
    )
    found = search_members(db, program=PROGRAM, criteria=criteria, per_page=100)
    assert [m.external_id for m in found.members] == listed
    # a leading + would start a formula: the cell is quoted like every such text cell
    assert rows[0]["phone"] == "'+8613800000020" and rows[0]["tier"] == ""
    gold = _csv(client, "?tier=jinka")
    assert [row["external_id"] for row in gold] == ["m00", "m03", "m06"]
    assert [row["tier"] for row in gold] == ["jinka"] * 3
    lowest = _csv(client, "?tier=putong")
    assert len(lowest) == 32 - 3  # never placed is the lowest tier
    assert len(_csv(client)) == 32  # no filter: every member


def test_every_export_time_is_local_with_its_offset(app: Flask) -> None:
    client = app.test_client()
    login(client, "admin")
    members = _csv(client, "?q=m01")
    assert list(members[0])[-3:] == ["lifetime_earned", "created_at", "last_activity"]
    assert OFFSET.match(members[0]["created_at"]) and OFFSET.match(members[0]["last_activity"])
    for name in ("lots", "ledger"):
        response = client.get(f"/admin/export/{name}.csv")
        rows = list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
        assert rows
        for row in rows:
            for column, cell in row.items():
                if column.endswith("_at") and cell:
                    assert OFFSET.match(cell), (name, column, cell)
    alice = _csv(client, "?q=alice")[0]
    assert alice["last_activity"] == ""  # never active


def test_the_export_is_audited_with_its_filter(app: Flask, db: Database) -> None:
    client = app.test_client()
    login(client, "operations")
    _csv(client, "?status=active&activity=active-2&hold=no&sort=last_activity")
    (entry,) = list_audit(db, program=PROGRAM, action="export.csv").items
    assert entry.after == {
        "export": "members",
        "filter": {
            "status": "active",
            "active_days": 2,
            "risk_hold": False,
            "sort": "last_activity",
        },
    }


def test_the_list_offers_the_filter_bar_sortable_headers_and_the_export_link(
    app: Flask,
) -> None:
    client = app.test_client()
    login(client, "operations")
    page = client.get("/admin/members/?tier=jinka&sort=joined").get_data(as_text=True)
    assert 'data-testid="member-filters"' in page
    assert "+8613800000003" in page and "金卡" in page
    link = re.search(r'data-testid="export-members" href="([^"]+)"', page)
    assert link is not None
    assert link[1].replace("&amp;", "&") == "/admin/export/members.csv?tier=jinka&sort=joined"
    # a header sorts on its column, the filter kept; the current one turns the order round
    assert "/admin/members/?tier=jinka&amp;sort=balance&amp;order=desc" in page
    assert "/admin/members/?tier=jinka&amp;sort=joined&amp;order=desc" in page
    viewer = app.test_client()
    login(viewer, "viewer")
    assert 'data-testid="export-members"' not in viewer.get("/admin/members/").get_data(
        as_text=True
    )


def test_pages_keep_the_filter(app: Flask) -> None:
    client = app.test_client()
    login(client, "operations")
    first = client.get("/admin/members/?q=%2B86138&sort=balance").get_data(as_text=True)
    assert "/admin/members/?q=%2B86138&amp;sort=balance&amp;page=2" in first
    second = _listed(client, "?q=%2B86138&sort=balance&page=2")
    assert second == ["m25", "m26", "m27", "m28", "m29"]


def test_one_exact_match_still_opens_the_member(app: Flask) -> None:
    client = app.test_client()
    login(client, "operations")
    response = client.get("/admin/members/?q=m07")
    assert response.status_code == 302 and response.location.endswith("id=m07")
    filtered = client.get("/admin/members/?q=m07&status=active")  # a filter: stay on the list
    assert filtered.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "status=gone",
        "tier=platinum",
        "min=-5",
        "min=abc",
        "max=1e3",
        "min=20&max=10",
        "activity=idle",
        "activity=idle-0",
        "activity=asleep-30",
        "hold=maybe",
        "sort=email",
        "order=sideways",
        "q=%00",
    ],
)
def test_a_bad_filter_is_a_readable_400_on_the_list_and_the_export(app: Flask, query: str) -> None:
    client = app.test_client()
    login(client, "admin")
    for path in ("/admin/members/", "/admin/export/members.csv"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query, response.status_code)
        text = response.get_data(as_text=True)
        assert "Traceback" not in text and "That request could not be understood" in text


def test_a_bad_filter_is_refused_in_chinese(app: Flask) -> None:
    client = app.test_client()
    login(client, "admin")
    response = client.get(
        "/admin/members/?min=20&max=10", headers={"Accept-Language": "zh-CN,zh;q=0.9"}
    )
    assert response.status_code == 400
    assert "最低余额（20）高于最高余额（10）。" in response.get_data(as_text=True)
