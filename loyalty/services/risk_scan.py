"""The risk job: every ``flag`` and ``hold`` rule of every program, evaluated set-based over
its window, each trip turned into a case (one per program, rule and subject, ever).

Each rule kind is one grouped query over the window (earnings, reversals, transfers,
members), returning the subjects over the limit with their figures and the newest activity
that counts. A trip then opens the subject's case, adds to it while it is open (only when
there is activity newer than what the case saw), or reopens it after a resolution only for
activity newer than the resolution: running the scan twice, or after a dismissal, opens
nothing new. A ``hold`` rule also puts the member on hold (new points stay pending). An open
case keeps the strongest action it has had (a rule changed from ``hold`` to ``flag`` leaves
its open case, and the member's hold, for a person to resolve; one changed the other way
makes its open case a hold case and holds the member), so a member on hold always has an open
hold case. Safe to run concurrently: each case is written under its unique key, with the row
locked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, cast, func, literal, or_, select, update
from sqlalchemy.types import Float

from loyalty.db.database import Database
from loyalty.db.dialect import insert_ignoring, is_postgres
from loyalty.db.tables import earnings, members, programs, reversals, risk_cases, transfers
from loyalty.domain.risk import RiskRule, RiskRules, spike_score
from loyalty.services.results import Record
from loyalty.services.reversals import RELEASED_STATUSES
from loyalty.services.risk_rules import rules_of
from loyalty.services.writes import program_row

EVIDENCE_LIMIT = 50  # operations listed in a case's evidence


@dataclass(frozen=True)
class Evidence:
    """Where a trip's operations are (``where`` on the table of ``column``, an operation id):
    read only when the trip is recorded, the newest first, at most 50."""

    where: Any
    column: Any = earnings.c.operation_id

    def operations(self, conn: Connection) -> list[int]:
        rows = conn.execute(
            select(self.column).where(self.where).order_by(self.column.desc()).limit(EVIDENCE_LIMIT)
        ).scalars()
        return [int(x) for x in rows]


@dataclass(frozen=True)
class Trip:
    """One subject over one rule's limit: what the case records."""

    subject: str
    member_id: int | None
    summary: str
    figures: dict[str, Any]
    latest_at: dt.datetime
    evidence: Evidence | None = None


@dataclass(frozen=True)
class RiskScanResult(Record):
    """What a scan did: rules evaluated, subjects over a limit, and cases opened, added to
    (an open case with new activity), reopened (new activity after a resolution), and
    members put on hold."""

    programs: int
    rules: int
    trips: int
    opened: int
    updated: int
    reopened: int
    held: int


def scan_risk(db: Database, *, program: str | None = None) -> RiskScanResult:
    """Evaluate the ``flag`` and ``hold`` rules of every program (or of ``program``) now."""
    now = db.clock.now()
    totals = {"programs": 0, "rules": 0, "trips": 0, "opened": 0, "updated": 0, "reopened": 0}
    totals["held"] = 0
    with db.read() as conn:
        targets = _programs(conn, program)
    for program_id, version in targets:
        totals["programs"] += 1
        with db.read() as conn:
            rules = rules_of(db, conn, program_id, version)
        for rule in RiskRules(tuple(rules.windowed())).rules:
            totals["rules"] += 1
            with db.read() as conn:
                trips = list(_trips(conn, rule, program_id, now))
                cases = _cases_of(conn, program_id, rule.id)
            for trip in trips:
                totals["trips"] += 1
                if not _is_news(trip, cases.get(trip.subject)):
                    continue  # record_trip would find the same under the lock
                with db.write() as conn:
                    recorded = record_trip(conn, program_id, version, rule, trip, now)
                if recorded is not None:
                    totals[recorded.outcome] += 1
                    totals["held"] += recorded.held
    return RiskScanResult(**totals)


def _programs(conn: Connection, program: str | None) -> list[tuple[int, int]]:
    if program is not None:
        row = program_row(conn, program)
        return [] if row.risk_version is None else [(row.id, row.risk_version)]
    rows = conn.execute(
        select(programs.c.id, programs.c.risk_version)
        .where(programs.c.risk_version.is_not(None))
        .order_by(programs.c.id)
    ).all()
    return [(r.id, r.risk_version) for r in rows]


@dataclass(frozen=True)
class Recorded:
    """What a trip did to its case: ``opened``, ``updated`` or ``reopened`` it, and whether
    it put the member on hold."""

    outcome: str
    held: bool


def record_trip(
    conn: Connection, program_id: int, version: int, rule: RiskRule, trip: Trip, now: dt.datetime
) -> Recorded | None:
    """Open, add to or reopen the case of ``trip``; ``None`` when it changes nothing."""
    operations = [] if trip.evidence is None else trip.evidence.operations(conn)
    evidence = {"figures": trip.figures, "operations": operations}
    opened = conn.execute(
        insert_ignoring(risk_cases, returning=[risk_cases.c.id]).on(conn),
        {
            "program_id": program_id,
            "member_id": trip.member_id,
            "rule_id": rule.id,
            "rule_version": version,
            "subject": trip.subject,
            "action": rule.action,
            "status": "open",
            "summary": trip.summary,
            "evidence": evidence,
            "trips": 1,
            "opened_at": now,
            "last_tripped_at": trip.latest_at,
        },
    ).first()
    if opened is not None:
        return Recorded("opened", _hold(conn, rule.action, trip))
    existing = conn.execute(
        select(risk_cases)
        .where(
            risk_cases.c.program_id == program_id,
            risk_cases.c.rule_id == rule.id,
            risk_cases.c.subject == trip.subject,
        )
        .with_for_update()
    ).one()
    if not _is_news(trip, existing):
        return None
    action = rule.action
    if existing.status == "open":
        outcome, values = "updated", {}
        action = _STRONGER.get((existing.action, rule.action), rule.action)
    else:
        outcome = "reopened"
        values = {
            "status": "open",
            "resolution": None,
            "resolution_note": None,
            "resolved_at": None,
            "resolved_by": None,
            "opened_at": now,
        }
    conn.execute(
        update(risk_cases)
        .where(risk_cases.c.id == existing.id)
        .values(
            **values,
            rule_version=version,
            action=action,
            summary=trip.summary,
            evidence=evidence,
            trips=existing.trips + 1,
            last_tripped_at=trip.latest_at,
        )
    )
    becomes_hold = outcome == "reopened" or existing.action != "hold"
    return Recorded(outcome, becomes_hold and _hold(conn, action, trip))


def _is_news(trip: Trip, case: Any) -> bool:
    """Whether ``trip`` changes its ``case`` (``None``: there is none yet): activity newer
    than an open case saw, or than a closed case's resolution."""
    if case is None:
        return True
    if case.status == "open":
        return bool(trip.latest_at > case.last_tripped_at)
    return case.resolved_at is None or bool(trip.latest_at > case.resolved_at)


def _cases_of(conn: Connection, program_id: int, rule_id: str) -> dict[str, Any]:
    """The rule's cases by subject: what a trip is news to (see :func:`_is_news`)."""
    rows = conn.execute(
        select(
            risk_cases.c.subject,
            risk_cases.c.status,
            risk_cases.c.last_tripped_at,
            risk_cases.c.resolved_at,
        ).where(risk_cases.c.program_id == program_id, risk_cases.c.rule_id == rule_id)
    )
    return {r.subject: r for r in rows}


# An open case's action when its rule now says otherwise: a hold stays a hold.
_STRONGER = {("hold", "flag"): "hold"}


def _hold(conn: Connection, action: str, trip: Trip) -> bool:
    """Put the member of a ``hold`` trip on hold; whether it did."""
    if action != "hold" or trip.member_id is None:
        return False
    conn.execute(update(members).where(members.c.id == trip.member_id).values(risk_hold=True))
    return True


def _trips(conn: Connection, rule: RiskRule, program_id: int, now: dt.datetime) -> Iterator[Trip]:
    finder: Callable[[Connection, RiskRule, int, dt.datetime], Iterator[Trip]] = _FINDERS[rule.kind]
    return finder(conn, rule, program_id, now)


def _velocity(
    conn: Connection, rule: RiskRule, program_id: int, now: dt.datetime
) -> Iterator[Trip]:
    since = now - dt.timedelta(seconds=rule.window_seconds)
    subject = {"member": earnings.c.member_id, "location": earnings.c.location}.get(
        rule["scope"], earnings.c.device
    )
    measure = func.count() if rule["measure"] == "earns" else func.sum(earnings.c.points_granted)
    in_window = and_(
        earnings.c.program_id == program_id, earnings.c.created_at > since, subject.is_not(None)
    )
    rows = conn.execute(
        select(
            subject.label("subject"),
            measure.label("measured"),
            func.max(earnings.c.created_at).label("latest"),
        )
        .where(in_window)
        .group_by(subject)
        .having(measure > rule["limit"])
        .order_by(subject)
    ).all()
    unit = "earns" if rule["measure"] == "earns" else "points"
    for r in rows:
        member_id = int(r.subject) if rule["scope"] == "member" else None
        yield Trip(
            subject=f"{rule['scope']}:{r.subject}",
            member_id=member_id,
            summary=f"{int(r.measured):,} {unit} within an {rule['window']}, over the limit of "
            f"{rule['limit']:,}".replace("an day", "a day"),
            figures={
                "measured": int(r.measured),
                "limit": rule["limit"],
                "since": since.isoformat(),
            },
            latest_at=r.latest,
            evidence=Evidence(and_(in_window, subject == r.subject)),
        )


def _farming(conn: Connection, rule: RiskRule, program_id: int, now: dt.datetime) -> Iterator[Trip]:
    since = now - dt.timedelta(days=rule["days"])
    refunded = (
        select(
            reversals.c.member_id,
            func.sum(reversals.c.points).label("refunded"),
            func.count().label("refunds"),
            func.max(reversals.c.created_at).label("latest_refund"),
        )
        .where(
            reversals.c.program_id == program_id,
            reversals.c.created_at > since,
            reversals.c.status.not_in(RELEASED_STATUSES),
        )
        .group_by(reversals.c.member_id)
        .subquery()
    )
    # Only the members who refunded in the window: their earnings by member (an index range
    # each), not the program's whole month of earnings grouped.
    earned = (
        select(
            earnings.c.member_id,
            func.sum(earnings.c.points_granted).label("earned"),
            func.max(earnings.c.created_at).label("latest_earn"),
        )
        .where(
            earnings.c.member_id.in_(select(refunded.c.member_id)),
            earnings.c.program_id == program_id,
            earnings.c.created_at > since,
        )
        .group_by(earnings.c.member_id)
        .subquery()
    )
    rows = conn.execute(
        select(earned, refunded.c.refunded, refunded.c.refunds, refunded.c.latest_refund)
        .join(refunded, refunded.c.member_id == earned.c.member_id)
        .where(
            earned.c.earned >= max(rule["min_points"], 1),
            refunded.c.refunded * 100 > earned.c.earned * rule["refunded_percent"],
        )
        .order_by(earned.c.member_id)
    ).all()
    for r in rows:
        share = int(r.refunded) * 100 // int(r.earned)
        in_window = and_(reversals.c.member_id == r.member_id, reversals.c.created_at > since)
        yield Trip(
            subject=f"member:{r.member_id}",
            member_id=int(r.member_id),
            summary=f"{share} % of {int(r.earned):,} points earned in {rule['days']} days "
            f"refunded ({int(r.refunds)} refunds), over {rule['refunded_percent']} %",
            figures={
                "earned": int(r.earned),
                "refunded": int(r.refunded),
                "refunds": int(r.refunds),
                "share_percent": share,
            },
            latest_at=max(r.latest_earn, r.latest_refund),
            evidence=Evidence(in_window, reversals.c.operation_id),
        )


def _transfer_ring(
    conn: Connection, rule: RiskRule, program_id: int, now: dt.datetime
) -> Iterator[Trip]:
    since = now - dt.timedelta(hours=rule["hours"])
    in_window = and_(transfers.c.program_id == program_id, transfers.c.created_at > since)
    senders = func.count(transfers.c.sender_id.distinct())
    rows = conn.execute(
        select(
            transfers.c.recipient_id,
            senders.label("senders"),
            func.sum(transfers.c.points).label("points"),
            func.max(transfers.c.created_at).label("latest"),
        )
        .where(in_window)
        .group_by(transfers.c.recipient_id)
        .having(senders >= rule["senders"])
        .order_by(transfers.c.recipient_id)
    ).all()
    for r in rows:
        yield Trip(
            subject=f"member:{r.recipient_id}",
            member_id=int(r.recipient_id),
            summary=f"{int(r.senders)} members sent {int(r.points):,} points within "
            f"{rule['hours']} hours",
            figures={"senders": int(r.senders), "points": int(r.points)},
            latest_at=r.latest,
            evidence=Evidence(
                and_(in_window, transfers.c.recipient_id == r.recipient_id),
                transfers.c.operation_id,
            ),
        )


def _transfer_chain(
    conn: Connection, rule: RiskRule, program_id: int, now: dt.datetime
) -> Iterator[Trip]:
    """Members who received points by transfer in the last ``hours`` hours and sent at least
    ``share_percent`` % of them (and ``min_points``) on after the first of those receipts.

    What they passed on is what they sent after it, up to what they received: a member who
    was given 20 points and then gave away 1,800 of their own passed on 20, not a chain.
    The window is the ring's: every transfer in it lies within ``hours`` hours of every other,
    so a send after a receipt of the window was sent within ``hours`` hours of it, and one
    grouped pass per direction over the window (``ix_transfers_program_created``) finds them
    (a send before any receipt of the window, or after the receipt left it, does not count).
    """
    since = now - dt.timedelta(hours=rule["hours"])
    in_window = and_(transfers.c.program_id == program_id, transfers.c.created_at > since)
    received = (
        select(
            transfers.c.recipient_id.label("member_id"),
            func.sum(transfers.c.points).label("received"),
            func.count().label("transfers_in"),
            func.count(transfers.c.sender_id.distinct()).label("senders"),
            func.min(transfers.c.created_at).label("first_in"),
            func.max(transfers.c.created_at).label("latest_in"),
        )
        .where(in_window)
        .group_by(transfers.c.recipient_id)
        .cte("received")  # read twice, computed once
    )
    passed = (
        select(
            transfers.c.sender_id.label("member_id"),
            func.sum(transfers.c.points).label("sent"),
            func.count().label("transfers_out"),
            func.count(transfers.c.recipient_id.distinct()).label("recipients"),
            func.max(transfers.c.created_at).label("latest_out"),
        )
        .join(received, received.c.member_id == transfers.c.sender_id)
        .where(in_window, transfers.c.created_at > received.c.first_in)
        .group_by(transfers.c.sender_id)
        .subquery()
    )
    rows = conn.execute(
        select(received, passed.c.sent, passed.c.transfers_out, passed.c.recipients,
               passed.c.latest_out)
        .join(passed, passed.c.member_id == received.c.member_id)
        .where(  # min(sent, received) >= min_points, and >= share_percent % of received
            passed.c.sent >= rule["min_points"],
            received.c.received >= rule["min_points"],
            passed.c.sent * 100 >= received.c.received * rule["share_percent"],
        )
        .order_by(received.c.member_id)
    ).all()  # fmt: skip
    for r in rows:
        passed_on = min(int(r.sent), int(r.received))
        share = passed_on * 100 // int(r.received)
        chain = or_(
            transfers.c.recipient_id == r.member_id,
            and_(transfers.c.sender_id == r.member_id, transfers.c.created_at > r.first_in),
        )
        yield Trip(
            subject=f"member:{r.member_id}",
            member_id=int(r.member_id),
            summary=f"passed on {passed_on:,} of {int(r.received):,} points received by "
            f"transfer ({share} %) within {rule['hours']} hours, at least "
            f"{rule['share_percent']} %",
            figures={
                "received": int(r.received),
                "transfers_in": int(r.transfers_in),
                "senders": int(r.senders),
                "passed_on": passed_on,
                "sent": int(r.sent),
                "transfers_out": int(r.transfers_out),
                "recipients": int(r.recipients),
                "passed_on_percent": share,
            },
            latest_at=max(r.latest_in, r.latest_out),
            evidence=Evidence(and_(in_window, chain), transfers.c.operation_id),
        )


def _new_member_inflow(
    conn: Connection, rule: RiskRule, program_id: int, now: dt.datetime
) -> Iterator[Trip]:
    young = now - dt.timedelta(days=rule["days"])
    earned = select(
        earnings.c.member_id.label("member_id"),
        earnings.c.points_granted.label("points"),
        earnings.c.created_at.label("at"),
    ).where(earnings.c.program_id == program_id, earnings.c.created_at > young)
    received = select(transfers.c.recipient_id, transfers.c.points, transfers.c.created_at).where(
        transfers.c.program_id == program_id, transfers.c.created_at > young
    )
    inflow = earned.union_all(received).subquery()
    rows = conn.execute(
        select(
            members.c.id,
            func.sum(inflow.c.points).label("points"),
            func.max(inflow.c.at).label("latest"),
        )
        .join(inflow, inflow.c.member_id == members.c.id)
        .where(members.c.program_id == program_id, members.c.created_at > young)
        .group_by(members.c.id)
        .having(func.sum(inflow.c.points) > rule["points"])
        .order_by(members.c.id)
    ).all()
    for r in rows:
        yield Trip(
            subject=f"member:{r.id}",
            member_id=int(r.id),
            summary=f"{int(r.points):,} points received within {rule['days']} days of "
            f"enrolling, over {rule['points']:,}",
            figures={"points": int(r.points), "limit": rule["points"]},
            latest_at=r.latest,
            evidence=Evidence(and_(earnings.c.member_id == r.id, earnings.c.created_at > young)),
        )


def _issuance_spike(
    conn: Connection, rule: RiskRule, program_id: int, now: dt.datetime
) -> Iterator[Trip]:
    width = rule.window_seconds
    windows = rule["trailing_days"] * 86400 // width
    since = now - dt.timedelta(seconds=width * (windows + 1))
    age = _seconds_before(conn, now, earnings.c.created_at)
    bucket = cast(func.floor(age / width), Float).label("bucket")
    rows = conn.execute(
        select(bucket, func.sum(earnings.c.points_granted), func.max(earnings.c.created_at))
        .where(
            earnings.c.program_id == program_id,
            earnings.c.created_at > since,
            earnings.c.created_at <= now,
        )
        .group_by(bucket)
    ).all()
    sums = {int(b): int(points) for b, points, _ in rows}
    latest = max((at for b, _, at in rows if int(b) == 0), default=None)
    current = sums.get(0, 0)
    if latest is None or current < rule["min_points"]:
        return
    spike = spike_score(current, [sums.get(i, 0) for i in range(1, windows + 1)])
    if spike.score <= rule["threshold"]:
        return
    yield Trip(
        subject="program",
        member_id=None,
        summary=f"{current:,} points issued in the last {rule['window']}, "
        f"{spike.score:.1f} deviations above the median of {spike.median:,.0f}",
        figures={
            "current": current,
            "median": spike.median,
            "mad": spike.mad,
            "score": round(spike.score, 2),
            "windows": windows,
        },
        latest_at=latest,
    )


def _seconds_before(conn: Connection, now: dt.datetime, column: Any) -> Any:
    """How many seconds ``column`` (a UTC timestamp) lies before ``now``, as a float
    (``date_part``, not ``extract``: extract's numeric made the issuance rule's month of
    buckets about a third slower)."""
    if is_postgres(conn):
        return func.date_part("epoch", literal(now) - column, type_=Float)
    naive = now.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    return (func.julianday(naive) - func.julianday(column)) * 86400.0


_FINDERS: dict[str, Callable[[Connection, RiskRule, int, dt.datetime], Iterator[Trip]]] = {
    "velocity": _velocity,
    "farming": _farming,
    "transfer_ring": _transfer_ring,
    "transfer_chain": _transfer_chain,
    "new_member_inflow": _new_member_inflow,
    "issuance_spike": _issuance_spike,
}
