"""Every history item says why it happened: an adjustment's reason, a refund's id and order, a
transfer's counterpart, in the same two statements a page always took."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from helpers import PROGRAM, earn, enrol, hold, make_program
from sqlalchemy import event

from loyalty import services as s
from loyalty.db import Database
from loyalty.services.results import HistoryItem


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on ``db`` inside the block."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def why(items: tuple[HistoryItem, ...]) -> list[tuple[str, str, str | None]]:
    return [(i.kind, i.description, i.reason) for i in items]


def test_every_item_says_why(db: Database) -> None:
    make_program(db, transfers_enabled=True)
    enrol(db, "alice", "bob")
    earn(db, "alice", "o-1", 10_000)
    s.adjust_points(
        db,
        program=PROGRAM,
        member="alice",
        points=50,
        reason="parcel arrived broken",
        adjustment_id="adj-1",
        actor="ops-li",
    )
    s.adjust_points(
        db, program=PROGRAM, member="alice", points=-20, reason="duplicate grant", adjustment_id="2"
    )
    s.transfer_points(
        db, program=PROGRAM, sender="alice", recipient="bob", points=30, transfer_id="t-1"
    )
    hold(db, "alice", "o-2", 10)
    s.capture_hold(db, program=PROGRAM, order_id="o-2")
    s.refund_order(
        db, program=PROGRAM, order_id="o-1", refund_id="re_1", amount_minor=5_000, currency="CNY"
    )
    s.complete_refund(db, program=PROGRAM, refund_id="re_1")

    page = s.history(db, program=PROGRAM, member="alice")
    assert why(page.items) == [
        ("refund_reverse", "refund re_1 of order o-1 succeeded: frozen points taken back", None),
        ("refund_freeze", "refund re_1 of order o-1: points frozen", None),
        ("capture", "points spent on order o-2", None),
        ("hold", "points held for order o-2", None),
        ("transfer_out", "transfer to bob", None),
        ("adjust_deduct", "adjustment: duplicate grant", "duplicate grant"),
        ("adjust_grant", "adjustment by ops-li: parcel arrived broken", "parcel arrived broken"),
        ("earn", "purchase, order o-1", None),
    ]
    bob = s.history(db, program=PROGRAM, member="bob")
    assert why(bob.items) == [("transfer_in", "transfer from alice", None)]


def test_a_page_of_reasons_is_still_two_statements(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    earn(db, "alice", "o-1", 10_000)
    for n in range(3):
        s.adjust_points(
            db, program=PROGRAM, member="alice", points=5, reason=f"r{n}", adjustment_id=f"a{n}"
        )
    with counted(db) as statements:
        page = s.history(db, program=PROGRAM, member="alice", limit=2)
    data = [st for st in statements if st.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert len(data) == 2, statements
    assert [i.reason for i in page.items] == ["r2", "r1"]
    older = s.history(db, program=PROGRAM, member="alice", cursor=page.next_cursor)
    assert [i.reason for i in older.items] == ["r0", None]
    assert older.items[-1].description == "purchase, order o-1"


def test_the_console_member_page_shows_why(db: Database) -> None:
    from tests.integration.test_admin_support import build_app, login, post

    app = build_app(db)
    client = app.test_client()
    token = login(client, "operations")
    earn(db, "alice", "o-7", 1_000)
    made = post(
        client, "/admin/adjustments/new", token, member="alice", points=20, reason="late delivery"
    )
    assert made.status_code == 302
    page = client.get("/admin/members/member?id=alice").get_data(as_text=True)
    assert 'data-testid="why">adjustment by operations: late delivery<' in page
    assert 'data-testid="why">purchase, order o-7<' in page
