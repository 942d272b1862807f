"""The frame of every ledger write: its identity for idempotency, the member lock, and running
it in a unit of work.

A write (:class:`LedgerWrite`) is named by its operation kind, its idempotency key and a
fingerprint of what was asked. Inside one service call it

1. locks the member row (:meth:`LedgerWrite.lock`), which also reads the program, the rule
   version in force and any operation already stored under the key, in one round trip;
2. answers a key used before for the same request with the stored result (a returned
   :class:`StoredResult`, never an exception), or raises :class:`IdempotencyConflict` when the
   request differs;
3. does its work and posts its moves (:mod:`loyalty.services.ledger`);

and :meth:`LedgerWrite.run` runs it as one call's write: its own unit of work, or a savepoint
of the caller's, answering a lost race on the key with the winner's result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from sqlalchemy import Connection, Row, bindparam, select
from sqlalchemy.exc import IntegrityError

from loyalty.db.tables import members, operations, programs, rule_versions
from loyalty.domain.checks import (
    derive_key,
    require_key,
    require_member_id,
    require_program_code,
)
from loyalty.domain.rules import RuleSet
from loyalty.errors import (
    ConfigurationError,
    IdempotencyConflict,
    MemberFrozen,
    MemberInactive,
    MemberNotFound,
    ProgramNotFound,
)
from loyalty.monitoring.operations import end_trace, note_subject, trace_write
from loyalty.services.ledger import LostRace
from loyalty.services.uow import RetryUnit, Target, UnitOfWork, writing

if TYPE_CHECKING:
    from loyalty.services.results import Record


@dataclass(frozen=True)
class StoredResult:
    """The stored result of an operation done before under the same key: what a replayed
    call returns (as its result type, with ``replayed=True``)."""

    result: Mapping[str, Any]


def request_hash(kind: str, params: Mapping[str, Any]) -> str:
    """A stable fingerprint of what was asked, to tell a retry from a different request."""
    canonical = json.dumps({"kind": kind, **params}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def program_row(conn: Connection, code: str) -> Row[Any]:
    """The program with this code, or :class:`ProgramNotFound`."""
    code = require_program_code(code)
    row = conn.execute(select(programs).where(programs.c.code == code)).first()
    if row is None:
        raise ProgramNotFound(f"no program has the code {code!r}", program=code)
    return row


def rule_version_at(program_id: Any) -> Any:
    """Scalar subquery: id of the rule version in force at ``:at`` for a program."""
    return (
        select(rule_versions.c.id)
        .where(
            rule_versions.c.program_id == program_id,
            rule_versions.c.effective_from <= bindparam("at"),
            rule_versions.c.cancelled_at.is_(None),
        )
        .order_by(rule_versions.c.effective_from.desc(), rule_versions.c.version.desc())
        .limit(1)
        .scalar_subquery()
    )


_LOCK_STATEMENTS: dict[tuple[tuple[str, ...], tuple[str, ...] | None], Any] = {}


# What every member lock reads, also a narrow one (see ``only`` in :func:`lock_member`).
_ALWAYS_LOCKED = ("id", "program_id", "external_id", "status")


def lock_columns(extra: Mapping[str, Any], only: tuple[str, ...] | None = None) -> list[Any]:
    """What a member lock reads (see :func:`lock_member`), for a SELECT that joins the
    member's program as ``programs``: every column, or with ``only`` the member's identity
    and status, the named member columns and ``program_``-prefixed program columns."""
    program_cols = [c.label(f"program_{c.name}") for c in programs.c if c.name != "id"]
    existing = (
        select(operations.c.id)
        .where(operations.c.program_id == programs.c.id, operations.c.key == bindparam("key"))
        .scalar_subquery()
    )
    extras = [extra[name].label(name) for name in sorted(extra)]
    if only is not None:
        wanted = (*_ALWAYS_LOCKED, *only)
        member_cols = [c for c in members.c if c.name in wanted]
        program_cols = [c for c in program_cols if c.name in wanted]
        return [*member_cols, *program_cols, existing.label("existing_operation_id"), *extras]
    return [
        members,
        *program_cols,
        rule_version_at(programs.c.id).label("rule_version_id"),
        existing.label("existing_operation_id"),
        *extras,
    ]


def _lock_statement(extra: Mapping[str, Any], only: tuple[str, ...] | None = None) -> Any:
    """The locking SELECT for a set of extra subqueries (and columns), built once and reused."""
    names = (tuple(sorted(extra)), only)
    stmt = _LOCK_STATEMENTS.get(names)
    if stmt is None:
        stmt = (
            select(*lock_columns(extra, only))
            .join(programs, programs.c.id == members.c.program_id)
            .where(
                programs.c.code == bindparam("program"),
                members.c.external_id == bindparam("member"),
            )
            .with_for_update(of=members)
        )
        _LOCK_STATEMENTS[names] = stmt
    return stmt


class LockedMember(Protocol):
    """What a member lock reads (:func:`lock_member`), typed: the member's columns, the
    program's (prefixed ``program_``), the rule version in force and any operation already
    stored under the write's key. At run time it is the locking read's row."""

    id: int
    program_id: int
    external_id: str
    email: str | None
    phone: str | None
    stripe_customer_id: str | None
    status: str
    available: int
    pending: int
    held: int
    frozen: int
    debt: int
    lifetime_earned: int
    cap_day_key: str | None
    cap_day_points: int
    cap_month_key: str | None
    cap_month_points: int
    cap_year_key: str | None
    cap_year_points: int
    created_at: dt.datetime
    tier: str | None
    tier_since: dt.datetime | None
    tier_period_end: dt.datetime | None
    tier_evaluate_at: dt.datetime | None
    tier_lock: str | None
    tier_locked_until: dt.datetime | None
    tier_warned_for: dt.datetime | None
    risk_hold: bool
    status_reason: str | None
    program_code: str
    program_name: str
    program_currency: str
    program_timezone: str
    program_rounding: str
    program_points_per_unit: int
    program_redeem_max_share_bp: int
    program_redeem_min_points: int
    program_redeem_min_order_minor: int
    program_hold_timeout_seconds: int
    program_refund_policy: str
    program_transfers_enabled: bool
    program_transfer_min_points: int
    program_transfer_max_points: int | None
    program_transfer_daily_limit: int | None
    program_transfer_fee_points: int
    program_transfer_fee_bp: int
    program_clearing_policy: str
    program_clearing_month: int
    program_clearing_day: int
    program_clearing_keep_months: int
    program_clearing_enabled_at: dt.datetime | None
    program_reminder_days: int
    program_webhooks_allow_private: bool
    program_risk_version: int | None
    program_created_at: dt.datetime
    rule_version_id: int | None
    existing_operation_id: int | None


def lock_member(
    conn: Connection,
    program: str,
    member: str,
    *,
    key: str | None,
    at: dt.datetime,
    extra: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    only: tuple[str, ...] | None = None,
) -> LockedMember:
    """Lock a member for writing and read everything a write needs in one statement.

    The row has the member's columns, the program's (prefixed ``program_``), the id of the
    rule version in force (``rule_version_id``), the id of an operation already stored under
    ``key`` (``existing_operation_id``) and any ``extra`` labelled scalar subqueries. The
    extras must be module-level constants using bind parameters, given in ``params``.

    A write that needs few of them names them in ``only`` (member columns, and program
    columns prefixed ``program_``): the row then holds those, the member's ``id``,
    ``program_id``, ``external_id`` and ``status``, and ``existing_operation_id`` (fewer
    columns to describe and convert on a hot path).
    """
    program = require_program_code(program)
    member = require_member_id(member)
    note_subject(program, member)
    values = {"key": key, "at": at, "program": program, "member": member, **(params or {})}
    row = conn.execute(_lock_statement(extra or {}, only), values).first()
    if row is None:
        program_row(conn, program)
        raise MemberNotFound(
            f"no member {member!r} in program {program!r}; enrol the member first",
            program=program,
            member=member,
        )
    return cast(LockedMember, row)


def require_active(row: LockedMember) -> None:
    """Raise :class:`MemberInactive` unless the locked member is active
    (:class:`MemberFrozen` when operations froze the account)."""
    if row.status == "suspended":
        raise frozen_error(row)
    if row.status != "active":
        raise MemberInactive(f"member {row.external_id!r} is {row.status}", member=row.external_id)


def frozen_error(row: Any) -> MemberFrozen:
    """The error for a write by or to a member whose account is frozen (账户冻结); ``row``
    has the member's ``external_id`` and, when read, ``status_reason``."""
    why = f" ({row.status_reason})" if getattr(row, "status_reason", None) else ""
    return MemberFrozen(
        f"member {row.external_id!r} is frozen{why}: no earning, spending or transfers until "
        "operations unfreeze the account",
        member=row.external_id,
    )


def stored_result(
    conn: Connection, operation_id: int | None, kind: str, req_hash: str
) -> StoredResult | None:
    """The stored result if the key was used before for this same request; ``None`` if the key
    is new; :class:`IdempotencyConflict` if it was used for a different request."""
    if operation_id is None:
        return None
    op = conn.execute(select(operations).where(operations.c.id == operation_id)).one()
    if op.kind != kind or op.request_hash != req_hash:
        raise IdempotencyConflict(
            f"the idempotency key {op.key!r} was already used for a different {op.kind} request",
            key=op.key,
        )
    return StoredResult(op.result)


def _winner_result(
    target: Target, program_id: int, key: str, kind: str, req_hash: str
) -> StoredResult:
    """After losing a race on a key: the winner's stored result, or a conflict error."""
    with target.read() as conn:
        op_id = conn.execute(
            select(operations.c.id).where(
                operations.c.program_id == program_id, operations.c.key == key
            )
        ).scalar_one()
        found = stored_result(conn, op_id, kind, req_hash)
    assert found is not None
    return found


R = TypeVar("R", bound="Record")


def run_write(
    target: Target,
    work: Callable[[Connection], R | StoredResult],
    *,
    result_type: type[R],
    key: str,
    kind: str,
    req_hash: str,
) -> R:
    """Run ``work(conn)`` as one service call's write (see :func:`~loyalty.services.uow.writing`);
    a replayed key (``work`` returned its :class:`StoredResult`) answers the stored result.

    A lost race on the key is answered in place with the winner's result: the call's writes
    are rolled back (its transaction, or its savepoint in a unit of work) and the result read
    after. In a unit of work without savepoints it raises :class:`RetryUnit` instead.

    Every write is counted, timed and logged with its outcome; see
    :mod:`loyalty.monitoring.operations`.
    """
    write = LedgerWrite(kind, key, req_hash, result_type)
    trace, token = trace_write(kind, key)
    try:
        done = _attempt(target, work, write)
    except BaseException as exc:
        trace.failed(exc, retried=isinstance(exc, RetryUnit))
        raise
    finally:
        end_trace(token)
    trace.succeeded(done)
    return done


def _attempt(
    target: Target, work: Callable[[Connection], R | StoredResult], write: LedgerWrite[R]
) -> R:
    """:func:`run_write` without its report: ``work`` once, or twice after a duplicate."""
    key, result_type = write.key, write.result_type
    for attempt in (1, 2):
        try:
            with writing(target) as uow:
                done = work(uow.connection)
            if isinstance(done, StoredResult):
                return result_type.from_record(done.result, replayed=True)
            return done
        except LostRace as race:
            if not _isolated(target):
                raise RetryUnit(f"the idempotency key {key!r} was stored meanwhile") from None
            found = _winner_result(target, race.program_id, key, write.kind, write.req_hash)
            return result_type.from_record(found.result, replayed=True)
        except IntegrityError as exc:
            # On PostgreSQL the locking read's subqueries use the snapshot taken before the
            # member lock was granted, so they miss what the previous lock holder committed
            # (an earning or a hold of the same order under another key). Once more, with a
            # fresh snapshot: that answers AlreadyExists (or a replay) instead.
            if getattr(exc.orig, "sqlstate", None) != "23505":
                raise
            if not _isolated(target):
                raise RetryUnit("a concurrent write stored the same thing meanwhile") from exc
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _isolated(target: Target) -> bool:
    """Whether a call's failure can be rolled back alone (its own transaction or savepoint)."""
    return not isinstance(target, UnitOfWork) or target.isolate_calls


@dataclass(frozen=True)
class LedgerWrite(Generic[R]):
    """One ledger write's identity: its operation kind, its idempotency key, the fingerprint of
    what was asked, and the result type a replay answers with."""

    kind: str
    key: str
    req_hash: str
    result_type: type[R]

    @classmethod
    def of(
        cls, kind: str, *, key: str, request: Mapping[str, Any], result_type: type[R]
    ) -> LedgerWrite[R]:
        """The write of ``kind`` under ``key`` for ``request`` (what the caller asked)."""
        return cls(kind, key, request_hash(kind, request), result_type)

    @property
    def identity(self) -> dict[str, str]:
        """``key``, ``kind`` and ``req_hash``: how the ledger records the operation."""
        return {"key": self.key, "kind": self.kind, "req_hash": self.req_hash}

    def lock(
        self,
        conn: Connection,
        program: str,
        member: str,
        *,
        at: dt.datetime,
        extra: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        active: bool = True,
        only: tuple[str, ...] | None = None,
    ) -> LockedMember | StoredResult:
        """Lock the member (see :func:`lock_member`); a key used before for this request
        answers its stored result. With ``active``, a member who is not active is refused."""
        row = lock_member(
            conn, program, member, key=self.key, at=at, extra=extra, params=params, only=only
        )
        done = self.replayed(conn, row)
        if done is not None:
            return done
        if active:
            require_active(row)
        return row

    def replayed(self, conn: Connection, locked: LockedMember) -> StoredResult | None:
        """The stored result when ``locked`` (a locking read) found this key used before."""
        note_subject(getattr(locked, "program_code", None), locked.external_id)
        return stored_result(conn, locked.existing_operation_id, self.kind, self.req_hash)

    def run(self, target: Target, work: Callable[[Connection], R | StoredResult]) -> R:
        """``work`` as one service call's write (see :func:`run_write`)."""
        return run_write(
            target,
            work,
            result_type=self.result_type,
            key=self.key,
            kind=self.kind,
            req_hash=self.req_hash,
        )


class RuleCache:
    """Rule versions are immutable, so their parsed rule sets are cached by id."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[int, RuleSet]] = {}

    def get(self, conn: Connection, rule_version_id: int | None) -> tuple[int, RuleSet]:
        """``(version number, rule set)`` of a rule version.

        ``None`` (no version in force: the clock stands before the program was created) is
        a :class:`ConfigurationError`.
        """
        if rule_version_id is None:
            raise ConfigurationError(
                "the program has no rules in force at this time (before it was created); "
                "check the clock, or publish rules that take effect earlier"
            )
        cached = self._by_id.get(rule_version_id)
        if cached is None:
            row = conn.execute(
                select(rule_versions.c.version, rule_versions.c.rules).where(
                    rule_versions.c.id == rule_version_id
                )
            ).one()
            cached = (row.version, RuleSet.from_dict(row.rules))
            self._by_id[rule_version_id] = cached
        return cached


def rule_cache(target: Target) -> RuleCache:
    """The rule cache of ``target``'s database (shared by every call and unit of work)."""
    return target.cache(RuleCache)


def resolve_key(explicit: str | None, derived: str) -> str:
    """The explicit idempotency key if given (validated as it is), else the derived one
    (see :func:`derive_key`: valid for any clean member, order or refund id)."""
    return require_key(explicit) if explicit is not None else derive_key(derived)
