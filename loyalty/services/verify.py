"""``jifen verify``: prove the ledger's invariants over the whole database.

Each check is one SQL query that returns the rows breaking an invariant; a clean ledger
returns none. The checks:

* members' balances equal the sums of their lots' buckets;
* members' balances (and debt) equal the sums of their entries;
* every lot's buckets equal the sum of its entries;
* no lot bucket and no member balance is negative;
* every lot was created by exactly one credit entry of its full size;
* every entry is explained: a known kind, an operation of the same program, a lot of the
  same member;
* every expired (or cleared) lot has exactly one expiry entry, and other lots none;
* lifetime earned equals the member's earning entries;
* held points equal the member's active holds;
* frozen points equal the member's open refunds and disputes;
* every earning's granted points equal its lot;
* every program code, member id and email is stored as Jifen stores text now (NFC, stripped,
  showable), and every program's currency is an ISO 4217 code: rows written before text was
  cleaned are not found by a lookup of the clean id, so this check names them for a person to
  correct. It reads those columns into Python, a batch at a time, because SQLite has no
  Unicode normalisation;
* for every reward with a stock, the initial stock and restocks equal what is left plus what
  redemptions took minus what cancellations gave back; a coupon's stock is its unissued codes;
* every pool code was issued at most once, to a redemption of its own reward, and a coupon
  redemption holds as many codes (a voucher redemption as many vouchers) as its quantity;
* every redemption's points equal the entries that spent them, and a cancelled one's the
  entries that gave them back;
* every member's tier, period end and next evaluation equal the last entry of their tier
  history (a member without history holds no tier); each entry starts from the tier the one
  before it left; every evaluation is the one that was due (its ``due_at`` is the previous
  entry's next evaluation) and no other change was made while an evaluation was overdue;
* every earning's parts by category and campaign add up to its granted points, each part
  positive with a campaign bonus no larger than itself;
* every member's qualifying rows (the tier measure) equal what their earnings, settled
  refunds and disputes, adjustments and received transfers say, in points and in money;
* the outbox (see :mod:`loyalty.events.checks`): every operation has exactly its events,
  every member its enrolment, tier change and reminder events; deliveries are sound;
* every API key has known scopes, a SHA-256 hash and a ``jfn_sk_`` prefix, and was not
  revoked before it was created; every allowed origin is stored as ``scheme://host[:port]``;
* risk control (see :mod:`loyalty.services.risk_checks`): lots held by risk control belong to
  members on hold, a member on hold has an open hold case, every case is consistent, every
  risk rule version parses and each program's ``risk_version`` names one of its versions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, and_, case, func, literal, or_, select

from loyalty.db.database import Database
from loyalty.db.models import EXPIRY_KINDS
from loyalty.db.tables import (
    api_keys,
    api_origins,
    earning_parts,
    earnings,
    entries,
    holds,
    lots,
    members,
    operations,
    programs,
    reversals,
    reward_codes,
    reward_redemptions,
    rewards,
    tier_changes,
    tier_qualifying,
    transfers,
    vouchers,
)
from loyalty.domain.checks import require_email, require_member_id, require_program_code
from loyalty.domain.money import normalize_currency
from loyalty.domain.moves import BUCKETS, ENTRY_KINDS, LOT_CREDIT_KINDS
from loyalty.errors import InvalidInput
from loyalty.events.checks import OUTBOX_CHECKS
from loyalty.services.api_keys import KEY_PREFIX, SCOPES, normalise_origin
from loyalty.services.reversals import OPEN_STATUSES
from loyalty.services.risk_checks import (
    RISK_CHECKS,
    RISK_RULES_CHECK,
    RISK_RULES_DESCRIPTION,
    risk_rule_problems,
)

EARN_KINDS = ("earn", "earn_pending")
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class CheckResult:
    """One invariant: whether it holds, how many rows break it and a few of them."""

    name: str
    description: str
    violations: int
    examples: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.violations == 0


@dataclass(frozen=True)
class VerifyReport:
    """All checks; ``ok`` when every invariant holds."""

    checks: tuple[CheckResult, ...]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def _sums(table: Any, key: Any, columns: dict[str, Any]) -> Any:
    return (
        select(key.label("owner"), *[func.sum(c).label(n) for n, c in columns.items()])
        .group_by(key)
        .subquery()
    )


def _members_vs_lots() -> Select[Any]:
    s = _sums(lots, lots.c.member_id, {b: lots.c[b] for b in BUCKETS})
    differs = or_(*[members.c[b] != func.coalesce(s.c[b], 0) for b in BUCKETS])
    return (
        select(
            members.c.id,
            *[members.c[b] for b in BUCKETS],
            *[func.coalesce(s.c[b], 0).label(f"lots_{b}") for b in BUCKETS],
        )
        .outerjoin(s, s.c.owner == members.c.id)
        .where(differs)
    )


def _members_vs_entries() -> Select[Any]:
    names = (*BUCKETS, "debt")
    s = _sums(entries, entries.c.member_id, {b: entries.c[f"{b}_delta"] for b in names})
    differs = or_(*[members.c[b] != func.coalesce(s.c[b], 0) for b in names])
    return (
        select(
            members.c.id,
            *[members.c[b] for b in names],
            *[func.coalesce(s.c[b], 0).label(f"entries_{b}") for b in names],
        )
        .outerjoin(s, s.c.owner == members.c.id)
        .where(differs)
    )


def _lots_vs_entries() -> Select[Any]:
    s = _sums(entries, entries.c.lot_id, {b: entries.c[f"{b}_delta"] for b in BUCKETS})
    differs = or_(*[lots.c[b] != func.coalesce(s.c[b], 0) for b in BUCKETS])
    return (
        select(
            lots.c.id,
            *[lots.c[b] for b in BUCKETS],
            *[func.coalesce(s.c[b], 0).label(f"entries_{b}") for b in BUCKETS],
        )
        .outerjoin(s, s.c.owner == lots.c.id)
        .where(differs)
    )


def _negatives() -> Select[Any]:
    lot_negative = or_(*[lots.c[b] < 0 for b in BUCKETS])
    member_negative = or_(*[members.c[b] < 0 for b in (*BUCKETS, "debt")])
    return (
        select(literal("lot").label("what"), lots.c.id)
        .where(lot_negative)
        .union_all(select(literal("member"), members.c.id).where(member_negative))
        .subquery()
        .select()
    )


def _lot_origins() -> Select[Any]:
    credit = entries.c.kind.in_(LOT_CREDIT_KINDS)
    amount = entries.c.available_delta + entries.c.pending_delta
    s = (
        select(
            entries.c.lot_id.label("lot_id"),
            func.count().label("credits"),
            func.sum(amount).label("credited"),
        )
        .where(credit)
        .group_by(entries.c.lot_id)
        .subquery()
    )
    return (
        select(lots.c.id, lots.c.points, s.c.credits, s.c.credited)
        .outerjoin(s, s.c.lot_id == lots.c.id)
        .where(or_(s.c.credits.is_(None), s.c.credits != 1, s.c.credited != lots.c.points))
    )


def _unexplained_entries() -> Select[Any]:
    return (
        select(entries.c.id, entries.c.kind)
        .outerjoin(operations, operations.c.id == entries.c.operation_id)
        .outerjoin(lots, lots.c.id == entries.c.lot_id)
        .where(
            or_(
                entries.c.kind.not_in(ENTRY_KINDS),
                operations.c.id.is_(None),
                operations.c.program_id != entries.c.program_id,
                and_(entries.c.lot_id.is_not(None), lots.c.member_id != entries.c.member_id),
            )
        )
    )


def _expiry_entries() -> Select[Any]:
    s = (
        select(entries.c.lot_id.label("lot_id"), func.count().label("expiries"))
        .where(entries.c.kind.in_(EXPIRY_KINDS))
        .group_by(entries.c.lot_id)
        .subquery()
    )
    count = func.coalesce(s.c.expiries, 0)
    return (
        select(lots.c.id, lots.c.expired_at, count.label("expiries"))
        .outerjoin(s, s.c.lot_id == lots.c.id)
        .where(
            or_(
                and_(lots.c.expired_at.is_not(None), count != 1),
                and_(lots.c.expired_at.is_(None), count != 0),
            )
        )
    )


def _lifetime() -> Select[Any]:
    amount = entries.c.available_delta + entries.c.pending_delta
    s = (
        select(entries.c.member_id.label("owner"), func.sum(amount).label("earned"))
        .where(entries.c.kind.in_(EARN_KINDS))
        .group_by(entries.c.member_id)
        .subquery()
    )
    return (
        select(members.c.id, members.c.lifetime_earned, s.c.earned)
        .outerjoin(s, s.c.owner == members.c.id)
        .where(members.c.lifetime_earned != func.coalesce(s.c.earned, 0))
    )


def _held_vs_holds() -> Select[Any]:
    s = (
        select(holds.c.member_id.label("owner"), func.sum(holds.c.points).label("active"))
        .where(holds.c.status == "active")
        .group_by(holds.c.member_id)
        .subquery()
    )
    return (
        select(members.c.id, members.c.held, s.c.active)
        .outerjoin(s, s.c.owner == members.c.id)
        .where(members.c.held != func.coalesce(s.c.active, 0))
    )


def _frozen_vs_reversals() -> Select[Any]:
    s = (
        select(reversals.c.member_id.label("owner"), func.sum(reversals.c.frozen).label("open"))
        .where(reversals.c.status.in_(OPEN_STATUSES))
        .group_by(reversals.c.member_id)
        .subquery()
    )
    return (
        select(members.c.id, members.c.frozen, s.c.open)
        .outerjoin(s, s.c.owner == members.c.id)
        .where(members.c.frozen != func.coalesce(s.c.open, 0))
    )


def _earnings_vs_lots() -> Select[Any]:
    return (
        select(earnings.c.id, earnings.c.points_granted, lots.c.points)
        .outerjoin(lots, lots.c.id == earnings.c.lot_id)
        .where(
            or_(
                and_(earnings.c.lot_id.is_(None), earnings.c.points_granted != 0),
                and_(earnings.c.lot_id.is_not(None), earnings.c.points_granted != lots.c.points),
            )
        )
    )


def _earning_parts_vs_earnings() -> Select[Any]:
    """Earnings whose parts by category and campaign do not add up to the points granted,
    or with a part that is not positive or whose campaign bonus exceeds it."""
    p = earning_parts
    parts = (
        select(
            p.c.earning_id,
            func.sum(p.c.points).label("points"),
            func.sum(
                case((or_(p.c.points <= 0, p.c.bonus < 0, p.c.bonus > p.c.points), 1), else_=0)
            ).label("bad"),
        )
        .group_by(p.c.earning_id)
        .subquery()
    )
    return (
        select(parts.c.earning_id, earnings.c.points_granted, parts.c.points)
        .outerjoin(earnings, earnings.c.id == parts.c.earning_id)
        .where(
            or_(
                earnings.c.id.is_(None),
                parts.c.points != earnings.c.points_granted,
                parts.c.bad > 0,
            )
        )
    )


def _reward_stock() -> Select[Any]:
    r = reward_redemptions
    s = _sums(r, r.c.reward_id, {"taken": r.c.stock_taken, "returned": r.c.stock_returned})
    free = (
        select(reward_codes.c.reward_id.label("owner"), func.count().label("free"))
        .where(reward_codes.c.redemption_id.is_(None))
        .group_by(reward_codes.c.reward_id)
        .subquery()
    )
    expected = rewards.c.stock_left + func.coalesce(s.c.taken, 0) - func.coalesce(s.c.returned, 0)
    return (
        select(rewards.c.id, rewards.c.stock_added, rewards.c.stock_left, s.c.taken, s.c.returned)
        .outerjoin(s, s.c.owner == rewards.c.id)
        .outerjoin(free, free.c.owner == rewards.c.id)
        .where(
            or_(
                and_(rewards.c.stock_added.is_not(None), rewards.c.stock_added != expected),
                and_(rewards.c.stock_added.is_(None), func.coalesce(s.c.taken, 0) != 0),
                and_(
                    rewards.c.kind == "coupon",
                    rewards.c.stock_left != func.coalesce(free.c.free, 0),
                ),
            )
        )
    )


def _codes_issued_once() -> Select[Any]:
    r = reward_redemptions
    codes = (
        select(reward_codes.c.redemption_id.label("owner"), func.count().label("n"))
        .where(reward_codes.c.redemption_id.is_not(None))
        .group_by(reward_codes.c.redemption_id)
        .subquery()
    )
    issued = (
        select(vouchers.c.redemption_id.label("owner"), func.count().label("n"))
        .group_by(vouchers.c.redemption_id)
        .subquery()
    )
    foreign = (
        select(literal("code").label("what"), reward_codes.c.id)
        .join(r, r.c.id == reward_codes.c.redemption_id)
        .where(r.c.reward_id != reward_codes.c.reward_id)
    )
    counts = (
        select(literal("redemption").label("what"), r.c.id)
        .join(rewards, rewards.c.id == r.c.reward_id)
        .outerjoin(codes, codes.c.owner == r.c.id)
        .outerjoin(issued, issued.c.owner == r.c.id)
        .where(
            or_(
                and_(rewards.c.kind == "coupon", func.coalesce(codes.c.n, 0) != r.c.quantity),
                and_(rewards.c.kind == "voucher", func.coalesce(issued.c.n, 0) != r.c.quantity),
                and_(rewards.c.kind.not_in(("coupon",)), func.coalesce(codes.c.n, 0) != 0),
            )
        )
    )
    return foreign.union_all(counts).subquery().select()


def _redemptions_vs_entries() -> Select[Any]:
    r = reward_redemptions
    spent = (
        select(entries.c.operation_id.label("op"), func.sum(-entries.c.available_delta).label("n"))
        .where(entries.c.kind == "reward_spend")
        .group_by(entries.c.operation_id)
        .subquery()
    )
    returned = (
        select(entries.c.operation_id.label("op"), func.sum(entries.c.available_delta).label("n"))
        .where(entries.c.kind == "reward_return")
        .group_by(entries.c.operation_id)
        .subquery()
    )
    priced = (
        select(r.c.operation_id.label("op"), func.sum(r.c.points).label("points"))
        .group_by(r.c.operation_id)
        .subquery()
    )
    by_operation = (
        select(literal("redeem").label("what"), priced.c.op.label("id"))
        .outerjoin(spent, spent.c.op == priced.c.op)
        .where(priced.c.points != func.coalesce(spent.c.n, 0))
    )
    unowned = (
        select(literal("spend").label("what"), spent.c.op.label("id"))
        .outerjoin(priced, priced.c.op == spent.c.op)
        .where(priced.c.op.is_(None))
    )
    cancelled = (
        select(literal("cancel").label("what"), r.c.id)
        .outerjoin(returned, returned.c.op == r.c.cancel_operation_id)
        .where(
            or_(
                and_(r.c.status == "cancelled", r.c.points != func.coalesce(returned.c.n, 0)),
                and_(r.c.status != "cancelled", r.c.cancel_operation_id.is_not(None)),
            )
        )
    )
    return by_operation.union_all(unowned, cancelled).subquery().select()


def _tiers_vs_history() -> Select[Any]:
    last = (
        select(func.max(tier_changes.c.id).label("id"))
        .group_by(tier_changes.c.member_id)
        .subquery()
    )
    latest = select(tier_changes).where(tier_changes.c.id.in_(select(last.c.id))).subquery()
    m = members
    return (
        select(m.c.id, m.c.tier, m.c.tier_evaluate_at, latest.c.to_tier, latest.c.evaluate_at)
        .outerjoin(latest, latest.c.member_id == m.c.id)
        .where(
            or_(
                m.c.tier.is_distinct_from(latest.c.to_tier),
                m.c.tier_period_end.is_distinct_from(latest.c.period_end),
                m.c.tier_evaluate_at.is_distinct_from(latest.c.evaluate_at),
            )
        )
    )


def _tier_history_chained() -> Select[Any]:
    t = tier_changes
    chain = select(
        t.c.id,
        t.c.member_id,
        t.c.reason,
        t.c.from_tier,
        t.c.due_at,
        t.c.created_at,
        func.lag(t.c.to_tier)
        .over(partition_by=t.c.member_id, order_by=t.c.id)
        .label("previous_tier"),
        func.lag(t.c.evaluate_at)
        .over(partition_by=t.c.member_id, order_by=t.c.id)
        .label("previous_due"),
    ).subquery()
    return select(chain).where(
        or_(
            and_(  # the first entry starts from the lowest tier (never placed before)
                chain.c.previous_tier.is_not(None),
                chain.c.from_tier.is_distinct_from(chain.c.previous_tier),
            ),
            and_(
                chain.c.reason == "evaluation",
                chain.c.due_at.is_distinct_from(chain.c.previous_due),
            ),
            and_(
                chain.c.reason != "evaluation",
                chain.c.previous_due.is_not(None),
                chain.c.previous_due <= chain.c.created_at,
            ),
        )
    )


def _qualifying_vs_sources() -> Select[Any]:
    """Expected (from earnings, settled reversals, adjustment entries and transfers) minus
    stored qualifying rows, per member and source: every non-zero sum is a violation."""
    paid = earnings.c.amount_minor - earnings.c.points_paid_minor
    expected_earned = select(
        earnings.c.member_id,
        earnings.c.source,
        earnings.c.points_granted.label("points"),
        func.coalesce(paid, 0).label("money"),
    )
    settled = reversals.c.status.in_(("succeeded", "lost"))
    expected_reversed = select(
        reversals.c.member_id,
        reversals.c.kind,
        -reversals.c.points,
        -reversals.c.amount_minor,
    ).where(settled)
    expected_adjusted = select(
        entries.c.member_id, literal("adjustment"), entries.c.available_delta, literal(0)
    ).where(entries.c.kind.in_(("adjust_grant", "adjust_deduct")))
    expected_received = select(
        transfers.c.recipient_id, literal("transfer"), transfers.c.points, literal(0)
    )
    stored = select(
        tier_qualifying.c.member_id,
        tier_qualifying.c.source,
        -tier_qualifying.c.points,
        -tier_qualifying.c.money_minor,
    )
    both = expected_earned.union_all(
        expected_reversed, expected_adjusted, expected_received, stored
    ).subquery()
    cols = list(both.c)
    return (
        select(
            cols[0].label("member_id"),
            cols[1].label("source"),
            func.sum(cols[2]).label("points_off"),
            func.sum(cols[3]).label("money_off"),
        )
        .group_by(cols[0], cols[1])
        .having(or_(func.sum(cols[2]) != 0, func.sum(cols[3]) != 0))
    )


CHECKS: tuple[tuple[str, str, Callable[[], Select[Any]]], ...] = (
    ("members_equal_lots", "member balances equal the sums of their lots", _members_vs_lots),
    (
        "members_equal_entries",
        "member balances and debt equal the sums of their entries",
        _members_vs_entries,
    ),
    ("lots_equal_entries", "every lot equals the sum of its entries", _lots_vs_entries),
    ("no_negative", "no negative lot bucket or member balance", _negatives),
    ("lot_origin", "every lot was created by exactly one credit of its size", _lot_origins),
    (
        "entries_explained",
        "every entry has a known kind, its operation and its member's lot",
        _unexplained_entries,
    ),
    (
        "one_expiry_per_lot",
        "every expired or cleared lot has exactly one expiry entry, other lots none",
        _expiry_entries,
    ),
    ("lifetime_earned", "lifetime earned equals the member's earning entries", _lifetime),
    ("held_equals_holds", "held points equal the member's active holds", _held_vs_holds),
    (
        "frozen_equals_reversals",
        "frozen points equal the member's open refunds and disputes",
        _frozen_vs_reversals,
    ),
    ("earnings_equal_lots", "every earning's granted points equal its lot", _earnings_vs_lots),
    (
        "earning_parts_add_up",
        "every earning's parts by category and campaign add up to its granted points",
        _earning_parts_vs_earnings,
    ),
    (
        "reward_stock",
        "every reward's stock added equals what is left plus taken minus returned",
        _reward_stock,
    ),
    (
        "reward_codes_once",
        "every pool code issued at most once, to its reward; codes and vouchers match quantities",
        _codes_issued_once,
    ),
    (
        "redemptions_equal_entries",
        "every reward redemption's points equal the entries that spent (and returned) them",
        _redemptions_vs_entries,
    ),
    (
        "tiers_equal_history",
        "every member's tier and next evaluation equal the last entry of their tier history",
        _tiers_vs_history,
    ),
    (
        "tier_history_chained",
        "tier history entries follow each other and no evaluation that was due was skipped",
        _tier_history_chained,
    ),
    (
        "qualifying_explained",
        "every member's tier measure rows equal their earnings, reversals, adjustments, transfers",
        _qualifying_vs_sources,
    ),
    *OUTBOX_CHECKS,
    *RISK_CHECKS,
)


def _run_check(
    conn: Connection, name: str, description: str, query: Callable[[], Select[Any]]
) -> CheckResult:
    stmt = query()
    violations = conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = conn.execute(stmt.limit(MAX_PROBLEMS)).all() if violations else []
    examples = tuple(", ".join(f"{k}={v}" for k, v in r._mapping.items()) for r in rows)
    return CheckResult(name, description, int(violations), examples)


CLEAN_TEXT_CHECK = "text_is_clean"
_TEXT_BATCH = 5000


def _stored_texts(conn: Connection) -> Iterator[tuple[str, Any, Callable[[Any], str]]]:
    """Every stored program code, member id and email, with where it is and its cleaner."""
    for program in conn.execute(select(programs.c.code, programs.c.currency)):
        yield f"program {program.code!r}", program.code, require_program_code
        yield f"program {program.code!r} currency", program.currency, normalize_currency
    rows = conn.execution_options(yield_per=_TEXT_BATCH).execute(
        select(members.c.id, members.c.external_id, members.c.email)
    )
    for row in rows:
        yield f"member {row.id} external_id", row.external_id, require_member_id
        if row.email is not None:
            yield f"member {row.id} email", row.email, require_email


def _text_is_clean(conn: Connection) -> CheckResult:
    """The rows whose text a lookup would clean into something else, or refuse."""
    violations, examples = 0, list[str]()
    for where, value, clean in _stored_texts(conn):
        problem = _unclean(value, clean)
        if problem is not None:
            violations += 1
            if len(examples) < MAX_PROBLEMS:
                examples.append(f"{where}: {problem}")
    description = (
        "program codes, member ids and emails are stored clean (NFC, stripped, showable), "
        "currencies are ISO 4217"
    )
    return CheckResult(CLEAN_TEXT_CHECK, description, violations, tuple(examples))


def _unclean(value: Any, clean: Callable[[Any], str]) -> str | None:
    """Why ``value`` is not stored as Jifen stores text now, or None when it is."""
    try:
        cleaned = clean(value)
    except InvalidInput as exc:
        return exc.message
    return None if cleaned == value else f"stored as {value!r}, clean it to {cleaned!r}"


API_KEYS_CHECK = "api_keys_sound"
_HEX = frozenset("0123456789abcdef")


def _key_problem(row: Any) -> str | None:
    """Why a stored server key could not work as Jifen issues keys, or None."""
    scopes = row.scopes.split()
    if not scopes or not set(scopes) <= set(SCOPES):
        return f"scopes {row.scopes!r} are not a subset of {', '.join(SCOPES)}"
    if len(row.key_hash) != 64 or not set(row.key_hash) <= _HEX:
        return "its hash is not a SHA-256 hex digest"
    if not row.prefix.startswith(KEY_PREFIX):
        return f"its prefix {row.prefix!r} does not start with {KEY_PREFIX}"
    if row.revoked_at is not None and row.revoked_at < row.created_at:
        return "it was revoked before it was created"
    return None


def _origin_problem(origin: str) -> str | None:
    try:
        clean = normalise_origin(origin)
    except InvalidInput as exc:
        return exc.message
    return None if clean == origin else f"stored as {origin!r}, clean it to {clean!r}"


def _api_credentials_sound(conn: Connection) -> CheckResult:
    """Server keys have known scopes, a SHA-256 hash and a jfn_sk_ prefix; origins are
    stored as scheme://host[:port]."""
    problems = [
        f"api key {row.id}: {problem}"
        for row in conn.execute(select(api_keys))
        if (problem := _key_problem(row)) is not None
    ]
    problems += [
        f"origin {row.id}: {problem}"
        for row in conn.execute(select(api_origins.c.id, api_origins.c.origin))
        if (problem := _origin_problem(row.origin)) is not None
    ]
    description = (
        "API keys have known scopes, a SHA-256 hash and a jfn_sk_ prefix; origins are clean"
    )
    return CheckResult(API_KEYS_CHECK, description, len(problems), tuple(problems[:MAX_PROBLEMS]))


def _risk_rules_sound(conn: Connection) -> CheckResult:
    """Every risk rule version parses; each program's ``risk_version`` is one of its own."""
    problems = risk_rule_problems(conn)
    return CheckResult(
        RISK_RULES_CHECK, RISK_RULES_DESCRIPTION, len(problems), tuple(problems[:MAX_PROBLEMS])
    )


def verify_ledger(db: Database) -> VerifyReport:
    """Run every check and count the rows in one consistent snapshot, so a ledger being
    written meanwhile is verified as it stood at one moment (``Database.snapshot``: a
    ``REPEATABLE READ READ ONLY`` transaction on PostgreSQL, a read transaction on SQLite)."""
    with db.snapshot() as conn:
        checks = (
            *(_run_check(conn, *check) for check in CHECKS),
            _text_is_clean(conn),
            _api_credentials_sound(conn),
            _risk_rules_sound(conn),
        )
        counts = {
            name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for name, t in (
                ("members", members),
                ("lots", lots),
                ("entries", entries),
                ("operations", operations),
            )
        }
    return VerifyReport(checks=checks, counts=counts)
