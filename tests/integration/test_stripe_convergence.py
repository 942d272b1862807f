"""Duplicated and reordered Stripe deliveries end in the same balances and ledger.

Stripe retries, duplicates and reorders deliveries. Here the same recorded-shape events
(purchases, partial and full refunds, failed refunds, refunds seen only through
``charge.refunded``, disputes won and lost) are delivered to separate programs of one
database in different ways, and each program must end in the same state: every member's
balances, every order's lot, the points reversed per order, and ``verify_ledger`` clean.

* 200+ events across many orders: once in order; each three times, shuffled; and each order's
  events in reverse order, orders interleaved.
* Every ordering (all 120) of the five events of an order, for three kinds of order.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from loyalty import services as s
from loyalty.db import Database
from loyalty.stripe.webhook import StripeWebhook
from tests.integration import stripe_support as st
from tests.integration.helpers import make_program

Event = dict[str, Any]
Story = Callable[[str, str, int], list[Event]]

AMOUNT = 12_345  # earns 123 points: refund shares round
MEMBERS = 8


def purchase(pi: str, customer: str, t: int, *, checkout: bool = False) -> list[Event]:
    events = [st.payment_intent_succeeded(pi, AMOUNT, customer=customer, created=t)]
    if checkout:
        events.append(st.checkout_session_completed(pi, AMOUNT, customer=customer, created=t))
    return events


def refund(pi: str, amount: int, statuses: list[tuple[str, str, int]], created: int) -> list[Event]:
    """A refund's events: ``(event type, status, event time)`` each."""
    rid = st.new_id("re")
    return [
        st.refund_event(kind, pi, rid, amount, status, refund_created=created, created=at)
        for kind, status, at in statuses
    ]


def charge(pi: str, refunded: int, t: int) -> Event:
    return st.charge_refunded(pi, AMOUNT, refunded, created=t)


def dispute(pi: str, amount: int, statuses: list[tuple[str, str, int]]) -> list[Event]:
    did = st.new_id("dp")
    return [
        st.dispute_event(kind, pi, did, amount, status, created=at) for kind, status, at in statuses
    ]


# --- stories: one order's events in the order Stripe sends them ------------------------------


def refund_pending_then_succeeded(pi: str, customer: str, t: int) -> list[Event]:
    rid = st.new_id("re")
    return [
        *purchase(pi, customer, t, checkout=True),
        st.refund_event("refund.created", pi, rid, 1_000, "pending", refund_created=t + 10),
        charge(pi, 1_000, t + 10),
        st.refund_event(
            "refund.updated", pi, rid, 1_000, "succeeded", refund_created=t + 10, created=t + 20
        ),
    ]


def refund_failed_then_another(pi: str, customer: str, t: int) -> list[Event]:
    failing, second = st.new_id("re"), st.new_id("re")
    return [
        *purchase(pi, customer, t),
        st.refund_event("refund.created", pi, failing, 1_000, "pending", refund_created=t + 10),
        charge(pi, 1_000, t + 10),
        st.refund_event(
            "refund.failed", pi, failing, 1_000, "failed", refund_created=t + 10, created=t + 20
        ),
        st.refund_event("refund.created", pi, second, 1_000, "succeeded", refund_created=t + 30),
    ]


def refund_then_dispute_lost(pi: str, customer: str, t: int) -> list[Event]:
    return [
        *purchase(pi, customer, t),
        *refund(pi, 2_345, [("refund.created", "succeeded", t + 10)], t + 10),
        charge(pi, 2_345, t + 10),
        *dispute(
            pi,
            AMOUNT - 2_345,
            [
                ("charge.dispute.created", "needs_response", t + 20),
                ("charge.dispute.closed", "lost", t + 30),
            ],
        ),
    ]


def full_refund(pi: str, customer: str, t: int) -> list[Event]:
    return [
        *purchase(pi, customer, t, checkout=True),
        *refund(pi, AMOUNT, [("refund.created", "succeeded", t + 10)], t + 10),
        charge(pi, AMOUNT, t + 10),
    ]


def two_partial_refunds(pi: str, customer: str, t: int) -> list[Event]:
    second = st.new_id("re")
    return [
        *purchase(pi, customer, t),
        *refund(pi, 1_000, [("refund.created", "succeeded", t + 10)], t + 10),
        charge(pi, 1_000, t + 10),
        st.refund_event("refund.created", pi, second, 1_000, "pending", refund_created=t + 20),
        charge(pi, 2_000, t + 20),
        st.refund_event(
            "refund.updated", pi, second, 1_000, "succeeded", refund_created=t + 20, created=t + 30
        ),
    ]


def dispute_won(pi: str, customer: str, t: int) -> list[Event]:
    return [
        *purchase(pi, customer, t),
        *dispute(
            pi,
            AMOUNT,
            [
                ("charge.dispute.created", "needs_response", t + 10),
                ("charge.dispute.updated", "under_review", t + 20),
                ("charge.dispute.closed", "won", t + 30),
            ],
        ),
    ]


def refund_seen_only_by_charge(pi: str, customer: str, t: int) -> list[Event]:
    """The endpoint missed the refund events: the money stays frozen, counted once."""
    return [*purchase(pi, customer, t), charge(pi, 3_000, t + 10), charge(pi, 5_000, t + 20)]


STORIES: list[Story] = [
    refund_pending_then_succeeded,
    refund_then_dispute_lost,
    full_refund,
    dispute_won,
    refund_seen_only_by_charge,
]
# A refund that fails (or a stand-in released) while another refund of the order is open: the
# other one's share is settled to its cumulative share, so the order of events cannot matter.
ROUNDING_STORIES: list[Story] = [refund_failed_then_another, two_partial_refunds]
ALL_STORIES = STORIES + ROUNDING_STORIES


# --- delivering and comparing -----------------------------------------------------------------


def setup_program(db: Database, code: str, members: int) -> StripeWebhook:
    make_program(db, code)
    for i in range(members):
        s.enrol_member(db, program=code, external_id=f"m{i}", stripe_customer_id=f"cus_m{i}")
    return StripeWebhook(db, program=code, secret=st.SECRET)


def deliver(hook: StripeWebhook, events: list[Event]) -> None:
    for event in events:
        raw = st.body(event)
        result = hook.handle(raw, st.sign(raw))
        assert result.http_status == 200, result
        assert result.status in ("applied", "parked", "duplicate"), result


def state(db: Database, program: str) -> dict[str, Any]:
    """Balances of every member, every order's lot, and the points and money each order's
    refunds and disputes take back (how a total splits between a refund and a dispute settled
    in another order may differ by a rounding point; the total may not)."""
    with db.read() as conn:
        balances = conn.execute(
            text(
                "SELECT m.external_id, m.available, m.pending, m.held, m.frozen, m.debt, "
                "m.lifetime_earned FROM members m JOIN programs p ON p.id = m.program_id "
                "WHERE p.code = :p ORDER BY m.external_id"
            ),
            {"p": program},
        ).all()
        order_lots = conn.execute(
            text(
                "SELECT e.order_id, l.available, l.pending, l.held, l.frozen, e.points_granted "
                "FROM earnings e JOIN lots l ON l.id = e.lot_id "
                "JOIN programs p ON p.id = e.program_id WHERE p.code = :p ORDER BY e.order_id"
            ),
            {"p": program},
        ).all()
        reversed_points = conn.execute(
            text(
                "SELECT r.order_id, sum(r.points), sum(r.amount_minor) "
                "FROM reversals r JOIN programs p ON p.id = r.program_id WHERE p.code = :p "
                "AND r.status IN ('succeeded', 'lost', 'pending', 'open') "
                "GROUP BY r.order_id ORDER BY 1"
            ),
            {"p": program},
        ).all()
    return {
        "balances": [tuple(r) for r in balances],
        "lots": [tuple(r) for r in order_lots],
        "reversed": [tuple(r) for r in reversed_points],
    }


@pytest.mark.parametrize(
    "stories",
    [
        pytest.param(STORIES, id="converging"),
        pytest.param(STORIES + ROUNDING_STORIES, id="all"),
    ],
)
def test_200_events_once_thrice_shuffled_and_reordered_give_the_same_ledger(
    db: Database, stories: list[Story]
) -> None:
    rng = random.Random(20261121)
    orders: list[list[Event]] = []
    t = st.T0
    while sum(len(o) for o in orders) < 200:
        story = stories[len(orders) % len(stories)]
        member = rng.randrange(MEMBERS)
        orders.append(story(st.new_id("pi"), f"cus_m{member}", t))
        t += 100
    in_order = sorted(
        (e for o in orders for e in o), key=lambda e: e["created"]
    )  # stable: ties keep the order Stripe sent them in
    assert len(in_order) >= 200

    thrice = [e for e in in_order for _ in range(3)]
    rng.shuffle(thrice)
    reversed_each = [list(reversed(o)) for o in orders]
    interleaved = [e for group in itertools.zip_longest(*reversed_each) for e in group if e]

    deliveries = {"once": in_order, "thrice": thrice, "reversed": interleaved}
    for code, events in deliveries.items():
        deliver(setup_program(db, code, MEMBERS), events)

    expected = state(db, "once")
    assert expected["reversed"], "the scenario must reverse points"
    for code in ("thrice", "reversed"):
        assert state(db, code) == expected, code
    report = s.verify_ledger(db)
    assert report.ok, report
    with db.read() as conn:
        statuses = dict(
            conn.execute(text("SELECT status, count(*) FROM stripe_events GROUP BY status")).all()
        )
    assert set(statuses) == {"applied"}, statuses


@pytest.mark.parametrize(
    "story",
    [
        refund_pending_then_succeeded,
        refund_then_dispute_lost,
        refund_failed_then_another,
    ],
)
def test_every_ordering_of_an_orders_events_gives_the_same_result(
    db: Database, story: Story
) -> None:
    sample = story("pi_probe", "cus_probe", st.T0)
    orderings = list(itertools.permutations(range(len(sample))))
    assert len(orderings) == 120
    hook = setup_program(db, "perm", len(orderings))
    for index, ordering in enumerate(orderings):
        events = story(f"pi_perm{index:03d}", f"cus_m{index}", st.T0)
        deliver(hook, [events[i] for i in ordering])
    result = state(db, "perm")
    assert len({r[1:] for r in result["balances"]}) == 1, result["balances"][:5]
    assert len({r[1:] for r in result["lots"]}) == 1, result["lots"][:5]
    by_order: dict[str, list[tuple[Any, ...]]] = {}
    for row in result["reversed"]:
        by_order.setdefault(row[0], []).append(row[1:])
    assert len({tuple(v) for v in by_order.values()}) == 1, by_order
    assert s.verify_ledger(db).ok


def test_concurrent_duplicate_deliveries_on_postgres(pg_db: Database) -> None:
    """Stripe delivers concurrently: 8 threads, every event three times, same end state."""
    rng = random.Random(7)
    orders = [
        ALL_STORIES[i % len(ALL_STORIES)](st.new_id("pi"), f"cus_m{i % MEMBERS}", st.T0 + 100 * i)
        for i in range(21)
    ]
    in_order = sorted((e for o in orders for e in o), key=lambda e: e["created"])
    deliver(setup_program(pg_db, "serial", MEMBERS), in_order)  # all stories: see ROUNDING_STORIES

    hook = setup_program(pg_db, "threads", MEMBERS)
    thrice = [e for e in in_order for _ in range(3)]
    rng.shuffle(thrice)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda e: deliver(hook, [e]), thrice))
    assert state(pg_db, "threads") == state(pg_db, "serial")
    assert s.verify_ledger(pg_db).ok
