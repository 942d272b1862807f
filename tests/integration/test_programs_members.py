"""Programs, rule versions and members, on both backends."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import PROGRAM, earn, enrol, hold, make_program, row_counts, scalar

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import (
    AlreadyExists,
    InvalidAmount,
    InvalidInput,
    InvalidRule,
    MemberInactive,
    MemberNotFound,
    NaiveDatetime,
    ProgramNotFound,
)

# --- programs ---------------------------------------------------------------------------


def test_create_program_defaults(db: Database, clock: FixedClock) -> None:
    info = s.create_program(db, code="shop", name="Shop", currency="cny")
    assert info.code == "shop"
    assert info.name == "Shop"
    assert info.currency == "CNY"  # Stripe's lower case is normalised
    assert info.timezone == "UTC"
    assert info.rounding == "floor"
    assert info.points_per_unit == 100
    assert info.redeem_max_share_bp == 10_000
    assert info.redeem_min_points == 1
    assert info.redeem_min_order_minor == 0
    assert info.hold_timeout_seconds == 900
    assert s.get_program(db, "shop") == info

    versions = s.list_rule_versions(db, program="shop")
    assert [v.version for v in versions] == [1]
    assert versions[0].effective_from_at == clock.now()
    version, rules = s.rules_in_force(db, program="shop")
    assert version == 1
    assert rules.base_ratio == 1
    assert rules.expiry.months == 3


def test_create_program_with_settings(db: Database) -> None:
    info = s.create_program(
        db,
        code="jp",
        name="Japan",
        currency="JPY",
        timezone="Asia/Tokyo",
        rounding="half_even",
        points_per_unit=10,
        redeem_max_share_bp=5_000,
        redeem_min_points=100,
        redeem_min_order_minor=1_000,
        hold_timeout_seconds=60,
        rules={"base_ratio": "0.01", "pending_days": 7},
    )
    assert (info.timezone, info.rounding, info.points_per_unit) == ("Asia/Tokyo", "half_even", 10)
    assert (info.redeem_max_share_bp, info.redeem_min_points) == (5_000, 100)
    assert (info.redeem_min_order_minor, info.hold_timeout_seconds) == (1_000, 60)
    _, rules = s.rules_in_force(db, program="jp")
    assert rules.pending_days == 7


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"currency": "yuan"}, InvalidInput),
        ({"currency": "C1Y"}, InvalidInput),
        ({"currency": ""}, InvalidInput),
        ({"timezone": "Mars/Olympus_Mons"}, InvalidInput),
        ({"timezone": "../../etc/passwd"}, InvalidInput),
        ({"rounding": "ceil"}, InvalidRule),
        ({"redeem_max_share_bp": 10_001}, InvalidRule),
        ({"redeem_max_share_bp": -1}, InvalidAmount),
        ({"points_per_unit": 0}, InvalidAmount),
        ({"points_per_unit": 1.5}, InvalidAmount),
        ({"hold_timeout_seconds": 0}, InvalidAmount),
        ({"redeem_min_order_minor": -1}, InvalidAmount),
        ({"code": ""}, InvalidInput),
        ({"code": "x" * 65}, InvalidInput),
        ({"rules": {"base_ratio": 1.5}}, InvalidRule),
        ({"rules": {"bonus": 1}}, InvalidRule),
    ],
)
def test_create_program_validation(
    db: Database, settings: dict[str, object], error: type[Exception]
) -> None:
    values: dict[str, object] = {"code": "shop", "name": "Shop", "currency": "CNY"} | settings
    before = row_counts(db)
    with pytest.raises(error):
        s.create_program(db, **values)  # type: ignore[arg-type]
    assert row_counts(db) == before


def test_duplicate_program_code(db: Database) -> None:
    make_program(db)
    before = row_counts(db)
    with pytest.raises(AlreadyExists):
        s.create_program(db, code=PROGRAM, name="Other", currency="USD")
    assert row_counts(db) == before
    assert s.get_program(db, PROGRAM).currency == "CNY"


def test_unknown_program(db: Database) -> None:
    with pytest.raises(ProgramNotFound):
        s.get_program(db, "nope")
    with pytest.raises(ProgramNotFound):
        s.publish_rules(db, program="nope", rules={})
    with pytest.raises(ProgramNotFound):
        s.enrol_member(db, program="nope", external_id="alice")


# --- rule versions -------------------------------------------------------------------------


def test_future_rules_take_effect_when_the_clock_reaches_them(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "alice")
    start = clock.now() + dt.timedelta(hours=2)
    published = s.publish_rules(
        db, program=PROGRAM, rules={"base_ratio": "3"}, effective_from=start, created_by="mkt"
    )
    assert published.version == 2
    assert published.effective_from_at == start

    assert s.rules_in_force(db, program=PROGRAM)[0] == 1
    before = earn(db, "alice", "o1", 1_000)
    assert (before.points_granted, before.rule_version) == (10, 1)

    clock.advance(dt.timedelta(hours=1, minutes=59, seconds=59))
    assert earn(db, "alice", "o2", 1_000).points_granted == 10

    clock.advance(dt.timedelta(seconds=1))  # exactly effective_from
    assert s.rules_in_force(db, program=PROGRAM)[0] == 2
    after = earn(db, "alice", "o3", 1_000)
    assert (after.points_granted, after.rule_version) == (30, 2)

    # Asking about a past instant gives the version in force then.
    version, rules = s.rules_in_force(db, program=PROGRAM, at=start - dt.timedelta(seconds=1))
    assert (version, rules.base_ratio) == (1, 1)
    assert [v.version for v in s.list_rule_versions(db, program=PROGRAM)] == [1, 2]


def test_publish_now_is_in_force_at_once(db: Database) -> None:
    make_program(db)
    enrol(db, "alice")
    assert s.publish_rules(db, program=PROGRAM, rules={"base_ratio": "2"}).version == 2
    assert earn(db, "alice", "o1", 1_000).points_granted == 20


def test_a_later_published_version_with_an_earlier_start_wins_from_its_start(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "alice")
    now = clock.now()
    s.publish_rules(
        db, program=PROGRAM, rules={"base_ratio": "5"}, effective_from=now + dt.timedelta(days=2)
    )
    s.publish_rules(
        db, program=PROGRAM, rules={"base_ratio": "2"}, effective_from=now + dt.timedelta(days=1)
    )
    clock.advance(dt.timedelta(days=1))
    assert earn(db, "alice", "o1", 100).rule_version == 3
    clock.advance(dt.timedelta(days=1))
    assert earn(db, "alice", "o2", 100).rule_version == 2


def test_rules_cannot_take_effect_in_the_past(db: Database, clock: FixedClock) -> None:
    make_program(db)
    before = row_counts(db)
    with pytest.raises(InvalidRule):
        s.publish_rules(
            db,
            program=PROGRAM,
            rules={"base_ratio": "2"},
            effective_from=clock.now() - dt.timedelta(seconds=1),
        )
    with pytest.raises(NaiveDatetime):
        s.publish_rules(
            db,
            program=PROGRAM,
            rules={"base_ratio": "2"},
            effective_from=dt.datetime(2030, 1, 1),
        )
    with pytest.raises(InvalidRule):
        s.publish_rules(db, program=PROGRAM, rules={"base_ratio": "-1"})
    assert row_counts(db) == before


def test_an_earn_records_its_rule_version_and_later_changes_do_not_touch_it(
    db: Database, clock: FixedClock
) -> None:
    make_program(db)
    enrol(db, "alice")
    first = earn(db, "alice", "o1", 10_000)
    assert (first.points_granted, first.rule_version) == (100, 1)

    s.publish_rules(db, program=PROGRAM, rules={"base_ratio": "2"})
    second = earn(db, "alice", "o2", 10_000)
    assert (second.points_granted, second.rule_version) == (200, 2)

    # The stored earnings name the versions that produced them and keep their points.
    rows = scalar(
        db,
        "SELECT COUNT(*) FROM earnings e JOIN rule_versions v ON v.id = e.rule_version_id "
        "WHERE (e.order_id = 'o1' AND v.version = 1 AND e.points_granted = 100) "
        "OR (e.order_id = 'o2' AND v.version = 2 AND e.points_granted = 200)",
    )
    assert rows == 2

    # A retry of the first order, after the change, answers with what was granted then.
    replayed = earn(db, "alice", "o1", 10_000)
    assert replayed.replayed
    assert (replayed.points_granted, replayed.rule_version) == (100, 1)
    b = s.balance(db, program=PROGRAM, member="alice")
    assert (b.available, b.lifetime_earned) == (300, 300)
    assert s.verify_ledger(db).ok


# --- members --------------------------------------------------------------------------------


def test_enrol_is_idempotent_with_the_same_details(db: Database) -> None:
    make_program(db)
    first = s.enrol_member(
        db, program=PROGRAM, external_id="alice", email="a@example.com", stripe_customer_id="cus_1"
    )
    counts = row_counts(db)
    again = s.enrol_member(
        db, program=PROGRAM, external_id="alice", email="a@example.com", stripe_customer_id="cus_1"
    )
    assert again == first
    assert first.status == "active"
    assert row_counts(db) == counts
    assert s.get_member(db, program=PROGRAM, external_id="alice") == first


@pytest.mark.parametrize(
    "details",
    [
        {"email": "other@example.com", "stripe_customer_id": "cus_1"},
        {"email": "a@example.com", "stripe_customer_id": "cus_2"},
        {"email": None, "stripe_customer_id": "cus_1"},
        {},
    ],
)
def test_enrol_again_with_other_details(db: Database, details: dict[str, str | None]) -> None:
    make_program(db)
    s.enrol_member(
        db, program=PROGRAM, external_id="alice", email="a@example.com", stripe_customer_id="cus_1"
    )
    counts = row_counts(db)
    with pytest.raises(AlreadyExists):
        s.enrol_member(db, program=PROGRAM, external_id="alice", **details)
    assert row_counts(db) == counts


def test_enrol_validation(db: Database) -> None:
    make_program(db)
    with pytest.raises(InvalidInput):
        s.enrol_member(db, program=PROGRAM, external_id="")
    with pytest.raises(InvalidInput):
        s.enrol_member(db, program=PROGRAM, external_id="bob", email="not-an-email")
    with pytest.raises(InvalidInput):
        s.enrol_member(db, program=PROGRAM, external_id="x" * 129)
    assert row_counts(db)["members"] == 0


def test_the_same_external_id_in_two_programs(db: Database) -> None:
    make_program(db, "a")
    make_program(db, "b")
    s.enrol_member(db, program="a", external_id="alice", stripe_customer_id="cus_1")
    s.enrol_member(db, program="b", external_id="alice", stripe_customer_id="cus_1")
    assert row_counts(db)["members"] == 2


def test_stripe_customer_already_linked_to_another_member(db: Database) -> None:
    make_program(db)
    s.enrol_member(db, program=PROGRAM, external_id="alice", stripe_customer_id="cus_1")
    enrol(db, "bob")
    with pytest.raises(AlreadyExists):
        s.enrol_member(db, program=PROGRAM, external_id="carol", stripe_customer_id="cus_1")
    with pytest.raises(AlreadyExists):
        s.link_stripe_customer(db, program=PROGRAM, external_id="bob", stripe_customer_id="cus_1")
    assert s.get_member(db, program=PROGRAM, external_id="bob").stripe_customer_id is None

    # Re-linking the same customer to its own member, and linking a new one, both work.
    again = s.link_stripe_customer(
        db, program=PROGRAM, external_id="alice", stripe_customer_id="cus_1"
    )
    assert again.stripe_customer_id == "cus_1"
    linked = s.link_stripe_customer(
        db, program=PROGRAM, external_id="bob", stripe_customer_id="cus_2"
    )
    assert linked.stripe_customer_id == "cus_2"
    with pytest.raises(MemberNotFound):
        s.link_stripe_customer(db, program=PROGRAM, external_id="zed", stripe_customer_id="cus_3")


def test_a_closed_member_cannot_earn_or_hold(db: Database) -> None:
    make_program(db, rules={"actions": {"sign_in": {"points": 5, "limit": 1}}})
    enrol(db, "alice")
    earn(db, "alice", "o1", 10_000)
    closed = s.set_member_status(db, program=PROGRAM, external_id="alice", status="closed")
    assert closed.status == "closed"
    counts = row_counts(db)
    with pytest.raises(MemberInactive):
        earn(db, "alice", "o2", 10_000)
    with pytest.raises(MemberInactive):
        s.earn_action(db, program=PROGRAM, member="alice", action="sign_in", reference="d1")
    with pytest.raises(MemberInactive):
        hold(db, "alice", "h1", 10)
    assert row_counts(db) == counts

    with pytest.raises(InvalidInput):
        s.set_member_status(db, program=PROGRAM, external_id="alice", status="frozen")
    s.set_member_status(db, program=PROGRAM, external_id="alice", status="active")
    assert earn(db, "alice", "o2", 10_000).points_granted == 100
    assert hold(db, "alice", "h1", 10).status == "active"
    assert s.verify_ledger(db).ok
