"""The reward catalog (积分商城): create rewards, publish new versions of their terms, restock,
retire, fill coupon code pools, and list what a member can redeem now and why not.

A reward's terms are versioned like earning rules: each change is a new immutable version
effective from a moment (now, or later), and a redemption records the version it used.
Every change here is audited in the same transaction. Redeeming is
:mod:`loyalty.services.reward_redemptions`.

A member redeems as the tier they hold now (:func:`redeeming_tier`): a reward limited to
tiers is offered to those tiers only, and a tier's own price (``tier_points``) is the price
the catalog shows and redeeming charges.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, case, func, insert, select, update

from loyalty.db.tables import (
    members,
    reward_codes,
    reward_redemptions,
    reward_versions,
    rewards,
)
from loyalty.domain.calendar import start_of_period
from loyalty.domain.checks import MAX_POINTS, require_aware, require_int, require_text
from loyalty.domain.rewards import (
    DEFAULT_ALPHABET,
    KINDS,
    RewardTerms,
    Usage,
    generate_codes,
    require_code,
    require_reward_code,
    unavailable_reasons,
)
from loyalty.domain.tiers import TierRules
from loyalty.errors import AlreadyExists, InvalidInput, InvalidRule, MemberNotFound, RewardNotFound
from loyalty.services.audit import record_audit
from loyalty.services.lots import spendable_lots
from loyalty.services.reward_results import RewardInfo, RewardOffer
from loyalty.services.tiers import tiers_at
from loyalty.services.uow import Target
from loyalty.services.writes import program_row

MAX_CODES_PER_IMPORT = 100_000


def version_in_force() -> Any:
    """Scalar subquery: the id of a reward's version in force at ``:at`` (the reward joined
    as ``rewards``)."""
    v = reward_versions.alias("in_force")
    return (
        select(v.c.id)
        .where(v.c.reward_id == rewards.c.id, v.c.effective_from <= bindparam("at"))
        .order_by(v.c.effective_from.desc(), v.c.version.desc())
        .limit(1)
        .correlate(rewards)
        .scalar_subquery()
    )


# Every reward of a program with its version in force at ``:at``.
_CATALOG = (
    select(
        rewards,
        reward_versions.c.id.label("version_id"),
        reward_versions.c.version,
        reward_versions.c.terms,
    )
    .select_from(rewards)
    .join(reward_versions, reward_versions.c.id == version_in_force())
    .where(rewards.c.program_id == bindparam("program_id"))
    .order_by(rewards.c.id)
)


_CATALOG_BY_CODE = _CATALOG.where(rewards.c.code == bindparam("code"))


def reward_row(conn: Connection, program_id: int, code: str, at: dt.datetime) -> Row[Any]:
    """The reward with its version in force at ``at`` (:class:`RewardNotFound` if none)."""
    row = conn.execute(_CATALOG_BY_CODE, {"program_id": program_id, "at": at, "code": code}).first()
    if row is None:
        raise RewardNotFound(f"no reward {code!r} in the catalog", reward=code)
    return row


class TermsCache:
    """Reward versions never change once written, so their parsed terms are cached by id
    (one cache per database, see :meth:`loyalty.db.Database.cache`)."""

    def __init__(self) -> None:
        self._by_id: dict[int, RewardTerms] = {}

    def get(self, row: Row[Any]) -> RewardTerms:
        """The parsed terms of a catalog row (see :func:`reward_row`)."""
        terms = self._by_id.get(row.version_id)
        if terms is None:
            terms = self._by_id[row.version_id] = terms_of(row)
        return terms


def terms_of(row: Row[Any]) -> RewardTerms:
    """The parsed terms of a catalog row (see :func:`reward_row`)."""
    return RewardTerms.from_dict(row.terms, kind=row.kind)


def _stock(value: Any, *, kind: str) -> int | None:
    if kind == "coupon":
        if value is not None:
            raise InvalidInput(
                "a coupon's stock is its pool of codes: import or generate codes instead",
                field="stock",
            )
        return 0
    if value is None:
        return None
    return require_int("stock", value, minimum=0, maximum=MAX_POINTS)


def _check_prizes(conn: Connection, program_id: int, terms: RewardTerms, at: dt.datetime) -> None:
    """A draw's prizes must be rewards of the same program that are not draws."""
    for prize in terms.prizes:
        row = conn.execute(
            select(rewards.c.kind).where(
                rewards.c.program_id == program_id, rewards.c.code == prize.reward
            )
        ).first()
        if row is None:
            raise InvalidRule(
                f"prize {prize.reward!r} is not a reward of this catalog; create it first "
                "(usually hidden, so it is only won)"
            )
        if row.kind == "draw":
            raise InvalidRule(f"prize {prize.reward!r} is a draw; a prize cannot be a draw")


def create_reward(
    db: Target,
    *,
    program: str,
    code: str,
    kind: str,
    terms: Mapping[str, Any],
    actor: str,
    stock: int | None = None,
) -> RewardInfo:
    """Add a reward to the catalog with its first version of terms, in force at once (use
    the terms' ``active_from`` to open it later).

    ``stock`` is how many can be issued (``None``: no limit); a coupon's stock is its code
    pool, filled with :func:`add_codes` or :func:`generate_reward_codes`.
    """
    code = require_reward_code(code, name="code")
    if kind not in KINDS:
        raise InvalidInput(f"unknown reward kind {kind!r}; use one of {', '.join(KINDS)}")
    parsed = RewardTerms.from_dict(terms, kind=kind)
    initial = _stock(stock, kind=kind)
    now = db.clock.now()
    with db.write() as conn:
        prog = program_row(conn, program)
        taken = conn.execute(
            select(rewards.c.id).where(rewards.c.program_id == prog.id, rewards.c.code == code)
        ).first()
        if taken is not None:
            raise AlreadyExists(f"the catalog already has a reward {code!r}", reward=code)
        _check_prizes(conn, prog.id, parsed, now)
        reward_id = conn.execute(
            insert(rewards)
            .values(
                program_id=prog.id,
                code=code,
                kind=kind,
                stock_added=initial,
                stock_left=initial,
                created_at=now,
            )
            .returning(rewards.c.id)
        ).scalar_one()
        _insert_version(conn, reward_id, 1, parsed, now, actor, now)
        record_audit(
            conn,
            actor=actor,
            action="reward.create",
            target=f"reward:{code}",
            at=now,
            program_id=prog.id,
            after={"kind": kind, "stock": initial, **parsed.to_dict()},
        )
        return _info(conn, prog.id, code, now)


def _insert_version(
    conn: Connection,
    reward_id: int,
    version: int,
    terms: RewardTerms,
    effective_from: dt.datetime,
    actor: str,
    now: dt.datetime,
) -> None:
    conn.execute(
        insert(reward_versions).values(
            reward_id=reward_id,
            version=version,
            terms=terms.to_dict(),
            effective_from=effective_from,
            created_by=require_text("actor", actor, max_length=120),
            created_at=now,
        )
    )


def publish_reward_terms(
    db: Target,
    *,
    program: str,
    reward: str,
    terms: Mapping[str, Any],
    actor: str,
    effective_from: dt.datetime | None = None,
) -> RewardInfo:
    """Publish a new version of a reward's terms, in force from ``effective_from`` (default:
    now). Redemptions made before keep the version they used."""
    reward = require_reward_code(reward)
    now = db.clock.now()
    start = require_aware("effective_from", effective_from) if effective_from else now
    if start < now:
        raise InvalidInput(
            "effective_from is in the past; a new version takes effect now or later",
            field="effective_from",
        )
    with db.write() as conn:
        prog = program_row(conn, program)
        row = _locked_reward(conn, prog.id, reward)
        parsed = RewardTerms.from_dict(terms, kind=row.kind)
        _check_prizes(conn, prog.id, parsed, now)
        last = conn.execute(
            select(func.max(reward_versions.c.version)).where(reward_versions.c.reward_id == row.id)
        ).scalar_one()
        before = reward_row(conn, prog.id, reward, now).terms
        _insert_version(conn, row.id, int(last) + 1, parsed, start, actor, now)
        record_audit(
            conn,
            actor=actor,
            action="reward.publish",
            target=f"reward:{reward}",
            at=now,
            program_id=prog.id,
            before=before,
            after={**parsed.to_dict(), "version": int(last) + 1, "from": start.isoformat()},
        )
        return _info(conn, prog.id, reward, now)


def _locked_reward(conn: Connection, program_id: int, code: str) -> Row[Any]:
    row = conn.execute(
        select(rewards)
        .where(rewards.c.program_id == program_id, rewards.c.code == code)
        .with_for_update()
    ).first()
    if row is None:
        raise RewardNotFound(f"no reward {code!r} in the catalog", reward=code)
    return row


def restock_reward(
    db: Target, *, program: str, reward: str, quantity: int, actor: str
) -> RewardInfo:
    """Add ``quantity`` to a reward's stock (not a coupon: add codes to its pool instead)."""
    reward = require_reward_code(reward)
    quantity = require_int("quantity", quantity, minimum=1, maximum=MAX_POINTS)
    now = db.clock.now()
    with db.write() as conn:
        prog = program_row(conn, program)
        row = _locked_reward(conn, prog.id, reward)
        if row.kind == "coupon":
            raise InvalidInput("a coupon's stock is its pool of codes: add codes instead")
        if row.stock_left is None:
            raise InvalidInput(
                f"reward {reward!r} has no stock limit, so it cannot be restocked; to limit "
                "it, create a reward with a stock and retire this one"
            )
        _add_stock(conn, row.id, quantity)
        record_audit(
            conn,
            actor=actor,
            action="reward.restock",
            target=f"reward:{reward}",
            at=now,
            program_id=prog.id,
            before={"stock_left": row.stock_left},
            after={"stock_left": row.stock_left + quantity, "added": quantity},
        )
        return _info(conn, prog.id, reward, now)


def _add_stock(conn: Connection, reward_id: int, quantity: int) -> None:
    conn.execute(
        update(rewards)
        .where(rewards.c.id == reward_id)
        .values(
            stock_added=rewards.c.stock_added + quantity,
            stock_left=rewards.c.stock_left + quantity,
        )
    )


def set_reward_retired(
    db: Target, *, program: str, reward: str, retired: bool, actor: str
) -> RewardInfo:
    """Take a reward off the catalog (``retired``) or put it back; redemptions made stay."""
    reward = require_reward_code(reward)
    now = db.clock.now()
    with db.write() as conn:
        prog = program_row(conn, program)
        row = _locked_reward(conn, prog.id, reward)
        conn.execute(
            update(rewards)
            .where(rewards.c.id == row.id)
            .values(retired_at=now if retired else None)
        )
        record_audit(
            conn,
            actor=actor,
            action="reward.retire" if retired else "reward.reinstate",
            target=f"reward:{reward}",
            at=now,
            program_id=prog.id,
        )
        return _info(conn, prog.id, reward, now)


def add_codes(
    db: Target, *, program: str, reward: str, codes: Sequence[str], actor: str
) -> RewardInfo:
    """Add imported codes to a coupon's pool (see
    :func:`loyalty.domain.rewards.parse_code_csv` for a CSV file). A code the pool already
    holds is an error naming it; nothing is added then."""
    reward = require_reward_code(reward)
    cleaned = [require_code(c) for c in codes]
    if not cleaned:
        raise InvalidInput("no codes to add")
    if len(cleaned) > MAX_CODES_PER_IMPORT:
        raise InvalidInput(f"at most {MAX_CODES_PER_IMPORT} codes at once; split the file")
    if len(set(cleaned)) != len(cleaned):
        raise InvalidInput("the codes repeat; each code may appear once")
    now = db.clock.now()
    with db.write() as conn:
        prog = program_row(conn, program)
        row = _locked_reward(conn, prog.id, reward)
        if row.kind != "coupon":
            raise InvalidInput(f"reward {reward!r} is {_a(row.kind)}; only coupons have codes")
        _refuse_known_codes(conn, row.id, cleaned)
        conn.execute(
            insert(reward_codes),
            [{"reward_id": row.id, "code": c, "created_at": now} for c in cleaned],
        )
        _add_stock(conn, row.id, len(cleaned))
        record_audit(
            conn,
            actor=actor,
            action="reward.codes_added",
            target=f"reward:{reward}",
            at=now,
            program_id=prog.id,
            after={"added": len(cleaned), "first": cleaned[0]},
        )
        return _info(conn, prog.id, reward, now)


def _refuse_known_codes(conn: Connection, reward_id: int, codes: Sequence[str]) -> None:
    for start in range(0, len(codes), 1000):
        chunk = list(codes[start : start + 1000])
        known = conn.execute(
            select(reward_codes.c.code)
            .where(reward_codes.c.reward_id == reward_id, reward_codes.c.code.in_(chunk))
            .limit(5)
        ).scalars()
        found = list(known)
        if found:
            raise AlreadyExists(
                f"the pool already holds {', '.join(found)}; remove them from the file",
                codes=found,
            )


def generate_reward_codes(
    db: Target,
    *,
    program: str,
    reward: str,
    count: int,
    actor: str,
    length: int = 10,
    alphabet: str = DEFAULT_ALPHABET,
    prefix: str = "",
) -> RewardInfo:
    """Generate ``count`` random codes into a coupon's pool."""
    return add_codes(
        db,
        program=program,
        reward=reward,
        codes=generate_codes(count, length=length, alphabet=alphabet, prefix=prefix),
        actor=actor,
    )


def get_reward(db: Target, *, program: str, reward: str) -> RewardInfo:
    """A reward with its terms in force, its stock and what it has issued."""
    reward = require_reward_code(reward)
    with db.read() as conn:
        prog = program_row(conn, program)
        return _info(conn, prog.id, reward, db.clock.now())


def list_catalog(db: Target, *, program: str) -> tuple[RewardInfo, ...]:
    """Every reward of the program (retired ones too), for the people who run the catalog."""
    now = db.clock.now()
    with db.read() as conn:
        prog = program_row(conn, program)
        codes = conn.execute(
            select(rewards.c.code).where(rewards.c.program_id == prog.id).order_by(rewards.c.id)
        ).scalars()
        return tuple(_info(conn, prog.id, code, now) for code in list(codes))


def _info(conn: Connection, program_id: int, code: str, now: dt.datetime) -> RewardInfo:
    row = conn.execute(
        select(rewards).where(rewards.c.program_id == program_id, rewards.c.code == code)
    ).first()
    if row is None:
        raise RewardNotFound(f"no reward {code!r} in the catalog", reward=code)
    current = conn.execute(
        _CATALOG.where(rewards.c.id == row.id), {"program_id": program_id, "at": now}
    ).first()
    if current is None:  # only a scheduled first version (cannot happen: v1 starts at once)
        raise RewardNotFound(f"reward {code!r} has no terms in force", reward=code)
    scheduled = conn.execute(
        select(reward_versions.c.version, reward_versions.c.effective_from)
        .where(reward_versions.c.reward_id == row.id, reward_versions.c.effective_from > now)
        .order_by(reward_versions.c.effective_from)
    ).all()
    counts = conn.execute(
        select(
            func.coalesce(func.sum(reward_redemptions.c.quantity), 0),
            func.coalesce(
                func.sum(
                    case(
                        (reward_redemptions.c.status == "cancelled", reward_redemptions.c.quantity),
                        else_=0,
                    )
                ),
                0,
            ),
        ).where(reward_redemptions.c.reward_id == row.id)
    ).one()
    free = conn.execute(
        select(func.count()).where(
            reward_codes.c.reward_id == row.id, reward_codes.c.redemption_id.is_(None)
        )
    ).scalar_one()
    return RewardInfo(
        code=row.code,
        kind=row.kind,
        version=current.version,
        terms=dict(current.terms),
        stock_added=row.stock_added,
        stock_left=row.stock_left,
        issued=int(counts[0]),
        cancelled=int(counts[1]),
        codes_free=int(free),
        created_at=row.created_at,
        retired_at=row.retired_at,
        scheduled=tuple((v.version, v.effective_from) for v in scheduled),
    )


def _usage_statement(one_reward: bool) -> Any:
    """Per reward: what a member redeemed (not cancelled) since ``:day``, ``:month`` and ever."""
    quantity = reward_redemptions.c.quantity
    created = reward_redemptions.c.created_at
    stmt = (
        select(
            reward_redemptions.c.reward_id,
            func.sum(case((created >= bindparam("day"), quantity), else_=0)).label("day"),
            func.sum(case((created >= bindparam("month"), quantity), else_=0)).label("month"),
            func.sum(quantity).label("lifetime"),
        )
        .where(
            reward_redemptions.c.member_id == bindparam("member_id"),
            reward_redemptions.c.status != "cancelled",
            reward_redemptions.c.parent_id.is_(None),
        )
        .group_by(reward_redemptions.c.reward_id)
    )
    if one_reward:
        stmt = stmt.where(reward_redemptions.c.reward_id == bindparam("reward_id"))
    return stmt


_USAGE = {False: _usage_statement(False), True: _usage_statement(True)}


def usage_by_reward(
    conn: Connection, member_id: int, now: dt.datetime, tz: str, reward_id: int | None = None
) -> dict[int, Usage]:
    """What the member redeemed (not cancelled) of each reward in the current local day,
    month and ever."""
    params = {
        "member_id": member_id,
        "reward_id": reward_id,
        "day": start_of_period(now, tz, "day"),
        "month": start_of_period(now, tz, "month"),
    }
    return {
        r.reward_id: Usage(int(r.day or 0), int(r.month or 0), int(r.lifetime or 0))
        for r in conn.execute(_USAGE[reward_id is not None], params)
    }


def redeeming_tier(rules: TierRules | None, held: str | None) -> str | None:
    """The tier a member redeems as: the tier they hold now, the lowest when never placed
    (or placed in a tier these rules no longer have); ``None`` when the program has no
    tiers."""
    if rules is None:
        return None
    return rules.tier(held).code if rules.knows(held) else rules.lowest.code


def list_rewards(
    db: Target, *, program: str, member: str | None = None, include_hidden: bool = False
) -> tuple[RewardOffer, ...]:
    """The catalog as offered now: without ``member``, every visible reward that is not
    retired; with ``member``, the same with whether they can redeem each and why not, at the
    price of the member's tier. ``include_hidden`` adds hidden and retired rewards (for the
    people who run it)."""
    now = db.clock.now()
    with db.read() as conn:
        prog = program_row(conn, program)
        available: int | None = None
        usage: dict[int, Usage] = {}
        tier: str | None = None
        if member is not None:
            row = conn.execute(
                select(members.c.id, members.c.available, members.c.tier).where(
                    and_(members.c.program_id == prog.id, members.c.external_id == member)
                )
            ).first()
            if row is None:
                raise MemberNotFound(f"no member {member!r} in program {program!r}", member=member)
            # what the member can spend now: lots past their expiry that no sweep has taken
            # yet are not (redeeming would refuse them), so the catalog does not offer them
            available = sum(lot.available for lot in spendable_lots(conn, row.id, now))
            usage = usage_by_reward(conn, row.id, now, prog.timezone)
            tiers = tiers_at(db, conn, prog.id, now)
            tier = redeeming_tier(tiers.rules if tiers else None, row.tier)
        rows = conn.execute(_CATALOG, {"program_id": prog.id, "at": now}).all()
    offers = []
    for r in rows:
        terms = terms_of(r)
        if not include_hidden and (not terms.visible or r.retired_at is not None):
            continue
        reasons = unavailable_reasons(
            terms,
            now=now,
            retired=r.retired_at is not None,
            stock_left=r.stock_left,
            available_points=available,
            usage=usage.get(r.id, Usage()) if member is not None else None,
            tier=tier,
        )
        offers.append(offer_of(r, terms, reasons, prog.currency, tier=tier))
    return tuple(offers)


def offer_of(
    r: Row[Any],
    terms: RewardTerms,
    reasons: Sequence[str],
    currency: str,
    *,
    tier: str | None = None,
) -> RewardOffer:
    """A catalog row as a :class:`RewardOffer`, priced for a member of ``tier``."""
    return RewardOffer(
        code=r.code,
        kind=r.kind,
        name=terms.name,
        description=terms.description,
        image_url=terms.image_url,
        points=terms.price(tier),
        version=r.version,
        stock_left=r.stock_left,
        visible=terms.visible,
        active_from=terms.active_from,
        active_until=terms.active_until,
        redeemable=not reasons,
        reasons=tuple(reasons),
        voucher_amount_minor=terms.voucher_amount_minor,
        voucher_valid_days=terms.voucher_valid_days,
        currency=currency,
        limits=dict(terms.limits),
        min_balance=terms.min_balance,
        retired=r.retired_at is not None,
    )


def _a(kind: str) -> str:
    """A reward kind with its article: ``an item``, ``a voucher``."""
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
