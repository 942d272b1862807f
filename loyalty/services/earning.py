"""Earning: points for purchases and named actions, and quotes that write nothing.

The write path is lean on purpose (it is benchmarked against hand-written SQL): one locked
read of member, program, rule version and idempotency key; the program budget only when the
program has one; then the operation, the lot, the entry, the earning and the member update.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol, cast

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)

from loyalty.db.dialect import PerDialect, upsert_adding
from loyalty.db.tables import (
    earning_parts,
    earnings,
    entries,
    events,
    issuance,
    lots,
    members,
    operations,
    tier_qualifying,
)
from loyalty.domain.calendar import Periods, lot_expiry, periods, start_of_period
from loyalty.domain.caps import (
    CapDecision,
    CapUsage,
    apply_member_caps,
    apply_program_budget,
)
from loyalty.domain.checks import (
    MAX_MINOR_UNITS,
    MAX_POINTS,
    require_key,
    require_member_id,
    require_minor_units,
    require_order_id,
    require_program_code,
    require_text,
)
from loyalty.domain.earning_parts import EarningPart, part_weights, split_points
from loyalty.domain.money import minor_unit_exponent, require_currency
from loyalty.domain.moves import Move, debt_repayment
from loyalty.domain.rounding import Rounding
from loyalty.domain.rules import OrderLine, RuleSet, format_ratio, purchase_points
from loyalty.domain.tiers import TierRules
from loyalty.errors import AlreadyExists, InvalidAmount, InvalidInput, MemberNotFound
from loyalty.events.outbox import balance, emit, event_row, member_data, operation_ref
from loyalty.services.earn_tiers import (
    TIER_VERSION,
    TierPlan,
    contribution,
    measure_column,
    tier_plan,
)
from loyalty.services.ledger import (
    AT,
    DELTAS,
    MEMBER,
    MEMBER_DELTAS,
    PROGRAM,
    RECORDED_OPERATION,
    LostRace,
    event_params,
    insert_selecting,
    member_totals,
    operation_params,
    post_moves,
    prefixed,
    record_operation,
)
from loyalty.services.results import EarnQuote, EarnResult
from loyalty.services.risk_rules import check_earn
from loyalty.services.tiers import Change, change_tier, measure_now, tiers_at
from loyalty.services.uow import Target
from loyalty.services.writes import (
    LedgerWrite,
    LockedMember,
    StoredResult,
    program_row,
    resolve_key,
    rule_cache,
    rule_version_at,
)

OrderLines = Sequence[OrderLine | Mapping[str, Any]]

# Statements of the hot path, built once (see bench/earn_pg.py).
INSERT_LOT = insert(lots).returning(lots.c.id)
INSERT_EARNING = insert(earnings)
INSERT_QUALIFYING = insert(tier_qualifying)
# An order's parts by category and campaign, hung off its earning (found by order id).
INSERT_PARTS = insert(earning_parts).values(
    earning_id=select(earnings.c.id)
    .where(
        earnings.c.program_id == bindparam("part_program_id"),
        earnings.c.order_id == bindparam("part_order_id"),
    )
    .scalar_subquery()
)
CAP_PERIODS = ("day", "month", "year")
UPDATE_MEMBER_AFTER_EARN = (
    update(members)
    .where(members.c.id == bindparam("member"))
    .values(
        {
            **MEMBER_DELTAS,
            "lifetime_earned": members.c.lifetime_earned + bindparam("d_lifetime"),
            **{
                f"cap_{p}_{f}": bindparam(f"c_{p}_{f}")
                for p in CAP_PERIODS
                for f in ("key", "points")
            },
        }
    )
)
# Today's issuance counter, created at 0 on first use, locked and read.
_ISSUED_TODAY = upsert_adding(
    issuance, conflict=["program_id", "day"], column="issued", returning=[issuance.c.issued]
)


class _Earner(LockedMember, Protocol):
    """A member locked with :data:`ORDER_EARNED`."""

    order_earned: int | None


ORDER_EARNED = {
    "order_earned": select(earnings.c.id)
    .where(
        earnings.c.program_id == members.c.program_id,
        earnings.c.order_id == bindparam("order_id"),
    )
    .scalar_subquery()
}


def order_lines(amount_minor: int | None, lines: OrderLines | None) -> list[OrderLine]:
    """Validated order lines from either a single amount or a list of lines."""
    if (amount_minor is None) == (lines is None):
        raise InvalidInput("pass either amount_minor or lines (not both)")
    if lines is None:
        return [OrderLine(require_minor_units("amount_minor", amount_minor))]
    if not isinstance(lines, Sequence) or isinstance(lines, str | bytes) or not lines:
        raise InvalidInput("lines must be a non-empty list of order lines")
    parsed = [_line(i, line) for i, line in enumerate(lines)]
    total = sum(line.amount_minor for line in parsed)
    if total > MAX_MINOR_UNITS:
        raise InvalidAmount(
            f"the lines total {total}; an order is at most {MAX_MINOR_UNITS} minor units",
            field="lines",
            maximum=MAX_MINOR_UNITS,
        )
    return parsed


def _line(index: int, line: OrderLine | Mapping[str, Any]) -> OrderLine:
    if not isinstance(line, OrderLine | Mapping):
        raise InvalidInput(f"line {index} must be a mapping or an OrderLine, got {line!r}"[:200])
    if isinstance(line, Mapping):
        unknown = set(line) - {"amount_minor", "sku", "category"}
        if unknown:
            names = ", ".join(sorted(map(repr, unknown)))
            raise InvalidInput(f"line {index} has unknown fields: {names}"[:300])
        line = OrderLine(line.get("amount_minor", 0), line.get("sku"), line.get("category"))
    amount = require_minor_units(f"lines[{index}].amount_minor", line.amount_minor)
    sku, category = (
        None if value is None else require_text(f"lines[{index}].{name}", value, max_length=100)
        for name, value in (("sku", line.sku), ("category", line.category))
    )
    return OrderLine(amount, sku, category)


@dataclass(frozen=True)
class _Grant:
    requested: int
    decision: CapDecision
    periods: Periods


def _usage(row: LockedMember) -> CapUsage:
    return CapUsage(
        row.cap_day_key,
        row.cap_day_points,
        row.cap_month_key,
        row.cap_month_points,
        row.cap_year_key,
        row.cap_year_points,
    )


def _take_budget(conn: Connection, program_id: int, day: str, want: int, budget: int) -> int:
    """Lock today's issuance counter, grant what the budget leaves, and count it."""
    counted = {"program_id": program_id, "day": day, "issued": 0}
    issued = conn.execute(_ISSUED_TODAY.on(conn), counted).scalar_one()
    granted = apply_program_budget(want, budget, issued).granted
    if granted:
        conn.execute(
            update(issuance)
            .where(issuance.c.program_id == program_id, issuance.c.day == day)
            .values(issued=issuance.c.issued + granted)
        )
    return granted


def _grant(
    conn: Connection, row: LockedMember, rules: RuleSet, requested: int, now: dt.datetime
) -> _Grant:
    """Apply member caps, then the program's daily budget (locked), to ``requested``."""
    span = periods(now, row.program_timezone)
    decision = apply_member_caps(requested, rules.caps, _usage(row), span)
    budget = rules.caps.program_daily
    if decision.granted and budget is not None:
        granted = _take_budget(conn, row.program_id, span.day, decision.granted, budget)
        if granted < decision.granted:
            decision = CapDecision(granted, "program_daily")
    return _Grant(requested, decision, span)


@dataclass(frozen=True)
class _CreditRows:
    """What one credit writes: the operation, the lot (ids aside), the member's new lifetime
    total and cap counters, and the earning (ids and time aside)."""

    operation: dict[str, Any]
    lot: dict[str, Any]
    member: dict[str, Any]
    earning: dict[str, Any]
    qualifying: dict[str, Any] | None
    pending: bool
    event: dict[str, Any]  # the points.earned event (operation id aside)
    measuring: TierRules | None = None  # the tier rules whose measure the credit reads
    tier_since: dt.datetime | None = None

    @property
    def entry_kind(self) -> str:
        return "earn_pending" if self.pending else "earn"


def _credit(
    conn: Connection,
    row: LockedMember,
    *,
    rules: RuleSet,
    version: int,
    grant: _Grant,
    source: str,
    reference: str,
    write: LedgerWrite[EarnResult],
    now: dt.datetime,
    pending_days: int,
    earning: Mapping[str, Any],
    money_minor: int = 0,
    plan: TierPlan | None = None,
) -> EarnResult:
    """Store the operation, the lot, the entry, the earning, the qualifying row and the
    member's new balances; then move the member up if the earn crossed a threshold."""
    granted = grant.decision.granted
    held = bool(row.risk_hold)  # risk control holds new points until a person releases them
    pending = pending_days > 0 or held
    plan = plan or TierPlan(None)
    adds = 0 if plan.tiers is None else contribution(plan.tiers.rules, granted, money_minor)
    measuring = plan.measure_wanted(adds)
    result = EarnResult(
        member=row.external_id,
        source=source,
        reference=reference,
        points_requested=grant.requested,
        points_granted=granted,
        capped_by=grant.decision.capped_by,
        status="pending" if pending else "available",
        rule_version=version,
        matures_at=now + dt.timedelta(days=pending_days) if pending and not held else None,
        expires_at=lot_expiry(now, row.program_timezone, rules.expiry),
        debt_repaid=min(row.debt, granted),
        tier=plan.tier,
        tier_multiplier=format_ratio(plan.multiplier) if plan.tiers is not None else None,
    )
    usage = _usage(row).plus(grant.periods, granted)
    rows = _CreditRows(
        operation={
            "program_id": row.program_id,
            "key": write.key,
            "kind": write.kind,
            "member_id": row.id,
            "req_hash": write.req_hash,
            "result": result.to_record(),
            "at": now,
        },
        lot={
            "points": granted,
            "available": 0 if pending else granted,
            "pending": granted if pending else 0,
            "earned_at": now,
            "matures_at": result.matures_at,
            "expires_at": result.expires_at,
        },
        member={
            "d_lifetime": granted,
            **{
                f"c_{p}_{f}": getattr(usage, f"{p}_{f}")
                for p in CAP_PERIODS
                for f in ("key", "points")
            },
        },
        earning={
            "source": source,
            "order_id": None,
            "action": None,
            "amount_minor": None,
            "points_paid_minor": 0,
            "currency": None,
            "points_requested": grant.requested,
            "points_granted": granted,
            "capped_by": grant.decision.capped_by,
            "rule_version_id": row.rule_version_id,
            "location": None,
            "device": None,
            **earning,
        },
        qualifying={"source": source, "points": granted, "money_minor": money_minor}
        if granted or money_minor
        else None,
        pending=pending,
        event=_earned_event(row, result, write, now),
        measuring=measuring,
        tier_since=None if measuring is None else measuring.window_since(now, row.program_timezone),
    )
    op_id, measured = _CREDIT.on(conn)(conn, row, rows)
    if measuring is None:
        return result
    if measured is None:  # read after the credit: its own qualifying row is counted
        measure = measure_now(conn, measuring, row.id, now, row.program_timezone)
    else:  # read in the credit's statement, before its own row
        measure = measured + adds
    return _upgrade(conn, row, plan, measure, op_id, result, now)


def _earned_event(
    row: LockedMember, result: EarnResult, write: LedgerWrite[EarnResult], now: dt.datetime
) -> dict[str, Any]:
    """The ``points.earned`` event of a credit (its ``operation_id`` is set when written)."""
    granted = result.points_granted
    bucket = "pending" if result.status == "pending" else "available"
    deltas = {f"d_{bucket}": granted - result.debt_repaid, "d_debt": -result.debt_repaid}
    return event_row(
        "points.earned",
        program_id=row.program_id,
        member_id=row.id,
        operation_id=None,
        at=now,
        data=member_data(
            row.program_code,
            row.external_id,
            operation=operation_ref(write.kind, write.key),
            points=granted,
            balance=balance(row, deltas),
            source=result.source,
            reference=result.reference,
            points_requested=result.points_requested,
            capped_by=result.capped_by,
            status=result.status,
            matures_at=result.matures_at,
            expires_at=result.expires_at,
            debt_repaid=result.debt_repaid,
            rule_version=result.rule_version,
        ),
    )


def _upgrade(
    conn: Connection,
    row: LockedMember,
    plan: TierPlan,
    measure: int,
    op_id: int,
    result: EarnResult,
    now: dt.datetime,
) -> EarnResult:
    """Move the member up if ``measure`` (after the earn) reaches a higher tier, and store the
    result that says so (a retry answers it)."""
    to_rank = plan.upgrade_to(measure)
    if to_rank is None or plan.tiers is None or plan.state is None:
        return result
    change = change_tier(
        conn,
        plan.state,
        plan.tiers,
        row.program_timezone,
        Change(to_rank=to_rank, reason="earn", measure=measure, at=now, operation_id=op_id),
    )
    upgraded = dataclasses.replace(result, tier=change.to_tier, tier_upgraded_from=plan.tier)
    conn.execute(
        update(operations).where(operations.c.id == op_id).values(result=upgraded.to_record())
    )
    return upgraded


def _credit_in_steps(
    conn: Connection, row: LockedMember, rows: _CreditRows
) -> tuple[int, int | None]:
    """The credit statement by statement: any backend, no points granted, or a debt to repay.
    Returns the operation's id (and no measure: the caller reads it)."""
    op_id = record_operation(conn, **rows.operation)
    ids = {"program_id": row.program_id, "member_id": row.id, "operation_id": op_id}
    lot_id = None
    granted = rows.lot["points"]
    if granted:
        lot_id = conn.execute(
            INSERT_LOT, {**ids, "held": 0, "frozen": 0, "expired_at": None, **rows.lot}
        ).scalar_one()
        earned = Move(
            rows.entry_kind,
            lot_id,
            new_lot=True,
            available=rows.lot["available"],
            pending=rows.lot["pending"],
        )
        bucket = "pending" if rows.pending else "available"
        post_moves(
            conn,
            program_id=row.program_id,
            member_id=row.id,
            operation_id=op_id,
            at=rows.operation["at"],
            moves=[earned, *debt_repayment(row.debt, lot_id, granted, bucket=bucket)],
            member_update=UPDATE_MEMBER_AFTER_EARN,
            member_params=rows.member,
        )
    earning = {**rows.earning, **ids, "lot_id": lot_id, "created_at": rows.operation["at"]}
    conn.execute(INSERT_EARNING, earning)
    emit(conn, [{**rows.event, "operation_id": op_id}])
    if rows.qualifying is not None:
        at = rows.operation["at"]
        conn.execute(
            INSERT_QUALIFYING, {**rows.qualifying, **ids, "counted_at": at, "created_at": at}
        )
    return op_id, None


# A credit on PostgreSQL in one round trip: the operation (``op``), its lot, the lot's
# entry, the member's balances and cap counters (the portable path's own UPDATE), and the
# earning. A conflicting key inserts no operation and so nothing that hangs off it; the
# caller rolls the member update back.
_LOT = insert_selecting(
    lots,
    {"program_id": PROGRAM, "member_id": MEMBER, "operation_id": RECORDED_OPERATION.c.id},
    prefix="lots_",
    defaults=("held", "frozen", "expired_at"),
).returning(lots.c.id, lots.c.operation_id)
_NEW_LOT = _LOT.cte("lot")
_LOT_ENTRY = {
    "program_id": PROGRAM,
    "member_id": MEMBER,
    "operation_id": _NEW_LOT.c.operation_id,
    "lot_id": _NEW_LOT.c.id,
    "kind": bindparam("entry_kind", type_=entries.c.kind.type),
    **{f"{b}_delta": bindparam(f"d_{b}", type_=entries.c[f"{b}_delta"].type) for b in DELTAS},
    "created_at": AT,
}
_CREDIT_PG_CTES = (
    _NEW_LOT,
    insert_selecting(entries, _LOT_ENTRY).cte("posted"),
    UPDATE_MEMBER_AFTER_EARN.cte("balanced"),
    insert_selecting(
        earnings,
        {
            "program_id": PROGRAM,
            "member_id": MEMBER,
            "operation_id": _NEW_LOT.c.operation_id,
            "lot_id": _NEW_LOT.c.id,
            "created_at": AT,
        },
        prefix="earnings_",
    ).cte("earned"),
    insert_selecting(
        tier_qualifying,
        {
            "program_id": PROGRAM,
            "member_id": MEMBER,
            "operation_id": _NEW_LOT.c.operation_id,
            "counted_at": AT,
            "created_at": AT,
        },
        prefix="q_",
    ).cte("qualified"),
    insert_selecting(
        events,
        {"program_id": PROGRAM, "member_id": MEMBER, "operation_id": _NEW_LOT.c.operation_id},
        prefix="ev_",
        defaults=("dispatched_at",),
    ).cte("evented"),
)
_CREDIT_PG = select(RECORDED_OPERATION.c.id).add_cte(*_CREDIT_PG_CTES)
_CREDIT_PG_MEASURING: dict[int, Any] = {}


def _credit_pg(rules: TierRules | None) -> Any:
    """:data:`_CREDIT_PG`, or with ``rules`` the same statement also answering the member's
    tier measure before this earn (its snapshot sees every earn committed before the lock)."""
    if rules is None:
        return _CREDIT_PG
    variant, measure = measure_column(rules, MEMBER)
    stmt = _CREDIT_PG_MEASURING.get(variant)
    if stmt is None:
        stmt = _CREDIT_PG.add_columns(measure.label("measured"))
        _CREDIT_PG_MEASURING[variant] = stmt
    return stmt


def _credit_in_one_statement(
    conn: Connection, row: LockedMember, rows: _CreditRows
) -> tuple[int, int | None]:
    """The credit as :data:`_CREDIT_PG` (PostgreSQL), when it makes a new lot and there is
    no debt to repay; else in steps. Returns the operation's id and, when the credit reads
    it, the member's tier measure before this earn."""
    if not rows.lot["points"] or row.debt or rows.qualifying is None:
        return _credit_in_steps(conn, row, rows)
    earned = Move(
        rows.entry_kind, None, available=rows.lot["available"], pending=rows.lot["pending"]
    )
    op = rows.operation
    params = {
        "program": row.program_id,
        "member": row.id,
        "at": op["at"],
        **operation_params(op["key"], op["kind"], op["req_hash"], op["result"]),
        **prefixed("lots_", rows.lot),
        "entry_kind": rows.entry_kind,
        **member_totals([earned]),
        **rows.member,
        **prefixed("earnings_", rows.earning),
        **prefixed("q_", rows.qualifying),
        **event_params(rows.event),
    }
    if rows.measuring is not None:
        params["measured_since"] = rows.tier_since
    found = conn.execute(_credit_pg(rows.measuring), params).first()
    if found is None or found[0] is None:
        raise LostRace(row.program_id)
    return int(found[0]), None if rows.measuring is None else int(found[1])


_CREDIT = PerDialect(postgresql=_credit_in_one_statement, sqlite=_credit_in_steps)


def where_earned(location: str | None, device: str | None) -> dict[str, str]:
    """The location and device an earn names, checked, as its request records them (only
    those given, so the requests of earlier versions keep their fingerprints)."""
    given = {"location": location, "device": device}
    return {
        name: require_text(name, value, max_length=128)
        for name, value in given.items()
        if value is not None
    }


def earn_purchase(
    db: Target,
    *,
    program: str,
    member: str,
    order_id: str,
    currency: str,
    amount_minor: int | None = None,
    lines: OrderLines | None = None,
    paid_with_points_minor: int = 0,
    idempotency_key: str | None = None,
    location: str | None = None,
    device: str | None = None,
) -> EarnResult:
    """Credit the points an order earns, once per order.

    Pass the order's total as ``amount_minor``, or its ``lines`` (amount, SKU, category) so
    per-category and per-SKU ratios apply. The part paid with points earns nothing. The key
    defaults to ``earn:<order_id>``. ``location`` (a store, a till) and ``device`` are what
    risk control's velocity rules count per location or device.
    """
    program = require_program_code(program)
    member = require_member_id(member)
    order_id = require_order_id(order_id)
    parsed = order_lines(amount_minor, lines)
    require_minor_units("paid_with_points_minor", paid_with_points_minor, minimum=0)
    total = sum(line.amount_minor for line in parsed)
    place = {"location": None, "device": None, **where_earned(location, device)}
    write = LedgerWrite.of(
        "earn_purchase",
        key=resolve_key(idempotency_key, f"earn:{order_id}"),
        result_type=EarnResult,
        request={
            "program": program,
            "member": member,
            "order_id": order_id,
            "currency": str(currency).upper(),
            "paid": paid_with_points_minor,
            "lines": [(x.amount_minor, x.sku, x.category) for x in parsed],
            **{k: v for k, v in place.items() if v is not None},
        },
    )
    now = db.clock.now()

    def work(conn: Connection) -> EarnResult | StoredResult:
        row = write.lock(
            conn,
            program,
            member,
            at=now,
            extra={**ORDER_EARNED, **TIER_VERSION},
            params={"order_id": order_id},
        )
        if isinstance(row, StoredResult):
            return row
        cur = require_currency(currency, row.program_currency)
        if cast(_Earner, row).order_earned is not None:
            raise AlreadyExists(
                f"order {order_id!r} has already earned points under another idempotency key",
                order_id=order_id,
            )
        version, rules = rule_cache(db).get(conn, row.rule_version_id)
        plan = tier_plan(db, conn, row, now)
        requested = price_purchase(
            rules,
            parsed,
            paid_with_points_minor=paid_with_points_minor,
            at=now,
            timezone=row.program_timezone,
            currency=cur,
            rounding=row.program_rounding,
            tier_multiplier=plan.multiplier,
        )
        grant = _grant(conn, row, rules, requested, now)
        check_earn(db, conn, row, points=grant.decision.granted, now=now, **place)
        result = _credit(
            conn,
            row,
            rules=rules,
            version=version,
            grant=grant,
            source="purchase",
            reference=order_id,
            write=write,
            now=now,
            pending_days=rules.pending_days,
            earning={
                "order_id": order_id,
                "amount_minor": total,
                "points_paid_minor": paid_with_points_minor,
                "currency": cur,
                **place,
            },
            money_minor=total - paid_with_points_minor,
            plan=plan,
        )
        weights = part_weights(rules, parsed, at=now, tz=row.program_timezone)
        _record_parts(
            conn, row.program_id, order_id, split_points(grant.decision.granted, weights), now
        )
        return result

    return write.run(db, work)


def _record_parts(
    conn: Connection,
    program_id: int,
    order_id: str,
    parts: Sequence[EarningPart],
    now: dt.datetime,
) -> None:
    """Store an order's points by category and campaign (nothing for an order without any)."""
    if parts:
        conn.execute(
            INSERT_PARTS,
            [
                {
                    "program_id": program_id,
                    "part_program_id": program_id,
                    "part_order_id": order_id,
                    "category": part.category,
                    "campaign": part.campaign,
                    "points": part.points,
                    "bonus": part.bonus,
                    "created_at": now,
                }
                for part in parts
            ],
        )


def earn_action(
    db: Target,
    *,
    program: str,
    member: str,
    action: str,
    reference: str,
    idempotency_key: str | None = None,
    location: str | None = None,
    device: str | None = None,
) -> EarnResult:
    """Credit the fixed points of a named action (sign-in, review, share, referral…).

    ``reference`` names this occurrence (a review id, a date); the key defaults to
    ``action:<action>:<member>:<reference>``. An action over its frequency limit earns 0 with
    ``capped_by="action_limit"``.
    """
    program = require_program_code(program)
    member = require_member_id(member)
    action = require_text("action", action, max_length=100)
    require_key(reference, name="reference")
    write = LedgerWrite.of(
        "earn_action",
        key=resolve_key(idempotency_key, f"action:{action}:{member}:{reference}"),
        result_type=EarnResult,
        request={
            "program": program,
            "member": member,
            "action": action,
            "reference": reference,
            **where_earned(location, device),
        },
    )
    place = {"location": None, "device": None, **where_earned(location, device)}
    now = db.clock.now()

    def work(conn: Connection) -> EarnResult | StoredResult:
        row = write.lock(conn, program, member, at=now, extra=TIER_VERSION)
        if isinstance(row, StoredResult):
            return row
        version, rules = rule_cache(db).get(conn, row.rule_version_id)
        plan = tier_plan(db, conn, row, now)
        rule = rules.actions.get(action)
        if rule is None:
            known = ", ".join(sorted(rules.actions)) or "none"
            raise InvalidInput(
                f"no action rule named {action!r} (known actions: {known})", action=action
            )
        points = rule.points
        if plan.tiers is not None:
            points = plan.tiers.rules.earn_points(points, plan.tier, Rounding(row.program_rounding))
        if _over_limit(conn, row, action, rule.limit, rule.period, now):
            grant = _Grant(
                points, CapDecision(0, "action_limit"), periods(now, row.program_timezone)
            )
        else:
            grant = _grant(conn, row, rules, points, now)
        check_earn(db, conn, row, points=grant.decision.granted, now=now, **place)
        return _credit(
            conn,
            row,
            rules=rules,
            version=version,
            grant=grant,
            source="action",
            reference=reference,
            write=write,
            now=now,
            pending_days=0,
            earning={"action": action, **place},
            plan=plan,
        )

    return write.run(db, work)


def _over_limit(
    conn: Connection,
    row: LockedMember,
    action: str,
    limit: int | None,
    period: str,
    now: dt.datetime,
) -> bool:
    if limit is None:
        return False
    since = start_of_period(now, row.program_timezone, period)
    conditions = [
        earnings.c.member_id == row.id,
        earnings.c.action == action,
        or_(earnings.c.capped_by.is_(None), earnings.c.capped_by != "action_limit"),
    ]
    if since is not None:
        conditions.append(earnings.c.created_at >= since)
    used = conn.execute(select(func.count()).select_from(earnings).where(and_(*conditions)))
    return int(used.scalar_one()) >= limit


def price_purchase(
    rules: RuleSet,
    lines: Sequence[OrderLine],
    *,
    paid_with_points_minor: int,
    at: dt.datetime,
    timezone: str,
    currency: str,
    rounding: str,
    tier_multiplier: Any = 1,
) -> int:
    """What ``lines`` earn under ``rules`` at ``at``, before caps: the one pricing of an order.

    Earning, quotes and the console's preview of draft rules all price orders here, with the
    program's time zone, currency (its minor unit), rounding policy and the member's tier
    multiplier (an exact fraction; 1 without tiers).
    """
    points = purchase_points(
        rules,
        lines,
        paid_with_points_minor=paid_with_points_minor,
        at=at,
        tz=timezone,
        exponent=minor_unit_exponent(currency),
        rounding=Rounding(rounding),
        tier_multiplier=Fraction(tier_multiplier),
    )
    if points > MAX_POINTS:
        raise InvalidAmount(
            f"the order would earn {points} points; one earn grants at most {MAX_POINTS}",
            field="points",
            maximum=MAX_POINTS,
        )
    return points


def quote_purchase(
    db: Target,
    *,
    program: str,
    currency: str,
    amount_minor: int | None = None,
    lines: OrderLines | None = None,
    paid_with_points_minor: int = 0,
    member: str | None = None,
) -> EarnQuote:
    """What an order would earn now under the rules in force; writes nothing.

    With ``member``, the quote also applies that member's caps and the program's budget.
    """
    program = require_program_code(program)
    member = None if member is None else require_member_id(member)
    parsed = order_lines(amount_minor, lines)
    require_minor_units("paid_with_points_minor", paid_with_points_minor, minimum=0)
    now = db.clock.now()
    with db.read() as conn:
        prog = program_row(conn, program)
        cur = require_currency(currency, prog.currency)
        version_id = conn.execute(select(rule_version_at(prog.id)), {"at": now}).scalar_one()
        version, rules = rule_cache(db).get(conn, version_id)
        points = price_purchase(
            rules,
            parsed,
            paid_with_points_minor=paid_with_points_minor,
            at=now,
            timezone=prog.timezone,
            currency=cur,
            rounding=prog.rounding,
        )
        decision = CapDecision(points, None)
        tier = multiplier = None
        if member is not None:
            mrow = _quote_member(conn, prog, member)
            tiers = tiers_at(db, conn, prog.id, now)
            if tiers is not None:
                tier = tiers.rules.tier(mrow.tier).code if tiers.rules.knows(mrow.tier) else None
                factor = tiers.rules.multiplier(mrow.tier)
                multiplier = format_ratio(factor)
                points = price_purchase(
                    rules,
                    parsed,
                    paid_with_points_minor=paid_with_points_minor,
                    at=now,
                    timezone=prog.timezone,
                    currency=cur,
                    rounding=prog.rounding,
                    tier_multiplier=factor,
                )
            decision = _quote_caps(conn, prog, mrow, rules, points, now)
    return EarnQuote(
        points=points,
        points_after_caps=decision.granted,
        capped_by=decision.capped_by,
        rule_version=version,
        tier=tier,
        tier_multiplier=multiplier,
    )


def _quote_member(conn: Connection, prog: Row[Any], member: str) -> Row[Any]:
    row = conn.execute(
        select(members).where(members.c.program_id == prog.id, members.c.external_id == member)
    ).first()
    if row is None:
        raise MemberNotFound(f"no member {member!r} in program {prog.code!r}", member=member)
    return row


def _quote_caps(
    conn: Connection, prog: Row[Any], row: Row[Any], rules: RuleSet, points: int, now: dt.datetime
) -> CapDecision:
    span = periods(now, prog.timezone)
    decision = apply_member_caps(points, rules.caps, _usage(row), span)
    if decision.granted and rules.caps.program_daily is not None:
        issued = (
            conn.execute(
                select(issuance.c.issued).where(
                    issuance.c.program_id == prog.id, issuance.c.day == span.day
                )
            ).scalar()
            or 0
        )
        budget = apply_program_budget(decision.granted, rules.caps.program_daily, issued)
        if budget.granted < decision.granted:
            decision = budget
    return decision
