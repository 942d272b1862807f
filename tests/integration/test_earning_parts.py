"""An order's points by category and campaign (``earning_parts``): what analytics splits the
points issued by. The parts of an earning add up to exactly the points granted."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any

import pytest
from helpers import PROGRAM, TZ, earn, enrol, execute, local, make_program, row_counts, scalar
from sqlalchemy import text

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import InvalidInput
from loyalty.services import analytics as a


def parts_of(db: Database, order_id: str) -> list[tuple[Any, ...]]:
    with db.read() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT p.category, p.campaign, p.points, p.bonus FROM earning_parts p"
                    " JOIN earnings e ON e.id = p.earning_id WHERE e.order_id = :o ORDER BY p.id"
                ),
                {"o": order_id},
            )
        ]


def campaign_rules(clock: FixedClock, **more: Any) -> dict[str, Any]:
    now = clock.now()
    window = {
        "starts_at": (now - dt.timedelta(days=1)).isoformat(),
        "ends_at": (now + dt.timedelta(days=30)).isoformat(),
    }
    return {
        "category_ratios": {"生鲜": "2", "数码": "0.5"},
        "campaigns": [{"name": "双十一", "multiplier": "3", "categories": ["数码"], **window}],
        **more,
    }


LINES: list[dict[str, Any]] = [
    {"amount_minor": 10_000, "category": "生鲜"},  # 100 yuan × 2 = 200
    {"amount_minor": 40_000, "category": "数码"},  # 400 yuan × 1/2 × 3 = 600 (400 bonus)
    {"amount_minor": 5_000},  # 50 yuan × 1 = 50
]


def earn_lines(db: Database, order_id: str, lines: list[dict[str, Any]] = LINES) -> Any:
    return s.earn_purchase(
        db, program=PROGRAM, member="alice", order_id=order_id, currency="CNY", lines=lines
    )


def test_an_order_is_split_by_category_and_campaign(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=campaign_rules(clock))
    enrol(db, "alice")
    assert earn_lines(db, "o1").points_granted == 850
    assert parts_of(db, "o1") == [
        ("生鲜", None, 200, 0),
        ("数码", "双十一", 600, 400),
        (None, None, 50, 0),
    ]


def test_a_capped_order_splits_what_was_granted(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=campaign_rules(clock, caps={"member_daily": 101}))
    enrol(db, "alice")
    result = earn_lines(db, "o1")
    assert (result.points_requested, result.points_granted) == (850, 101)
    # 200:600:50 of 101 is 23.76 : 71.29 : 5.94; floors 23, 71, 5 leave 2 points for the
    # largest remainders (5.94, then 23.76); the campaign added 2/3 of its part's 71 points
    assert parts_of(db, "o1") == [
        ("生鲜", None, 24, 0),
        ("数码", "双十一", 71, 47),
        (None, None, 6, 0),
    ]


def test_plain_orders_and_capped_to_zero_orders_have_no_parts(
    db: Database, clock: FixedClock
) -> None:
    make_program(db, rules={"caps": {"member_daily": 100}})
    enrol(db, "alice")
    earn(db, "alice", "plain", 10_000)
    earn_lines(db, "zero", [{"amount_minor": 10_000, "category": "生鲜"}])
    assert scalar(db, "SELECT count(*) FROM earning_parts") == 0


def test_a_retry_writes_no_second_set_of_parts(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=campaign_rules(clock))
    enrol(db, "alice")
    earn_lines(db, "o1")
    before = row_counts(db)
    earn_lines(db, "o1")
    assert row_counts(db) == before


def test_a_refused_order_writes_no_parts(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=campaign_rules(clock))
    enrol(db, "alice")
    with pytest.raises(InvalidInput):
        earn_lines(db, "bad", [{"amount_minor": 100, "category": "生鲜"}, {"amount_minor": "x"}])
    assert scalar(db, "SELECT count(*) FROM earning_parts") == 0


def test_a_campaign_on_every_line_is_a_part_without_a_category(
    db: Database, clock: FixedClock
) -> None:
    now = clock.now()
    window = {
        "starts_at": (now - dt.timedelta(days=1)).isoformat(),
        "ends_at": (now + dt.timedelta(days=1)).isoformat(),
    }
    make_program(db, rules={"campaigns": [{"name": "weekend", "multiplier": "2", **window}]})
    enrol(db, "alice")
    assert earn(db, "alice", "o1", 10_000).points_granted == 200
    assert parts_of(db, "o1") == [(None, "weekend", 200, 100)]


def test_verify_finds_parts_that_do_not_add_up(db: Database, clock: FixedClock) -> None:
    make_program(db, rules=campaign_rules(clock))
    enrol(db, "alice")
    earn_lines(db, "o1")
    assert s.verify_ledger(db).ok
    execute(db, "UPDATE earning_parts SET points = points + 1 WHERE category = '生鲜'")
    report = s.verify_ledger(db)
    (failed,) = [c for c in report.checks if not c.ok]
    assert failed.name == "earning_parts_add_up"


def test_analytics_splits_purchases_by_category_and_campaign(
    db: Database, clock: FixedClock
) -> None:
    """Week before (8-14 Nov): a plain order of 100 yuan. This week (15-21 Nov): the order of
    :data:`LINES` under a 数码 campaign (850 points) and a 生鲜 order of 50 yuan (100 points):
    950 points from purchases, 50 of them without a category."""
    clock.set(local(2026, 11, 10, 10))
    campaign = {
        "name": "双十一",
        "multiplier": "3",
        "categories": ["数码"],
        "starts_at": local(2026, 11, 15).isoformat(),
        "ends_at": local(2026, 11, 22).isoformat(),
    }
    make_program(
        db, rules={"category_ratios": {"生鲜": "2", "数码": "0.5"}, "campaigns": [campaign]}
    )
    enrol(db, "alice")
    earn(db, "alice", "before", 10_000)
    clock.set(local(2026, 11, 16, 10))
    earn_lines(db, "o1")
    earn_lines(db, "o2", [{"amount_minor": 5_000, "category": "生鲜"}])
    clock.set(local(2026, 11, 21, 18))
    week = a.DateRange(dt.date(2026, 11, 15), dt.date(2026, 11, 21), TZ)
    parts = a.breakdowns(db, s.get_program(db, PROGRAM), week)
    assert [(r.key, r.points, r.bonus.value, r.share.percent) for r in parts.categories] == [
        ("数码", a.Compared(600, 0), 400, Fraction(600 * 100, 950)),
        ("生鲜", a.Compared(300, 0), 0, Fraction(300 * 100, 950)),
        ("(no category)", a.Compared(50, 100), 0, Fraction(50 * 100, 950)),
    ]
    assert [(r.key, r.points, r.bonus.value) for r in parts.campaign_points] == [
        ("双十一", a.Compared(600, 0), 400),
        ("(no campaign)", a.Compared(350, 100), 0),
    ]
    report = a.report(db, s.get_program(db, PROGRAM), week)
    table = a.table(report, "categories")
    assert table.header[:4] == (
        "category",
        "points_this_period",
        "points_previous_period",
        "points_change_percent",
    )
    assert table.rows[0][:3] == ("数码", 600, 0)
    assert a.table(report, "campaigns").rows[-1][:3] == ("(no campaign)", 350, 100)
