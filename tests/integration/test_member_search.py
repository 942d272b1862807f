"""Operations' member search: any part of the external id, email, phone (on its digits too) or
Stripe customer; filters on status, tier, balance, last activity and risk hold; every sort
both ways, stable; pages that keep the filter. And a member's phone, end to end: checked,
stored, compared on re-enrolment, through the SDK and from a Stripe customer object.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from helpers import PROGRAM, earn, execute, make_program

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.checks import require_phone
from loyalty.domain.clock import FixedClock
from loyalty.errors import AlreadyExists, InvalidInput
from loyalty.services import console_queries as q
from loyalty.services.console_queries import MemberFilter
from loyalty.stripe.onboarding import enrol_stripe_customer, stripe_phone
from sdk import Jifen

DAY = dt.timedelta(days=1)
LADDER = {
    "tiers": [
        {"code": "putong", "name": "普通", "threshold": 0},
        {"code": "jinka", "name": "金卡", "threshold": 5_000},
    ]
}
# The customer object as Stripe sends it (stripe/openapi fixtures3.json), cut down.
STRIPE_CUSTOMER: dict[str, Any] = {
    "id": "cus_QXg1o8vcGmoR32",
    "object": "customer",
    "email": None,
    "name": None,
    "phone": None,
    "metadata": {},
    "livemode": False,
}


def _seed(db: Database, clock: FixedClock) -> None:
    """Five members: joined a day apart, active at different times, in different states.

    ==========  =============  =========  ========  ====  =========  ================
    member      phone          status     tier      hold  available  last activity
    ==========  =============  =========  ========  ====  =========  ================
    bob         +8613900139000 active     jinka     yes   50         day 0
    alice       +8613800138000 active     (lowest)  no    20         day 4
    carol       (none)         suspended  putong    no    0          never
    dave_2      +85291234567   closed     (lowest)  no    50         day 3
    erin%       (none)         active     jinka     no    5          day 4
    ==========  =============  =========  ========  ====  =========  ================
    """
    make_program(db, rules={"base_ratio": "1"})
    s.publish_tiers(db, program=PROGRAM, rules=LADDER, created_by="marketing")
    people = [
        ("bob", "bob@shop.example", "+86 139-0013-9000", "cus_B0B"),
        ("alice", "Alice@Example.com", "+86 138 0013 8000", None),
        ("carol", "carol@shop.example", None, "cus_carol"),
        ("dave_2", None, "+852 9123 4567", None),
        ("erin%", "erin@shop.example", None, None),
    ]
    for day, (member, email, phone, customer) in enumerate(people):
        s.enrol_member(
            db,
            program=PROGRAM,
            external_id=member,
            email=email,
            phone=phone,
            stripe_customer_id=customer,
        )
        if member == "bob":
            earn(db, "bob", "b1", 5_000)
        if day == 3:
            earn(db, "dave_2", "d1", 5_000)
        if day == 4:
            earn(db, "alice", "a1", 2_000)
            earn(db, "erin%", "e1", 500)
        clock.advance(DAY)
    s.set_member_status(db, program=PROGRAM, external_id="carol", status="suspended")
    s.set_member_status(db, program=PROGRAM, external_id="dave_2", status="closed")
    execute(db, "UPDATE members SET tier = 'jinka' WHERE external_id IN ('bob', 'erin%')")
    execute(db, "UPDATE members SET tier = 'putong' WHERE external_id = 'carol'")
    execute(db, "UPDATE members SET risk_hold = true WHERE external_id = 'bob'")


def ids(db: Database, **criteria: Any) -> list[str]:
    page = criteria.pop("page", 1)
    per_page = criteria.pop("per_page", 25)
    found = q.search_members(
        db, program=PROGRAM, criteria=MemberFilter(**criteria), page=page, per_page=per_page
    )
    return [m.external_id for m in found.members]


@pytest.fixture
def seeded(db: Database, clock: FixedClock) -> Database:
    _seed(db, clock)
    return db


def test_a_substring_of_any_identity_finds_the_member(seeded: Database) -> None:
    db = seeded
    assert ids(db, query="LIC") == ["alice"]  # the external id, any case
    assert ids(db, query="example.COM") == ["alice"]  # the email
    assert ids(db, query="@shop.") == ["bob", "carol", "erin%"]
    assert ids(db, query="b0b") == ["bob"]  # the Stripe customer, any case
    assert ids(db, query="cus_") == ["bob", "carol"]
    assert ids(db, query="+86139") == ["bob"]  # the phone as stored
    assert ids(db, query="138 0013") == ["alice"]  # the phone on its digits
    assert ids(db, query="9123-4567") == ["dave_2"]
    assert ids(db, query="(852) 9123") == ["dave_2"]
    assert ids(db, query="0013") == ["alice", "bob"]
    assert ids(db, query="%") == ["erin%"]  # % and _ are characters, not wildcards
    assert ids(db, query="_") == ["bob", "carol", "dave_2"]  # cus_… has one too
    assert ids(db, query="e_2") == ["dave_2"]
    assert ids(db, query="nobody") == []


def test_each_filter_keeps_only_its_members(seeded: Database) -> None:
    db = seeded
    assert ids(db, status="active") == ["alice", "bob", "erin%"]
    assert ids(db, status="suspended") == ["carol"]
    assert ids(db, status="closed") == ["dave_2"]
    # the lowest tier is also every member never placed (tier NULL)
    assert ids(db, tier="putong") == ["alice", "carol", "dave_2"]
    assert ids(db, tier="jinka") == ["bob", "erin%"]
    assert ids(db, balance_min=20) == ["alice", "bob", "dave_2"]
    assert ids(db, balance_max=20) == ["alice", "carol", "erin%"]
    assert ids(db, balance_min=5, balance_max=20) == ["alice", "erin%"]
    assert ids(db, idle_days=1) == ["bob", "carol", "dave_2"]  # never active counts as idle
    assert ids(db, idle_days=2) == ["bob", "carol"]
    assert ids(db, idle_days=5) == ["carol"]  # bob's entry is exactly 5 days old
    assert ids(db, active_days=1) == ["alice", "erin%"]
    assert ids(db, active_days=2) == ["alice", "dave_2", "erin%"]
    assert ids(db, active_days=5) == ["alice", "bob", "dave_2", "erin%"]
    assert ids(db, risk_hold=True) == ["bob"]
    assert ids(db, risk_hold=False) == ["alice", "carol", "dave_2", "erin%"]
    together = {"status": "active", "tier": "jinka", "balance_min": 10, "active_days": 9}
    assert ids(db, **together) == ["bob"]
    assert ids(db, query="shop", status="active", active_days=1) == ["erin%"]


def test_every_sort_both_ways_ties_in_member_id_order(seeded: Database) -> None:
    db = seeded
    everyone = ["alice", "bob", "carol", "dave_2", "erin%"]
    assert ids(db) == everyone
    assert ids(db, descending=True) == everyone[::-1]
    # ids in enrolment order: bob, alice, carol, dave_2, erin%; bob and dave_2 hold 50
    assert ids(db, sort="balance") == ["carol", "erin%", "alice", "bob", "dave_2"]
    assert ids(db, sort="balance", descending=True) == ["dave_2", "bob", "alice", "erin%", "carol"]
    assert ids(db, sort="lifetime_earned") == ["carol", "erin%", "alice", "bob", "dave_2"]
    assert ids(db, sort="joined") == ["bob", "alice", "carol", "dave_2", "erin%"]
    assert ids(db, sort="joined", descending=True) == ["erin%", "dave_2", "carol", "alice", "bob"]
    # never active first going up, last going down; alice and erin% tie on day 4
    assert ids(db, sort="last_activity") == ["carol", "bob", "dave_2", "alice", "erin%"]
    assert ids(db, sort="last_activity", descending=True) == [
        "erin%",
        "alice",
        "dave_2",
        "bob",
        "carol",
    ]


def test_pages_keep_the_filter_and_the_order(seeded: Database) -> None:
    db = seeded
    criteria = {"sort": "balance", "descending": True, "status": "active"}
    assert ids(db, **criteria) == ["bob", "alice", "erin%"]
    assert ids(db, **criteria, per_page=2) == ["bob", "alice"]
    assert ids(db, **criteria, per_page=2, page=2) == ["erin%"]
    found = q.search_members(
        db, program=PROGRAM, criteria=MemberFilter(**criteria), page=2, per_page=2
    )
    assert found.total == 3


def test_the_list_shows_phone_tier_and_last_activity(seeded: Database, clock: FixedClock) -> None:
    (alice,) = q.search_members(seeded, program=PROGRAM, query="alice").members
    assert (alice.phone, alice.tier, alice.risk_hold) == ("+8613800138000", None, False)
    assert alice.created_at == clock.now() - 4 * DAY
    assert alice.last_activity == clock.now() - DAY
    (carol,) = q.search_members(seeded, program=PROGRAM, query="carol").members
    assert (carol.tier, carol.last_activity) == ("putong", None)
    # sorted on last activity, the grouped subquery gives the same moments
    by_activity = q.search_members(
        seeded, program=PROGRAM, criteria=MemberFilter(query="alice", sort="last_activity")
    ).members
    assert by_activity == (alice,)


@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        ({"status": "gone"}, "status"),
        ({"sort": "email"}, "sort"),
        ({"balance_min": -1}, "balance_min"),
        ({"balance_min": 10, "balance_max": 5}, "balance_min"),
        ({"idle_days": 0}, "idle_days"),
        ({"active_days": 99_999}, "active_days"),
    ],
)
def test_a_filter_out_of_range_is_refused(criteria: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        MemberFilter(**criteria)
    assert refused.value.details.get("field") == field


def test_the_filter_records_what_differs_from_everyone() -> None:
    assert MemberFilter().to_record() == {}
    criteria = MemberFilter(query="138", tier="jinka", sort="balance", descending=True)
    assert criteria.to_record() == {
        "query": "138",
        "tier": "jinka",
        "sort": "balance",
        "descending": True,
    }
    assert dataclasses.replace(criteria) == criteria  # frozen and comparable


# --- the phone ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("+86 138-0013-8000", "+8613800138000"),
        ("13800138000", "13800138000"),
        ("  021 6123 4567 ", "02161234567"),
        ("12345", "12345"),
        ("+" + "1" * 20, "+" + "1" * 20),
    ],
)
def test_a_phone_is_kept_as_digits_with_its_plus(given: str, kept: str) -> None:
    assert require_phone(given) == kept


@pytest.mark.parametrize(
    "given",
    ["1234", "1" * 21, "+86 138 0013 800x", "86+138", "++8613800138000", "１３８００１３８０００",
     "138.0013.8000", "", "   ", "+", "138\u200b0013"],
)  # fmt: skip
def test_what_is_not_a_phone_is_refused(given: str) -> None:
    with pytest.raises(InvalidInput):
        require_phone(given)


def test_enrolling_with_a_phone_is_idempotent_and_another_phone_conflicts(db: Database) -> None:
    make_program(db)
    first = s.enrol_member(db, program=PROGRAM, external_id="alice", phone="+86 138 0013 8000")
    assert first.phone == "+8613800138000"
    again = s.enrol_member(db, program=PROGRAM, external_id="alice", phone="+8613800138000")
    assert again == first
    assert s.get_member(db, program=PROGRAM, external_id="alice").phone == "+8613800138000"
    with pytest.raises(AlreadyExists):
        s.enrol_member(db, program=PROGRAM, external_id="alice", phone="+8613900139000")
    with pytest.raises(AlreadyExists):
        s.enrol_member(db, program=PROGRAM, external_id="alice")  # no phone is other details
    with pytest.raises(InvalidInput):
        s.enrol_member(db, program=PROGRAM, external_id="bob", phone="call me")
    assert q.search_members(db, program=PROGRAM).total == 1  # the refusal wrote nothing


def test_the_sdk_enrols_with_a_phone(database_url: str, db: Database, clock: FixedClock) -> None:
    make_program(db)
    with Jifen(database_url, program=PROGRAM, clock=clock) as jifen:
        alice = jifen.enrol(member="alice", email="a@shop.example", phone="+86 186-0000-1111")
        assert alice.phone == "+8618600001111"
        assert jifen.get_member(member="alice") == alice
        with pytest.raises(InvalidInput):
            jifen.enrol(member="bob", phone="12")


def test_a_stripe_customer_enrols_with_its_email_and_phone(db: Database) -> None:
    make_program(db)
    customer = {**STRIPE_CUSTOMER, "email": "li@shop.example", "phone": "+86 138 0013 8000"}
    onboarded = enrol_stripe_customer(db, program=PROGRAM, external_id="li", customer=customer)
    assert (onboarded.member.email, onboarded.member.phone) == (
        "li@shop.example",
        "+8613800138000",
    )
    assert onboarded.member.stripe_customer_id == "cus_QXg1o8vcGmoR32"
    bare = {**STRIPE_CUSTOMER, "id": "cus_bare"}  # email and phone null, as Stripe's example
    plain = enrol_stripe_customer(db, program=PROGRAM, external_id="wang", customer=bare)
    assert (plain.member.email, plain.member.phone) == (None, None)


@pytest.mark.parametrize(
    ("phone", "kept"),
    [
        ("(555) 010-9999", "5550109999"),
        ("+1 555.010.9999", "+15550109999"),
        ("ask at the desk", None),
        (None, None),
        ("", None),
        (42, None),
    ],
)
def test_a_stripe_phone_keeps_its_digits_or_is_left_out(phone: object, kept: str | None) -> None:
    assert stripe_phone(phone) == kept
