"""Redeeming rewards: spend points, take stock and issue a code, voucher, item or draw in one
transaction; then fulfil or cancel.

:func:`redeem_reward` is a ledger write like the others (member lock, idempotency key, one
operation): it takes the points soonest-expiring first (the allocation of holds), takes the
stock with a conditional update (so concurrent redemptions never oversell: the update that
would go below zero changes nothing and answers :class:`OutOfStock`), and records the
redemption. :func:`cancel_redemption` puts the points back into the lots they came from, with
their original expiry (points of a lot that expired meanwhile expire again at once, as for a
refunded order), and the stock. :func:`advance_fulfilment` moves an item through
``issued -> packing -> shipped -> delivered``. Every change after the redemption is recorded
as a reward event and in the audit log.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from loyalty.db.tables import (
    entries,
    lots,
    members,
    operations,
    programs,
    reward_codes,
    reward_events,
    reward_redemptions,
    reward_versions,
    rewards,
    vouchers,
)
from loyalty.domain.calendar import end_of_local_day_after
from loyalty.domain.checks import require_int, require_member_id, require_text
from loyalty.domain.moves import Move
from loyalty.domain.rewards import (
    OPEN_STATES,
    RewardTerms,
    Usage,
    draw_value,
    generate_codes,
    new_draw_seed,
    next_state,
    pick_prize,
    require_quantity,
    require_reward_code,
    unavailable_reasons,
)
from loyalty.errors import (
    FulfilmentConflict,
    InsufficientPoints,
    InvalidInput,
    LoyaltyError,
    MemberNotFound,
    OutOfStock,
    RewardLimit,
    RewardRedemptionNotFound,
    RewardUnavailable,
)
from loyalty.events.outbox import emit_current
from loyalty.services.audit import record_audit
from loyalty.services.ledger import LostRace, record_and_post
from loyalty.services.lots import take_spendable
from loyalty.services.reward_results import (
    BulkOutcome,
    DrawOutcome,
    RedemptionPage,
    RewardEventInfo,
    RewardRedemptionResult,
    VoucherInfo,
)
from loyalty.services.rewards import TermsCache, redeeming_tier, reward_row, usage_by_reward
from loyalty.services.tiers import TierState, catch_up, tier_cache, tier_version_at
from loyalty.services.uow import Target
from loyalty.services.writes import (
    LedgerWrite,
    LockedMember,
    StoredResult,
    lock_member,
    program_row,
    resolve_key,
)

SHIPPING_FIELDS = ("name", "phone", "address", "city", "postcode", "country")
MAX_PAGE = 200
_VOUCHER_PREFIX = "V-"


def _shipping(value: Mapping[str, Any] | None, kind: str) -> dict[str, str] | None:
    """A shipping address for an item: ``name``, ``phone`` and ``address`` required,
    ``city``, ``postcode`` and ``country`` optional; refused for other kinds."""
    if kind != "item":
        if value:
            raise InvalidInput("only an item is shipped; leave out the shipping address")
        return None
    if not isinstance(value, Mapping):
        raise InvalidInput(
            "an item needs a shipping address: name, phone and address", field="shipping"
        )
    unknown = sorted(set(value) - set(SHIPPING_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown shipping fields: {', '.join(map(str, unknown))}")
    out: dict[str, str] = {}
    for name in SHIPPING_FIELDS:
        raw = value.get(name)
        if raw is None or raw == "":
            if name in ("name", "phone", "address"):
                raise InvalidInput(f"the shipping address needs a {name}", field=f"shipping.{name}")
            continue
        out[name] = require_text(f"shipping.{name}", raw, max_length=300, multiline=True)
    return out


def _refuse(reasons: Sequence[str], reward: str, quantity: int, price: int, has: int) -> None:
    """Raise the error that says best why the member cannot redeem."""
    if not reasons:
        return
    limits = [r for r in reasons if r.startswith("limit_")]
    if "out_of_stock" in reasons:
        raise OutOfStock(f"reward {reward!r} has fewer than {quantity} left", reward=reward)
    if limits:
        period = limits[0].removeprefix("limit_")
        raise RewardLimit(
            f"you reached the limit of reward {reward!r} per {period}",
            reward=reward,
            period=period,
        )
    if reasons == ["insufficient_points"]:
        raise InsufficientPoints(
            f"reward {reward!r} costs {price * quantity:,} points; the member has {has:,}",
            reward=reward,
            needed=price * quantity,
            available=has,
        )
    raise RewardUnavailable(
        f"reward {reward!r} cannot be redeemed now: {', '.join(reasons)}",
        reward=reward,
        reasons=list(reasons),
    )


_KEY_STORED = select(operations.c.id).where(
    operations.c.program_id == bindparam("program_id"), operations.c.key == bindparam("key")
)


def _lost_race_if_stored(conn: Connection, program_id: int, key: str) -> None:
    """Raise :class:`LostRace` if ``key`` is stored now. On PostgreSQL the member lock reads
    the key in the snapshot taken before the lock was granted, so a retry that waited for the
    first call misses its operation and would be refused (the last one gone, the limit
    reached, the redemption cancelled) instead of answering the first result."""
    if conn.execute(_KEY_STORED, {"program_id": program_id, "key": key}).first() is not None:
        raise LostRace(program_id)


_TAKE_STOCK = (
    update(rewards)
    .where(rewards.c.id == bindparam("reward"), rewards.c.stock_left >= bindparam("quantity"))
    .values(stock_left=rewards.c.stock_left - bindparam("quantity"))
)
# Hand out the pool's next free codes to a redemption in one statement. On PostgreSQL the free
# codes are locked and concurrent redemptions skip them (the reward's stock update already
# lets only as many redemptions through as there are free codes).
_FREE_CODES = (
    select(reward_codes.c.id)
    .where(
        reward_codes.c.reward_id == bindparam("pool"),
        reward_codes.c.redemption_id.is_(None),
    )
    .order_by(reward_codes.c.id)
    .limit(bindparam("quantity"))
    .with_for_update(skip_locked=True)
)
_ISSUE_CODES = (
    update(reward_codes)
    .where(reward_codes.c.id.in_(_FREE_CODES.scalar_subquery()))
    .values(redemption_id=bindparam("to_redemption"), issued_at=bindparam("at"))
    .returning(reward_codes.c.id, reward_codes.c.code)
)
# What redeeming reads of the locked member and its program, and with the same statement the
# id of the tier version in force (``NULL``: the program has no tiers).
_REDEEMER = ("available", "tier", "tier_evaluate_at", "program_timezone", "program_currency")
_TIER_VERSION = {"tier_version_id": tier_version_at(programs.c.id)}
_INSERT_REDEMPTION = insert(reward_redemptions).returning(reward_redemptions.c.id)
_STORE_RESULT = (
    update(operations)
    .where(operations.c.id == bindparam("operation_id"))
    .values(result=bindparam("stored", type_=operations.c.result.type))
)


def _take_stock(conn: Connection, reward: Row[Any], quantity: int) -> int:
    """Take ``quantity`` from a limited stock (0 taken for an unlimited one); a conditional
    update, so it never goes below zero under concurrency: :class:`OutOfStock` when short."""
    if reward.stock_left is None:
        return 0
    done = conn.execute(_TAKE_STOCK, {"reward": reward.id, "quantity": quantity})
    if done.rowcount != 1:
        raise OutOfStock(
            f"reward {reward.code!r} has fewer than {quantity} left", reward=reward.code
        )
    return quantity


def redeem_reward(
    db: Target,
    *,
    program: str,
    member: str,
    reward: str,
    quantity: int = 1,
    idempotency_key: str | None = None,
    shipping: Mapping[str, Any] | None = None,
) -> RewardRedemptionResult:
    """Spend the member's points on ``quantity`` of a reward, in one transaction.

    The member redeems as the tier they hold now: a reward limited to other tiers is refused
    (reason ``tier``) and a tier's own price is charged. Points come from the
    soonest-expiring lots first; the stock (or the coupon pool) is taken; codes, vouchers or
    a draw's prize are issued. Refused with a specific error and nothing
    changed: :class:`OutOfStock`, :class:`RewardLimit`, :class:`InsufficientPoints`,
    :class:`RewardUnavailable`. Without a key every call is a new redemption; pass one to
    make retries safe.
    """
    program_code = program
    member = require_member_id(member)
    reward = require_reward_code(reward)
    quantity = require_quantity(quantity)
    key = resolve_key(idempotency_key, f"reward:{uuid.uuid4().hex}")
    request = {"member": member, "reward": reward, "quantity": quantity, "shipping": shipping}
    write = LedgerWrite.of(
        "reward_redeem", key=key, request=request, result_type=RewardRedemptionResult
    )
    now = db.clock.now()
    cached_terms = db.cache(TermsCache)

    def work(conn: Connection) -> RewardRedemptionResult | StoredResult:
        row = write.lock(conn, program_code, member, at=now, only=_REDEEMER, extra=_TIER_VERSION)
        if isinstance(row, StoredResult):
            return row
        item = reward_row(conn, row.program_id, reward, now)
        terms = cached_terms.get(item)
        tier = _redeeming_tier(db, conn, row, now)
        address = _shipping(shipping, item.kind)
        if item.kind == "draw" and quantity != 1:
            raise InvalidInput("a draw is redeemed one at a time (quantity 1)", field="quantity")
        usage = Usage()  # none yet still counts this quantity against the limits
        if terms.limits:
            found = usage_by_reward(conn, row.id, now, row.program_timezone, item.id)
            usage = found.get(item.id, usage)
        reasons = unavailable_reasons(
            terms,
            now=now,
            retired=item.retired_at is not None,
            stock_left=item.stock_left,
            quantity=quantity,
            available_points=row.available,
            usage=usage,
            tier=tier,
        )
        price = terms.price(tier)
        points = price * quantity
        try:
            _refuse(reasons, reward, quantity, price, row.available)
            taken = take_spendable(conn, row.id, now, points) if points else []
        except LoyaltyError:
            _lost_race_if_stored(conn, row.program_id, write.key)
            raise
        op_id = record_and_post(
            conn,
            program_id=row.program_id,
            member_id=row.id,
            key=write.key,
            kind=write.kind,
            req_hash=write.req_hash,
            result={},
            moves=[Move("reward_spend", lot_id, available=-take) for lot_id, take in taken],
            at=now,
        )
        # the stock is taken last, so a popular reward's row stays locked for the shortest time
        issued = _Issue(conn, row, now, op_id, cached_terms)
        result = issued.redemption(item, terms, quantity, points, address)
        conn.execute(_STORE_RESULT, {"operation_id": op_id, "stored": result.to_record()})
        _emit_reward(
            conn,
            "reward.redeemed",
            program_code,
            row.id,
            (write.kind, write.key),
            op_id,
            result,
            now,
        )
        return result

    return write.run(db, work)


class _Redeemer(LockedMember, Protocol):
    """A member locked with :data:`_REDEEMER` and :data:`_TIER_VERSION`."""

    tier_version_id: int | None


def _redeeming_tier(
    db: Target, conn: Connection, row: LockedMember, now: dt.datetime
) -> str | None:
    """The tier the locked member redeems as (``None``: the program has no tiers now), after
    any tier evaluation that is due and that the sweep has not done yet."""
    redeemer = cast(_Redeemer, row)
    if redeemer.tier_version_id is None:
        return None
    _version, rules = tier_cache(db).get(conn, redeemer.tier_version_id)
    held = redeemer.tier
    if redeemer.tier_evaluate_at is not None and redeemer.tier_evaluate_at <= now:
        member = conn.execute(select(members).where(members.c.id == row.id)).one()
        held = catch_up(conn, db, TierState.of(member), row.program_timezone, now).tier
    return redeeming_tier(rules, held)


class _Issue:
    """Issues what a redemption gives, inside the redeeming write (member locked)."""

    def __init__(
        self,
        conn: Connection,
        row: LockedMember,
        now: dt.datetime,
        op_id: int,
        terms: TermsCache,
    ):
        self.conn, self.row, self.now, self.op_id, self.terms = conn, row, now, op_id, terms

    def redemption(
        self,
        item: Row[Any],
        terms: RewardTerms,
        quantity: int,
        points: int,
        address: dict[str, str] | None,
        *,
        parent: int | None = None,
    ) -> RewardRedemptionResult:
        """Take the stock, insert the redemption and issue its codes, vouchers or draw."""
        stock = _take_stock(self.conn, item, quantity)
        redemption_id = self.conn.execute(
            _INSERT_REDEMPTION,
            dict(
                program_id=self.row.program_id,
                member_id=self.row.id,
                reward_id=item.id,
                reward_version_id=item.version_id,
                operation_id=self.op_id,
                parent_id=parent,
                quantity=quantity,
                points=points,
                stock_taken=stock,
                stock_returned=0,
                status="issued",
                shipping=address,
                created_at=self.now,
                updated_at=self.now,
            ),
        ).scalar_one()
        codes: tuple[str, ...] = ()
        issued_vouchers: tuple[VoucherInfo, ...] = ()
        draw = None
        prize = None
        if item.kind == "coupon":
            codes = self._codes(item, redemption_id, quantity)
        elif item.kind == "voucher":
            issued_vouchers = self._vouchers(item, terms, redemption_id, quantity)
        elif item.kind == "draw":
            draw, prize = self._draw(terms, redemption_id)
        return RewardRedemptionResult(
            id=int(redemption_id),
            member=self.row.external_id,
            reward=item.code,
            kind=item.kind,
            name=terms.name,
            version=item.version,
            quantity=quantity,
            points=points,
            status="issued",
            created_at=self.now,
            codes=codes,
            vouchers=issued_vouchers,
            draw=draw,
            shipping=address,
            parent=parent,
            prize=prize,
            updated_at=self.now,
        )

    def _codes(self, item: Row[Any], redemption_id: int, quantity: int) -> tuple[str, ...]:
        params = {
            "pool": item.id,
            "quantity": quantity,
            "to_redemption": redemption_id,
            "at": self.now,
        }
        issued = sorted(self.conn.execute(_ISSUE_CODES, params).all())
        if len(issued) < quantity:
            raise OutOfStock(f"reward {item.code!r} has no coupons left", reward=item.code)
        return tuple(c.code for c in issued)

    def _vouchers(
        self, item: Row[Any], terms: RewardTerms, redemption_id: int, quantity: int
    ) -> tuple[VoucherInfo, ...]:
        until = end_of_local_day_after(
            self.now, self.row.program_timezone, terms.voucher_valid_days - 1
        )
        made = []
        for code in generate_codes(quantity, length=12, prefix=_VOUCHER_PREFIX):
            self.conn.execute(
                insert(vouchers).values(
                    program_id=self.row.program_id,
                    member_id=self.row.id,
                    redemption_id=redemption_id,
                    code=code,
                    amount_minor=terms.voucher_amount_minor,
                    currency=self.row.program_currency,
                    valid_from=self.now,
                    valid_until=until,
                    status="active",
                    created_at=self.now,
                )
            )
            made.append(
                VoucherInfo(
                    code=code,
                    amount_minor=terms.voucher_amount_minor,
                    currency=self.row.program_currency,
                    valid_from_at=self.now,
                    valid_until_at=until,
                    status="active",
                    member=self.row.external_id,
                    reward=item.code,
                )
            )
        return tuple(made)

    def _draw(
        self, terms: RewardTerms, redemption_id: int
    ) -> tuple[DrawOutcome, RewardRedemptionResult | None]:
        seed = new_draw_seed()
        value = draw_value(seed)
        drawn = pick_prize(terms.prizes, value)
        prize_result = None
        reason = "no_prize"
        if drawn is not None:
            prize_result, reason = self._award(drawn.reward, redemption_id)
        outcome = DrawOutcome(
            seed=seed,
            value=value,
            drawn=drawn.reward if drawn else None,
            awarded=prize_result.reward if prize_result else None,
            reason=reason,
            prize_redemption=prize_result.id if prize_result else None,
            label=(drawn.label if drawn else ""),
        )
        self.conn.execute(
            update(reward_redemptions)
            .where(reward_redemptions.c.id == redemption_id)
            .values(draw=outcome.to_record())
        )
        return outcome, prize_result

    def _award(self, code: str, parent: int) -> tuple[RewardRedemptionResult | None, str]:
        """Issue one of a prize (no points of its own); a prize that ran out awards nothing."""
        item = reward_row(self.conn, self.row.program_id, code, self.now)
        terms = self.terms.get(item)
        if item.retired_at is not None:
            return None, "prize_retired"
        savepoint = self.conn.begin_nested()
        try:
            result = self.redemption(item, terms, 1, 0, None, parent=parent)
        except OutOfStock:
            savepoint.rollback()
            return None, "prize_out_of_stock"
        savepoint.commit()
        return result, "won"


def _locate(conn: Connection, program_id: int, redemption_id: int) -> Row[Any]:
    row = conn.execute(
        select(
            reward_redemptions,
            rewards.c.code.label("reward_code"),
            rewards.c.kind,
            members.c.external_id.label("member_external_id"),
            reward_versions.c.version,
            reward_versions.c.terms,
        )
        .join(rewards, rewards.c.id == reward_redemptions.c.reward_id)
        .join(members, members.c.id == reward_redemptions.c.member_id)
        .join(reward_versions, reward_versions.c.id == reward_redemptions.c.reward_version_id)
        .where(
            reward_redemptions.c.program_id == program_id,
            reward_redemptions.c.id == redemption_id,
        )
    ).first()
    if row is None:
        raise RewardRedemptionNotFound(
            f"no reward redemption {redemption_id} in this program", redemption=redemption_id
        )
    return row


def _emit_reward(
    conn: Connection,
    type_: str,
    program: str,
    member_id: int,
    operation: tuple[str, str] | None,
    operation_id: int | None,
    result: RewardRedemptionResult,
    at: dt.datetime,
    *,
    points: int | None = None,
    **fields: Any,
) -> None:
    """A reward event: redeemed (the points it cost), or a fulfilment change (with the
    points a cancellation gave back)."""
    record = result.to_record()
    record.pop("events", None)
    emit_current(
        conn,
        type_,
        member_id=member_id,
        operation=operation,
        operation_id=operation_id,
        points=result.points if points is None else points,
        at=at,
        redemption=record,
        **fields,
    )


def record_reward_event(
    conn: Connection,
    redemption_id: int,
    event: str,
    *,
    actor: str,
    at: dt.datetime,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    order_id: str | None = None,
) -> None:
    conn.execute(
        insert(reward_events).values(
            redemption_id=redemption_id,
            event=event,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            reason=reason,
            order_id=order_id,
            created_at=at,
        )
    )


def cancel_redemption(
    db: Target,
    *,
    program: str,
    redemption: int,
    reason: str,
    actor: str,
    idempotency_key: str | None = None,
) -> RewardRedemptionResult:
    """Cancel a redemption that was not delivered (a coupon never used, a voucher not used,
    an item not yet delivered): the points go back into the lots they came from, with their
    original expiry, and the stock back to the reward (a coupon's code is void, never issued
    again). A draw cannot be cancelled (its chance was used); its prize can."""
    redemption = require_int("redemption", redemption)
    reason = require_text("reason", reason, max_length=500, multiline=True)
    actor = require_text("actor", actor, max_length=120)
    key = resolve_key(idempotency_key, f"reward-cancel:{redemption}")
    write = LedgerWrite.of(
        "reward_cancel",
        key=key,
        request={"redemption": redemption, "reason": reason},
        result_type=RewardRedemptionResult,
    )
    now = db.clock.now()

    def work(conn: Connection) -> RewardRedemptionResult | StoredResult:
        prog = program_row(conn, program)
        found = _locate(conn, prog.id, redemption)
        row = lock_member(conn, program, found.member_external_id, key=key, at=now)
        done = write.replayed(conn, row)
        if done is not None:
            return done
        current = _locate(conn, prog.id, redemption)  # read again under the member lock
        if current.kind == "draw":
            raise FulfilmentConflict(
                f"redemption {redemption} is a draw; a draw cannot be cancelled (cancel its "
                "prize instead)",
                redemption=redemption,
            )
        try:
            next_state(current.kind, current.status, "cancelled", redemption=str(redemption))
        except FulfilmentConflict:
            _lost_race_if_stored(conn, row.program_id, write.key)
            raise
        _refuse_used_voucher(conn, current)
        moves = _returns(conn, current)
        op_id = record_and_post(
            conn,
            program_id=row.program_id,
            member_id=row.id,
            key=write.key,
            kind=write.kind,
            req_hash=write.req_hash,
            result={},
            moves=moves,
            at=now,
        )
        returned_stock = 0 if current.kind == "coupon" else current.stock_taken
        if returned_stock:
            conn.execute(
                update(rewards)
                .where(rewards.c.id == current.reward_id)
                .values(stock_left=rewards.c.stock_left + returned_stock)
            )
        conn.execute(
            update(reward_redemptions)
            .where(reward_redemptions.c.id == redemption)
            .values(
                status="cancelled",
                cancel_operation_id=op_id,
                stock_returned=returned_stock,
                updated_at=now,
            )
        )
        conn.execute(
            update(vouchers)
            .where(vouchers.c.redemption_id == redemption)
            .values(status="cancelled")
        )
        record_reward_event(
            conn,
            redemption,
            "status",
            actor=actor,
            at=now,
            from_status=current.status,
            to_status="cancelled",
            reason=reason,
        )
        record_audit(
            conn,
            actor=actor,
            action="reward.cancel",
            target=f"redemption:{redemption}",
            at=now,
            program_id=prog.id,
            before={"status": current.status},
            after={"status": "cancelled", "reason": reason, "points_returned": current.points},
        )
        result = _result(conn, _locate(conn, prog.id, redemption))
        conn.execute(
            update(operations)
            .where(operations.c.id == op_id)
            .values(result={**result.to_record(), "reason": reason, "actor": actor})
        )
        _emit_reward(
            conn,
            "reward.fulfilment_changed",
            prog.code,
            row.id,
            (write.kind, write.key),
            op_id,
            result,
            now,
            points=sum(m.available for m in moves if m.kind == "reward_return"),
            from_status=current.status,
            reason=reason,
        )
        return result

    return write.run(db, work)


def _refuse_used_voucher(conn: Connection, redemption: Row[Any]) -> None:
    used = conn.execute(
        select(vouchers.c.code, vouchers.c.order_id).where(
            vouchers.c.redemption_id == redemption.id, vouchers.c.status == "used"
        )
    ).first()
    if used is not None:
        raise FulfilmentConflict(
            f"voucher {used.code} was used on order {used.order_id}; release it from that "
            "order (refund the order) before cancelling",
            redemption=redemption.id,
            voucher=used.code,
        )


_SPENT = (
    select(entries.c.lot_id, (-entries.c.available_delta).label("points"), lots.c.expired_at)
    .join(lots, lots.c.id == entries.c.lot_id)
    .order_by(entries.c.id)
)


def _returns(conn: Connection, redemption: Row[Any]) -> list[Move]:
    """Moves giving a redemption's points back into the lots they were spent from."""
    if not redemption.points:
        return []
    spent = conn.execute(
        _SPENT.where(
            entries.c.operation_id == redemption.operation_id,
            entries.c.kind == "reward_spend",
        )
    ).all()
    moves: list[Move] = []
    for lot_id, points, expired_at in spent:
        moves.append(Move("reward_return", lot_id, available=int(points)))
        if expired_at is not None:  # the lot expired meanwhile: the points expire again
            moves.append(Move("expire_returned", lot_id, available=-int(points)))
    return moves


def advance_fulfilment(
    db: Target,
    *,
    program: str,
    redemption: int,
    status: str,
    actor: str,
    reason: str | None = None,
) -> RewardRedemptionResult:
    """Move an item's redemption to ``status`` (``packing``, ``shipped``, ``delivered``).
    Asking for the state it is in already answers it unchanged (``replayed``); cancelling
    goes through :func:`cancel_redemption`, which returns the points."""
    redemption = require_int("redemption", redemption)
    actor = require_text("actor", actor, max_length=120)
    note = require_text("reason", reason, max_length=500, multiline=True) if reason else None
    if status == "cancelled":
        raise InvalidInput("cancel with cancel_redemption, which returns the points")
    now = db.clock.now()
    with db.write() as conn:
        prog = program_row(conn, program)
        # the member first, as every write does (the event joins the member's order)
        member_id = _locate(conn, prog.id, redemption).member_id
        conn.execute(select(members.c.id).where(members.c.id == member_id).with_for_update())
        current = conn.execute(
            select(reward_redemptions.c.status)
            .where(
                reward_redemptions.c.program_id == prog.id,
                reward_redemptions.c.id == redemption,
            )
            .with_for_update()
        ).first()
        found = _locate(conn, prog.id, redemption)
        assert current is not None
        if found.status == status:
            return _result(conn, found, replayed=True)
        next_state(found.kind, found.status, status, redemption=str(redemption))
        conn.execute(
            update(reward_redemptions)
            .where(reward_redemptions.c.id == redemption)
            .values(status=status, updated_at=now)
        )
        record_reward_event(
            conn,
            redemption,
            "status",
            actor=actor,
            at=now,
            from_status=found.status,
            to_status=status,
            reason=note,
        )
        record_audit(
            conn,
            actor=actor,
            action="reward.fulfilment",
            target=f"redemption:{redemption}",
            at=now,
            program_id=prog.id,
            before={"status": found.status},
            after={"status": status, **({"reason": note} if note else {})},
        )
        result = _result(conn, _locate(conn, prog.id, redemption))
        _emit_reward(
            conn,
            "reward.fulfilment_changed",
            prog.code,
            member_id,
            None,
            None,
            result,
            now,
            points=0,
            from_status=found.status,
            reason=note,
        )
        return result


def advance_many(
    db: Target, *, program: str, redemptions: Sequence[int], status: str, actor: str
) -> tuple[BulkOutcome, ...]:
    """:func:`advance_fulfilment` for each redemption, each in its own transaction: one that
    cannot move says why and does not stop the others."""
    outcomes = []
    for redemption in redemptions:
        try:
            done = advance_fulfilment(
                db, program=program, redemption=redemption, status=status, actor=actor
            )
            outcomes.append(BulkOutcome(redemption, done.status))
        except LoyaltyError as exc:
            outcomes.append(BulkOutcome(redemption, None, exc.message))
    return tuple(outcomes)


def get_redemption(db: Target, *, program: str, redemption: int) -> RewardRedemptionResult:
    """A redemption with its codes, vouchers, draw, prize and events."""
    redemption = require_int("redemption", redemption)
    with db.read() as conn:
        prog = program_row(conn, program)
        return _result(conn, _locate(conn, prog.id, redemption), events=True)


def list_redemptions(
    db: Target,
    *,
    program: str,
    member: str | None = None,
    reward: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> RedemptionPage:
    """Redemptions newest first, filtered by member, reward and state; pass the page's
    ``next_cursor`` as ``cursor`` for older ones. An unknown member is
    :class:`MemberNotFound` (as for their balance and history), not an empty page."""
    require_int("limit", limit)
    if limit > MAX_PAGE:
        raise InvalidInput(f"limit may be at most {MAX_PAGE}", field="limit")
    if status is not None and status not in (*OPEN_STATES, "delivered", "cancelled"):
        raise InvalidInput(f"unknown fulfilment state {status!r}", field="status")
    with db.read() as conn:
        prog = program_row(conn, program)
        stmt = (
            select(reward_redemptions.c.id)
            .where(reward_redemptions.c.program_id == prog.id)
            .order_by(reward_redemptions.c.id.desc())
            .limit(limit + 1)
        )
        if member is not None:
            member_id = conn.execute(
                select(members.c.id).where(
                    members.c.program_id == prog.id,
                    members.c.external_id == require_member_id(member),
                )
            ).scalar()
            if member_id is None:
                raise MemberNotFound(f"no member {member!r} in program {program!r}", member=member)
            stmt = stmt.where(reward_redemptions.c.member_id == member_id)
        if reward is not None:
            stmt = stmt.join(rewards, rewards.c.id == reward_redemptions.c.reward_id).where(
                rewards.c.code == require_reward_code(reward)
            )
        if status is not None:
            stmt = stmt.where(reward_redemptions.c.status == status)
        if cursor is not None:
            stmt = stmt.where(reward_redemptions.c.id < require_int("cursor", cursor))
        ids = list(conn.execute(stmt).scalars())
        items = tuple(_result(conn, _locate(conn, prog.id, i)) for i in ids[:limit])
    return RedemptionPage(items=items, next_cursor=ids[limit - 1] if len(ids) > limit else None)


def _result(
    conn: Connection, row: Row[Any], *, replayed: bool = False, events: bool = False
) -> RewardRedemptionResult:
    """A stored redemption as its result type."""
    codes = tuple(
        conn.execute(
            select(reward_codes.c.code)
            .where(reward_codes.c.redemption_id == row.id)
            .order_by(reward_codes.c.id)
        ).scalars()
    )
    issued = tuple(
        VoucherInfo(
            code=v.code,
            amount_minor=v.amount_minor,
            currency=v.currency,
            valid_from_at=v.valid_from,
            valid_until_at=v.valid_until,
            status=v.status,
            order_id=v.order_id,
            used_at=v.used_at,
            member=row.member_external_id,
            reward=row.reward_code,
        )
        for v in conn.execute(
            select(vouchers).where(vouchers.c.redemption_id == row.id).order_by(vouchers.c.id)
        )
    )
    draw = DrawOutcome.from_record(row.draw) if row.draw else None
    prize = None
    if draw is not None and draw.prize_redemption is not None:
        prize = _result(conn, _locate(conn, row.program_id, draw.prize_redemption))
    history: tuple[RewardEventInfo, ...] = ()
    if events:
        history = tuple(
            RewardEventInfo(
                event=e.event,
                from_status=e.from_status,
                to_status=e.to_status,
                actor=e.actor,
                reason=e.reason,
                order_id=e.order_id,
                created_at=e.created_at,
            )
            for e in conn.execute(
                select(reward_events)
                .where(reward_events.c.redemption_id == row.id)
                .order_by(reward_events.c.id)
            )
        )
    return RewardRedemptionResult(
        id=int(row.id),
        member=row.member_external_id,
        reward=row.reward_code,
        kind=row.kind,
        name=str(row.terms.get("name", row.reward_code)),
        version=row.version,
        quantity=row.quantity,
        points=row.points,
        status=row.status,
        created_at=row.created_at,
        codes=codes,
        vouchers=issued,
        draw=draw,
        shipping=row.shipping,
        parent=row.parent_id,
        prize=prize,
        updated_at=row.updated_at,
        events=history,
        replayed=replayed,
    )
