"""From everything Stripe has said about one order to the refund and dispute calls it needs.

Stripe delivers events more than once and in any order, and says the same thing two ways:
each refund has its own events (``refund.*``, with the refund's status), while
``charge.refunded`` only carries the charge's cumulative ``amount_refunded``. So the Stripe
door does not act on events one by one. It keeps every event, and for an order it asks
:func:`plan` which calls bring the recorded reversals (see ``loyalty.services.reversals``) to
the state the events describe. Running the plan again changes nothing; the state depends on
the set of events, not on their order.

* **A refund** counts from its own events; the latest (by the event's time; at the same time
  the later status: pending, then succeeded, then failed) decides. Pending: its points are
  frozen. Succeeded: reversed. Failed or canceled: released.
* **Money no refund event explains.** The latest ``charge.refunded`` snapshot counts the
  refunds created up to then that had not failed by then. What it counts beyond the refunds
  Jifen knows of is frozen as one stand-in refund (``<payment_intent>:unexplained:<n>``).
  When the refund events arrive, the stand-in is released and they take over, so the money
  is never counted twice. A stand-in is never reversed: subscribe the endpoint to
  ``refund.created``, ``refund.updated`` and ``refund.failed`` as well.
* **A dispute** follows its status: open statuses freeze, ``lost`` reverses, ``won`` (also
  ``warning_closed`` and ``prevented``) releases.

Calls come in a safe order: first what gives points back (released stand-ins, failed
refunds, won disputes), then settlements, then new freezes, so the order's refunds never
add up to more than was paid on the way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from loyalty.stripe.payloads import (
    DISPUTE_LOST,
    DISPUTE_WON,
    REFUND_FAILED,
    REFUND_SUCCEEDED,
    ChargeRefunds,
    DisputeState,
    Fact,
    RefundState,
)

UNEXPLAINED = "unexplained"

# At the same event time, a later status wins: pending < succeeded < failed.
_REFUND_RANK = {REFUND_SUCCEEDED: 1, **dict.fromkeys(REFUND_FAILED, 2)}


def _dispute_rank(status: str) -> int:
    return 1 if status == DISPUTE_LOST or status in DISPUTE_WON else 0


@dataclass(frozen=True)
class Seen:
    """A fact with the time of the event that carried it."""

    at: dt.datetime
    fact: Fact


@dataclass(frozen=True)
class Recorded:
    """A refund or dispute already recorded for the order."""

    kind: str  # refund or dispute
    external_id: str
    status: str
    amount_minor: int


@dataclass(frozen=True)
class Call:
    """One service call: ``action`` is refund, complete_refund, fail_refund, open_dispute,
    lost_dispute, won_dispute."""

    action: str
    external_id: str
    amount_minor: int = 0
    currency: str = ""
    succeeded: bool = False


@dataclass
class Plan:
    """The calls to make, in order, and what cannot be done automatically."""

    calls: list[Call] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Refund:
    state: RefundState
    failed_at: dt.datetime | None


def stand_in_id(payment_intent: str, number: int) -> str:
    """The id of the ``number``-th stand-in refund of an order."""
    return f"{payment_intent}:{UNEXPLAINED}:{number}"


def is_stand_in(external_id: str) -> bool:
    """Whether a refund id is a stand-in for money no refund event explained."""
    return f":{UNEXPLAINED}:" in external_id


def latest_refunds(seen: Iterable[Seen]) -> dict[str, _Refund]:
    """Each refund's deciding state, and when it failed (if an event said so)."""
    best: dict[str, tuple[tuple[dt.datetime, int], RefundState]] = {}
    failed: dict[str, dt.datetime] = {}
    for s in seen:
        if not isinstance(s.fact, RefundState):
            continue
        r = s.fact
        order = (s.at, _REFUND_RANK.get(r.status, 0))
        if r.refund_id not in best or order > best[r.refund_id][0]:
            best[r.refund_id] = (order, r)
        if r.status in REFUND_FAILED:
            failed[r.refund_id] = min(s.at, failed.get(r.refund_id, s.at))
    return {rid: _Refund(state, failed.get(rid)) for rid, (_, state) in best.items()}


def latest_disputes(seen: Iterable[Seen]) -> dict[str, DisputeState]:
    """Each dispute's deciding state."""
    best: dict[str, tuple[tuple[dt.datetime, int], DisputeState]] = {}
    for s in seen:
        if isinstance(s.fact, DisputeState):
            order = (s.at, _dispute_rank(s.fact.status))
            if s.fact.dispute_id not in best or order > best[s.fact.dispute_id][0]:
                best[s.fact.dispute_id] = (order, s.fact)
    return {did: state for did, (_, state) in best.items()}


def unexplained(seen: Iterable[Seen], refunds: Mapping[str, _Refund]) -> tuple[int, str]:
    """Money the latest ``charge.refunded`` counts that no known refund explains."""
    snapshots = [(s.at, s.fact) for s in seen if isinstance(s.fact, ChargeRefunds)]
    if not snapshots:
        return 0, ""
    at, charge = max(snapshots, key=lambda x: (x[0], x[1].amount_refunded))
    explained = sum(
        r.state.amount_minor
        for r in refunds.values()
        if r.state.created <= at and (r.failed_at is None or r.failed_at > at)
    )
    return max(0, charge.amount_refunded - explained), charge.currency


def plan(payment_intent: str, seen: list[Seen], recorded: Iterable[Recorded]) -> Plan:
    """The calls that bring the order's recorded reversals to what the events say."""
    have = {(r.kind, r.external_id): r for r in recorded}
    refunds = latest_refunds(seen)
    disputes = latest_disputes(seen)
    money, currency = unexplained(seen, refunds)
    out = Plan()
    releases: list[Call] = []
    settles: list[Call] = []
    opens: list[Call] = []
    _plan_stand_in(payment_intent, money, currency, have, releases, opens)
    for rid, r in sorted(refunds.items()):
        _plan_refund(r.state, have.get(("refund", rid)), releases, settles, opens, out.warnings)
    for did, d in sorted(disputes.items()):
        _plan_dispute(d, have.get(("dispute", did)), releases, settles, opens, out.warnings)
    out.calls = releases + settles + opens
    return out


def _plan_stand_in(
    payment_intent: str,
    money: int,
    currency: str,
    have: Mapping[tuple[str, str], Recorded],
    releases: list[Call],
    opens: list[Call],
) -> None:
    stand_ins = [r for (kind, rid), r in have.items() if kind == "refund" and is_stand_in(rid)]
    open_ones = [r for r in stand_ins if r.status == "pending"]
    if len(open_ones) == 1 and open_ones[0].amount_minor == money:
        return
    releases.extend(Call("fail_refund", r.external_id) for r in open_ones)
    if money > 0:
        number = len(stand_ins) + 1
        opens.append(Call("refund", stand_in_id(payment_intent, number), money, currency))


def _plan_refund(
    state: RefundState,
    have: Recorded | None,
    releases: list[Call],
    settles: list[Call],
    opens: list[Call],
    warnings: list[str],
) -> None:
    rid, status = state.refund_id, state.status
    if status in REFUND_FAILED:
        if have is not None and have.status == "pending":
            releases.append(Call("fail_refund", rid))
        elif have is not None and have.status == "succeeded":
            warnings.append(
                f"refund {rid} failed after it succeeded: Stripe put the money back in your "
                "balance and the customer is still owed it, so its points stay reversed; "
                "refund the customer another way (if the order stands after all, grant the "
                "points back with an adjustment)"
            )
        return
    succeeded = status == REFUND_SUCCEEDED
    if have is None:
        opens.append(Call("refund", rid, state.amount_minor, state.currency, succeeded))
    elif succeeded and have.status == "pending":
        settles.append(Call("complete_refund", rid))


def _plan_dispute(
    state: DisputeState,
    have: Recorded | None,
    releases: list[Call],
    settles: list[Call],
    opens: list[Call],
    warnings: list[str],
) -> None:
    did, status = state.dispute_id, state.status
    if status in DISPUTE_WON:
        if have is not None and have.status == "open":
            releases.append(Call("won_dispute", did))
        elif have is not None and have.status == "lost":
            warnings.append(f"dispute {did} is {status} after it was lost; points stay reversed")
        return
    if have is None:
        opens.append(Call("open_dispute", did, state.amount_minor, state.currency))
        if status == DISPUTE_LOST:
            opens.append(Call("lost_dispute", did))
    elif status == DISPUTE_LOST and have.status == "open":
        settles.append(Call("lost_dispute", did))
