"""The console's member page reads as staff speak, and its figures agree with the dashboard's
and the forecast's, on both backends:

- history in words (entry kinds named, the reason from the service), times in the program's
  zone with its name, the raw reference kept on a muted line for support;
- "earned" means one thing: top earners rank by what a member's lifetime earned counts
  (purchases and actions), manual grants shown apart;
- "expiring in 90 days" on the member page is the member's share of the forecast, pending
  points and year-end clearing included.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin.ledger_words import ENTRY_KIND_WORDS, entry_kind_words
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.domain.moves import ENTRY_KINDS
from loyalty.services.console_queries import dashboard
from loyalty.services.console_users import create_user
from tests.integration.helpers import PROGRAM, earn, enrol, make_program
from tests.integration.test_admin_support import PASSWORDS, build_app, login

DAY = dt.timedelta(days=1)
PENDING_RULES = {"base_ratio": "1", "pending_days": 7, "expiry": {"days": 40}}


@pytest.fixture
def app(db: Database) -> Iterator[Flask]:
    """The console on a program whose purchase points stay pending 7 days, expire after 40
    days, and are all cleared at the end of 31 December (Asia/Shanghai)."""
    make_program(db, rules=PENDING_RULES, clearing_policy="all")
    enrol(db, "alice", "bob")
    for username, password in PASSWORDS.items():
        role = "operations" if username == "operations2" else username
        create_user(db, username=username, role=role, password=password)
    yield build_app(db, seed=False)


def _visible_text(page: str) -> str:
    """The words a person sees: no tags, so no attributes (tooltips stay out)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def _by_testid(page: str, testid: str) -> list[str]:
    found = re.findall(rf'data-testid="{testid}"[^>]*>(.*?)</', page, flags=re.S)
    return [html.unescape(text).strip() for text in found]


def _member_page(client: FlaskClient, member: str) -> str:
    response = client.get(f"/admin/members/member?id={member}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_every_entry_kind_has_words_and_none_is_a_code() -> None:
    assert set(ENTRY_KIND_WORDS) == set(ENTRY_KINDS), "an entry kind without words, or extra"
    for kind, words in ENTRY_KIND_WORDS.items():
        assert words.strip() and "_" not in words, f"{kind}: {words!r} is a code, not words"
    assert len(set(ENTRY_KIND_WORDS.values())) == len(ENTRY_KIND_WORDS)
    assert entry_kind_words("a_kind_added_later") == "A kind added later"


def test_history_reads_in_words_and_local_times_with_the_reference_kept(
    app: Flask, db: Database, clock: FixedClock
) -> None:
    earn(db, "alice", "o-1", 100_000)  # 1,000 pending at 18:00 local on 21 Nov
    clock.advance(8 * DAY)
    assert s.mature_pending(db).points == 1_000
    s.adjust_points(
        db, program=PROGRAM, member="alice", points=50, reason="late parcel", adjustment_id="a1"
    )
    client = app.test_client()
    login(client, "viewer")
    page = _member_page(client, "alice")
    text = _visible_text(page)

    assert _by_testid(page, "kind") == [
        "Manual grant",
        "Pending points available",
        "Earned, pending",
    ]
    assert _by_testid(page, "why") == [
        "adjustment: late parcel",
        "pending points became available",
        "purchase, order o-1",
    ]
    for code in ("earn_pending", "adjust_grant"):
        assert code not in text, f"the entry kind {code} shows as a code"
        assert f'title="entry kind {code}"' in page  # still there for support
    references = _by_testid(page, "reference")
    assert references[2] == "earn:o-1" and references[1].startswith("sweep:mature:")
    assert "times in Asia/Shanghai, UTC+08:00" in text
    assert "2026-11-21 18:00" in text and "2026-11-21 10:00" not in text  # local, not UTC
    assert "available +1,000" in " ".join(text.split())  # the balances moved, in words


def test_top_earners_rank_by_what_lifetime_earned_counts_with_grants_apart(
    app: Flask, db: Database
) -> None:
    earn(db, "alice", "o-1", 120_000)  # 1,200 earned
    earn(db, "bob", "o-2", 30_000)  # 300 earned
    s.adjust_points(
        db, program=PROGRAM, member="bob", points=50_000, reason="goodwill", adjustment_id="g"
    )
    figures = dashboard(db, s.get_program(db, PROGRAM), days=90)
    assert [(t.member, t.earned, t.granted) for t in figures.top_earners] == [
        ("alice", 1_200, 0),
        ("bob", 300, 50_000),
    ]
    for top in figures.top_earners:  # the whole history is in the period: the same figure
        assert top.earned == s.balance(db, program=PROGRAM, member=top.member).lifetime_earned

    client = app.test_client()
    login(client, "marketing")
    home = client.get("/admin/").get_data(as_text=True)
    rows = re.findall(r"<tr><td[^>]*><a [^>]*>(\w+)</a></td>(.*?)</tr>", home, flags=re.S)
    cells = {m: re.findall(r'class="num">([^<]*)<', rest) for m, rest in rows}
    assert list(cells) == ["alice", "bob"]
    assert cells["bob"][:2] == ["300", "50,000"]
    assert "manual grants by staff, shown apart" in home
    assert _by_testid(_member_page(client, "bob"), "lifetime-earned") == ["300"]
    assert "manual grants not included" in _member_page(client, "bob")


def test_expiring_on_the_member_page_is_the_members_share_of_the_forecast(
    app: Flask, db: Database, clock: FixedClock
) -> None:
    earn(db, "alice", "o-1", 100_000)  # 1,000, expire at 18:00 local on 31 Dec
    clock.advance(8 * DAY)
    s.mature_pending(db)
    clock.set(dt.datetime(2026, 12, 10, 10, 0, tzinfo=dt.UTC))
    earn(db, "alice", "o-2", 50_000)  # 500, still pending; its expiry is after year end
    earn(db, "bob", "o-3", 20_000)  # someone else's points stay out of alice's figure

    ahead = s.forecast(db, program=PROGRAM, days=90, member="alice")
    assert [(i.kind, i.points, str(i.last_day)) for i in ahead.items] == [
        ("expire", 1_000, "2026-12-31"),
        ("clear", 500, "2026-12-31"),
    ]
    assert ahead.points == 1_500
    # the balance (the SDK's and the API's) counts available points only: not this figure
    balance = s.balance(db, program=PROGRAM, member="alice", expiring_within_days=90)
    assert balance.expiring_soon == 1_000

    client = app.test_client()
    login(client, "operations")
    page = _member_page(client, "alice")
    assert _by_testid(page, "expiring") == ["1,500"]
    dates = page.split('data-testid="expiring-dates"')[1].split("</ul>")[0]
    lines = re.findall(r"<li>(.*?)</li>", dates, flags=re.S)
    assert [_visible_text(li).split() for li in lines] == [
        ["1,000", "usable", "until", "Dec", "31,", "2026"],
        ["500", "usable", "until", "Dec", "31,", "2026", "(year-end", "clearing)"],
    ]
    everyone = s.forecast(db, program=PROGRAM, days=90)
    assert sum(i.points for i in everyone.items if i.member == "alice") == 1_500
    program = s.get_program(db, PROGRAM)
    assert dashboard(db, program, days=90).expiring[90] == 1_500 + 200
