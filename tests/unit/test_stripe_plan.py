"""The plan from an order's Stripe events to refund and dispute calls (pure, no database)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from loyalty.errors import InvalidStripeEvent
from loyalty.stripe.payloads import (
    ChargeRefunds,
    DisputeState,
    Ignored,
    Purchase,
    RefundState,
    parse_envelope,
    parse_fact,
)
from loyalty.stripe.plan import Call, Recorded, Seen, is_stand_in, plan, stand_in_id

PI = "pi_1"
T = dt.datetime(2026, 11, 21, 10, tzinfo=dt.UTC)


def at(seconds: int) -> dt.datetime:
    return T + dt.timedelta(seconds=seconds)


def refund(rid: str, amount: int, status: str, created: int, seen: int) -> Seen:
    return Seen(at(seen), RefundState(rid, PI, amount, "CNY", status, at(created)))


def charge(refunded: int, seen: int) -> Seen:
    return Seen(at(seen), ChargeRefunds("ch_1", PI, refunded, "CNY", None))


def dispute(did: str, amount: int, status: str, seen: int) -> Seen:
    return Seen(at(seen), DisputeState(did, PI, amount, "CNY", status))


def test_nothing_seen_nothing_to_do() -> None:
    assert plan(PI, [], []).calls == []


def test_a_pending_refund_is_opened_then_completed() -> None:
    pending = [refund("re_1", 500, "pending", 10, 10)]
    assert plan(PI, pending, []).calls == [Call("refund", "re_1", 500, "CNY")]
    done = [*pending, refund("re_1", 500, "succeeded", 10, 20)]
    assert plan(PI, done, [Recorded("refund", "re_1", "pending", 500)]).calls == [
        Call("complete_refund", "re_1")
    ]
    assert plan(PI, done, [Recorded("refund", "re_1", "succeeded", 500)]).calls == []


def test_the_latest_event_decides_and_ties_go_to_the_later_status() -> None:
    events = [refund("re_1", 500, "failed", 10, 20), refund("re_1", 500, "pending", 10, 20)]
    for ordering in itertools.permutations(events):
        assert plan(PI, list(ordering), []).calls == []
    older_success = [
        refund("re_1", 500, "succeeded", 10, 10),
        refund("re_1", 500, "failed", 10, 30),
    ]
    assert plan(PI, older_success, [Recorded("refund", "re_1", "pending", 500)]).calls == [
        Call("fail_refund", "re_1")
    ]


def test_money_only_charge_refunded_explains_is_frozen_as_a_stand_in() -> None:
    calls = plan(PI, [charge(700, 10)], []).calls
    assert calls == [Call("refund", stand_in_id(PI, 1), 700, "CNY")]
    assert is_stand_in(calls[0].external_id) and not is_stand_in("re_1")


def test_refund_events_take_over_from_the_stand_in() -> None:
    seen = [charge(700, 10), refund("re_1", 700, "succeeded", 10, 10)]
    recorded = [Recorded("refund", stand_in_id(PI, 1), "pending", 700)]
    assert plan(PI, seen, recorded).calls == [
        Call("fail_refund", stand_in_id(PI, 1)),
        Call("refund", "re_1", 700, "CNY", succeeded=True),
    ]


def test_a_stand_in_grows_by_replacement_with_the_next_number() -> None:
    seen = [charge(300, 10), charge(800, 20)]
    recorded = [Recorded("refund", stand_in_id(PI, 1), "pending", 300)]
    assert plan(PI, seen, recorded).calls == [
        Call("fail_refund", stand_in_id(PI, 1)),
        Call("refund", stand_in_id(PI, 2), 800, "CNY"),
    ]
    unchanged = [
        Recorded("refund", stand_in_id(PI, 1), "failed", 300),
        Recorded("refund", stand_in_id(PI, 2), "pending", 800),
    ]
    assert plan(PI, seen, unchanged).calls == []


def test_a_snapshot_does_not_count_refunds_that_failed_before_it() -> None:
    seen = [
        refund("re_f", 400, "pending", 10, 10),
        charge(400, 10),
        refund("re_f", 400, "failed", 10, 20),
        refund("re_2", 300, "succeeded", 30, 30),
        charge(300, 30),
    ]
    assert plan(PI, seen, []).calls == [Call("refund", "re_2", 300, "CNY", succeeded=True)]


def test_releases_come_before_settlements_and_new_freezes() -> None:
    seen = [
        refund("re_new", 100, "pending", 40, 40),
        refund("re_old", 200, "succeeded", 10, 30),
        refund("re_bad", 300, "failed", 20, 30),
        dispute("dp_1", 50, "won", 50),
    ]
    recorded = [
        Recorded("refund", "re_old", "pending", 200),
        Recorded("refund", "re_bad", "pending", 300),
        Recorded("dispute", "dp_1", "open", 50),
    ]
    assert [c.action for c in plan(PI, seen, recorded).calls] == [
        "fail_refund",
        "won_dispute",
        "complete_refund",
        "refund",
    ]


def test_disputes_open_lose_and_win() -> None:
    opened = [dispute("dp_1", 900, "needs_response", 10)]
    assert plan(PI, opened, []).calls == [Call("open_dispute", "dp_1", 900, "CNY")]
    lost = [*opened, dispute("dp_1", 900, "lost", 20)]
    assert [c.action for c in plan(PI, lost, []).calls] == ["open_dispute", "lost_dispute"]
    won = [*opened, dispute("dp_1", 900, "won", 20)]
    assert plan(PI, won, []).calls == []


def test_what_cannot_be_undone_is_a_warning() -> None:
    seen = [refund("re_1", 500, "failed", 10, 40)]
    out = plan(PI, seen, [Recorded("refund", "re_1", "succeeded", 500)])
    assert out.calls == [] and "failed after it succeeded" in out.warnings[0]
    won = plan(PI, [dispute("dp_1", 5, "won", 9)], [Recorded("dispute", "dp_1", "lost", 5)])
    assert won.calls == [] and "after it was lost" in won.warnings[0]


# --- parsing ---------------------------------------------------------------------------------


def envelope(kind: str, obj: dict[str, object]) -> dict[str, object]:
    return {"id": "evt_1", "type": kind, "created": 1_795_000_000, "data": {"object": obj}}


def test_facts_from_events() -> None:
    pi = {"id": PI, "amount_received": 1234, "currency": "cny", "customer": "cus_1", "metadata": {}}
    fact = parse_fact(parse_envelope(envelope("payment_intent.succeeded", pi)))
    assert fact == Purchase(PI, 1234, "CNY", "cus_1", None)
    session = {
        "id": "cs_1",
        "amount_total": 99,
        "currency": "usd",
        "customer": None,
        "client_reference_id": "m-7",
        "metadata": {"jifen_member": "m-8"},
        "payment_intent": PI,
        "payment_status": "paid",
    }
    fact = parse_fact(parse_envelope(envelope("checkout.session.completed", session)))
    assert fact == Purchase(PI, 99, "USD", None, "m-8")
    assert isinstance(parse_fact(parse_envelope(envelope("plan.created", {}))), Ignored)


@pytest.mark.parametrize(
    "obj",
    [
        {"id": PI, "amount_received": "12", "currency": "cny"},
        {"id": PI, "amount_received": 12.5, "currency": "cny"},
        {"id": PI, "amount_received": -1, "currency": "cny"},
        {"id": PI, "amount_received": 12, "currency": "yuan"},
        {"amount_received": 12, "currency": "cny"},
    ],
)
def test_objects_without_what_jifen_needs_are_refused(obj: dict[str, object]) -> None:
    with pytest.raises(InvalidStripeEvent):
        parse_fact(parse_envelope(envelope("payment_intent.succeeded", obj)))


def test_an_event_without_an_object_is_refused() -> None:
    with pytest.raises(InvalidStripeEvent, match=r"data\.object"):
        parse_envelope({"id": "evt_1", "type": "x", "created": 1, "data": {}})
