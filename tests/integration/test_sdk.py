"""The SDK client on SQLite and PostgreSQL: every method, its defaults, and its early errors.

The client is a thin door: these tests check that each method reaches the core with the
program and currency filled in, that results are the core's frozen dataclasses, and that
misuse fails at once with an error that says what to do and writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import PROGRAM, make_program, row_counts
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from loyalty import migrate
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from sdk import (
    AdjustmentResult,
    AlreadyExists,
    Balance,
    ConfigurationError,
    CurrencyMismatch,
    EarnQuote,
    EarnResult,
    Forecast,
    HistoryPage,
    HoldNotActive,
    HoldResult,
    IdempotencyConflict,
    InvalidAmount,
    InvalidInput,
    Jifen,
    LoyaltyError,
    MemberInfo,
    MemberNotFound,
    NaiveDatetime,
    ProgramNotFound,
    RedemptionQuote,
    Reminder,
    ReminderResult,
    ReversalResult,
    TransferResult,
)

RULES = {
    "base_ratio": "1",
    "category_ratios": {"electronics": "2"},
    "actions": {"sign_in": {"points": 5, "limit": 1, "period": "day"}},
    "expiry": {"months": 3},
}


@pytest.fixture
def shop(db: Database) -> Database:
    """The ``shop`` program (CNY, 30% payable in points, transfers on) with two members."""
    make_program(db, rules=RULES, redeem_max_share_bp=3000, transfers_enabled=True)
    return db


@pytest.fixture
def client(shop: Database, database_url: str, clock: FixedClock) -> Iterator[Jifen]:
    """A client of the ``shop`` program on the test's database and clock."""
    with Jifen(database_url, program=PROGRAM, clock=clock) as jifen:
        yield jifen


def assert_frozen(result: Any) -> None:
    assert dataclasses.is_dataclass(result) and not isinstance(result, type)
    first = dataclasses.fields(result)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(result, first, None)


def assert_clean(db: Database) -> None:
    report = s.verify_ledger(db)
    assert report.ok, [c for c in report.checks if not c.ok]


# --- every method once ----------------------------------------------------------------------


def test_every_method_once(client: Jifen, shop: Database, clock: FixedClock) -> None:
    results: list[Any] = []

    alice = client.enrol(member="alice", email="alice@example.com")
    client.enrol(member="bob")
    assert alice == MemberInfo("shop", "alice", "alice@example.com", None, "active")
    assert client.enrol(member="alice", email="alice@example.com") == alice  # idempotent
    linked = client.link_stripe_customer(member="alice", stripe_customer_id="cus_123")
    assert linked.stripe_customer_id == "cus_123"
    assert client.get_member(member="alice") == linked
    results += [alice, linked]

    lines = [
        {"amount_minor": 10000, "sku": "CABLE", "category": "electronics"},
        {"amount_minor": 5050, "sku": "TEA", "category": "grocery"},
    ]
    quote = client.quote(lines=lines, member="alice")
    assert isinstance(quote, EarnQuote)
    assert (quote.points, quote.points_after_caps) == (250, 250)
    assert client.quote(amount_minor=9999).points == 99
    earned = client.earn(member="alice", order_id="O-1", lines=lines)
    assert isinstance(earned, EarnResult)
    assert (earned.points_granted, earned.status, earned.replayed) == (250, "available", False)
    by_total = client.earn(member="bob", order_id="O-2", amount_minor=100000)
    assert by_total.points_granted == 1000
    action = client.earn_action(member="alice", action="sign_in", reference="2026-11-21")
    assert action.points_granted == 5
    results += [quote, earned, by_total, action]

    offer = client.quote_redemption(member="alice", order_total_minor=50000)
    assert isinstance(offer, RedemptionQuote)
    assert (offer.available, offer.max_points, offer.max_discount_minor) == (255, 255, 255)
    held = client.hold(member="alice", order_id="O-3", points=200, order_total_minor=50000)
    assert isinstance(held, HoldResult)
    assert (held.status, held.discount_minor, held.currency) == ("active", 200, "CNY")
    captured = client.capture(order_id="O-3")
    assert captured.status == "captured"
    paid = client.earn(
        member="alice", order_id="O-3", amount_minor=50000, paid_with_points_minor=200
    )
    assert paid.points_granted == 498  # 498.00 CNY paid in money
    held_again = client.hold(member="bob", order_id="O-4", points=100, order_total_minor=10000)
    released = client.release(order_id="O-4")
    assert (held_again.status, released.status) == ("active", "released")
    results += [offer, held, captured, paid, released]

    refund = client.refund(order_id="O-3", refund_id="R-1", amount_minor=24900)
    assert isinstance(refund, ReversalResult)
    assert (refund.status, refund.points, refund.frozen) == ("pending", 249, 249)
    done = client.complete_refund(refund_id="R-1")
    assert (done.status, done.returned) == ("succeeded", 100)
    failing = client.refund(order_id="O-2", refund_id="R-2", amount_minor=10000)
    failed = client.fail_refund(refund_id="R-2")
    assert (failing.points, failed.status) == (100, "failed")
    dispute = client.open_dispute(order_id="O-2", dispute_id="D-1", amount_minor=20000)
    won = client.close_dispute(dispute_id="D-1", won=True)
    assert (dispute.status, dispute.frozen, won.status) == ("open", 200, "won")
    results += [refund, done, failing, failed, dispute, won]

    sent = client.transfer(sender="bob", recipient="alice", points=300, transfer_id="T-1")
    assert isinstance(sent, TransferResult)
    assert (sent.points, sent.fee) == (300, 0)
    grant = client.adjust(member="alice", points=50, reason="goodwill", adjustment_id="A-1")
    deduct = client.adjust(
        member="alice", points=-20, reason="correction", adjustment_id="A-2", actor="ops"
    )
    assert isinstance(grant, AdjustmentResult)
    assert (grant.points, deduct.points, deduct.actor) == (50, -20, "ops")
    results += [sent, grant, deduct]

    balance = client.balance(member="alice")
    assert isinstance(balance, Balance)
    # 250 + 5 - 200 + 498 - 249 + 100 (returned) + 300 + 50 - 20
    assert (balance.available, balance.held, balance.frozen, balance.debt) == (734, 0, 0, 0)
    assert balance.lifetime_earned == 250 + 5 + 498
    page = client.history(member="alice", limit=3)
    assert isinstance(page, HistoryPage)
    assert len(page.items) == 3 and page.next_cursor is not None
    older = client.history(member="alice", limit=50, cursor=page.next_cursor)
    assert older.items and older.items[0].id < page.items[-1].id
    results += [balance, page, page.items[0]]

    forecast = client.forecast(days=120)
    assert isinstance(forecast, Forecast)
    assert forecast.program == "shop" and forecast.points > 0
    assert client.forecast(days=120, member="alice").points == 734
    results.append(forecast)

    reminded: list[Reminder] = []
    assert client.on_reminder(reminded.append) == reminded.append
    clock.set(clock.now() + dt.timedelta(days=85))  # the lots expire within 15 days
    sent_reminders = client.send_reminders()
    assert isinstance(sent_reminders, ReminderResult)
    assert sent_reminders.created == 2
    assert sorted(r.member for r in reminded) == ["alice", "bob"]
    assert client.send_reminders().created == 0  # never twice
    results += [sent_reminders, reminded[0]]

    for result in results:
        assert_frozen(result)
    assert_clean(shop)


def test_writes_replay_with_the_derived_key_and_conflict_when_changed(client: Jifen) -> None:
    client.enrol(member="alice")
    first = client.earn(member="alice", order_id="O-1", amount_minor=10000)
    again = client.earn(member="alice", order_id="O-1", amount_minor=10000)
    assert again == dataclasses.replace(first, replayed=True)
    with pytest.raises(IdempotencyConflict) as err:
        client.earn(member="alice", order_id="O-1", amount_minor=20000)
    assert err.value.code == "idempotency_conflict"
    keyed = client.earn(member="alice", order_id="O-2", amount_minor=500, idempotency_key="k-2")
    assert client.earn(
        member="alice", order_id="O-2", amount_minor=500, idempotency_key="k-2"
    ).replayed
    assert keyed.points_granted == 5


def test_hold_retry_replays_the_first_answer_and_capture_tells_the_state(client: Jifen) -> None:
    """What the ``hold`` docstring promises about retries."""
    client.enrol(member="alice")
    client.earn(member="alice", order_id="O-1", amount_minor=100000)
    args: dict[str, Any] = {"member": "alice", "points": 300, "order_total_minor": 100000}

    client.hold(order_id="O-2", **args)
    assert client.capture(order_id="O-2").status == "captured"
    retried = client.hold(order_id="O-2", **args)
    assert (retried.status, retried.replayed) == ("active", True)
    state = client.capture(order_id="O-2")
    assert (state.status, state.replayed) == ("captured", True)
    with pytest.raises(HoldNotActive) as err:
        client.release(order_id="O-2")
    assert err.value.details["status"] == "captured"

    client.hold(order_id="O-3", **args)
    client.release(order_id="O-3")
    assert client.hold(order_id="O-3", **args).status == "active"
    assert client.release(order_id="O-3").status == "released"
    with pytest.raises(HoldNotActive) as err:
        client.capture(order_id="O-3")
    assert err.value.details["status"] == "released"
    assert client.balance(member="alice").available == 1000 - 300


# --- defaults and construction --------------------------------------------------------------


def test_the_default_currency_is_the_programs(
    shop: Database, database_url: str, clock: FixedClock
) -> None:
    with Jifen(database_url, program=PROGRAM, clock=clock) as jifen:
        assert jifen.currency == "CNY" and jifen.program == "shop"
        assert jifen.program_info.redeem_max_share_bp == 3000
        jifen.enrol(member="alice")
        assert jifen.earn(member="alice", order_id="O-1", amount_minor=1000).points_granted == 10
        with pytest.raises(CurrencyMismatch):  # an explicit currency still wins
            jifen.earn(member="alice", order_id="O-2", amount_minor=1000, currency="USD")
    with Jifen(database_url, program=PROGRAM, currency="cny") as jifen:
        assert jifen.currency == "CNY"
    before = row_counts(shop)
    with pytest.raises(CurrencyMismatch) as err:
        Jifen(database_url, program=PROGRAM, currency="USD")
    assert "CNY" in err.value.message
    assert row_counts(shop) == before


def test_the_url_may_come_from_the_environment(
    shop: Database, database_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIFEN_DATABASE_URL", database_url)
    with Jifen(program=PROGRAM, clock=clock) as jifen:
        assert jifen.enrol(member="alice").external_id == "alice"
    assert s.get_member(shop, program=PROGRAM, external_id="alice").status == "active"


def test_the_context_manager_disposes_the_engine_it_created(
    shop: Database, database_url: str
) -> None:
    with Jifen(database_url, program=PROGRAM) as jifen:
        jifen.enrol(member="alice")
        pool = jifen.database.engine.pool
        assert pool.checkedin() >= 1
    assert jifen.database.engine.pool is not pool  # disposed: a new, empty pool
    assert jifen.database.engine.pool.checkedin() == 0
    assert "shop" in repr(jifen)


def test_a_client_built_from_the_applications_engine_shares_its_database(
    shop: Database, database_url: str, backend: str, clock: FixedClock
) -> None:
    engine = create_engine(database_url)
    try:
        with Jifen(engine=engine, program=PROGRAM, clock=clock) as jifen:
            jifen.enrol(member="alice")
            jifen.earn(member="alice", order_id="O-1", amount_minor=4200)
            if backend == "postgres":
                assert jifen.database.engine is engine
            else:  # SQLite: Jifen opens its own engine on the same file (BEGIN IMMEDIATE)
                assert jifen.database.engine is not engine
                assert jifen.database.engine.url.database == engine.url.database
        with engine.connect() as conn:  # the application sees Jifen's writes
            lifetime = conn.execute(
                text("SELECT lifetime_earned FROM members WHERE external_id = 'alice'")
            ).scalar_one()
        assert lifetime == 42
        if backend == "postgres":
            assert engine.pool.checkedin() >= 1  # close() left the application's pool alone
    finally:
        engine.dispose()


# --- misuse: a helpful error at once, nothing written ---------------------------------------


def test_no_database_url_says_to_pass_one_or_set_the_variable(
    shop: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JIFEN_DATABASE_URL", raising=False)
    before = row_counts(shop)
    with pytest.raises(ConfigurationError) as err:
        Jifen(program=PROGRAM)
    assert "pass a database URL or set JIFEN_DATABASE_URL" in err.value.message
    assert err.value.code == "configuration_error"
    with pytest.raises(ConfigurationError, match="not both"):
        Jifen("sqlite:///x.db", engine=create_engine("sqlite://"), program=PROGRAM)
    with pytest.raises(ConfigurationError, match="in-memory SQLite"):
        Jifen(engine=create_engine("sqlite://"), program=PROGRAM)
    assert row_counts(shop) == before


def test_an_unknown_program_is_refused_at_once(shop: Database, database_url: str) -> None:
    before = row_counts(shop)
    with pytest.raises(ProgramNotFound) as err:
        Jifen(database_url, program="no-such-shop")
    assert "create the program first" in err.value.message
    assert err.value.details == {"program": "no-such-shop"}
    with pytest.raises(InvalidInput):
        Jifen(database_url, program="")
    assert row_counts(shop) == before


def test_a_database_without_the_schema_says_to_run_db_upgrade(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    if backend == "sqlite":
        missing = tmp_path / "missing.db"
        with pytest.raises(ConfigurationError, match="jifen db upgrade"):
            Jifen(f"sqlite:///{missing}", program=PROGRAM)
        assert not missing.exists()  # the typo did not create an empty database
        empty = tmp_path / "empty.db"
        sqlite3.connect(empty).close()
        with pytest.raises(ConfigurationError, match=r"no Jifen schema.*jifen db upgrade"):
            Jifen(f"sqlite:///{empty}", program=PROGRAM)
        old = f"sqlite:///{tmp_path / 'old.db'}"
        migrate.upgrade(old, "0001")
        with pytest.raises(ConfigurationError, match=r"older than this Jifen.*jifen db upgrade"):
            Jifen(old, program=PROGRAM)
        return
    pg_url: str = request.getfixturevalue("pg_url")
    name = f"jifen_empty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        with pytest.raises(ConfigurationError, match=r"no Jifen schema.*jifen db upgrade"):
            Jifen(url, program=PROGRAM)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_an_unreachable_server_is_a_configuration_error(shop: Database) -> None:
    with pytest.raises(ConfigurationError, match="check the URL and that the server is running"):
        Jifen("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", program=PROGRAM)


def test_a_naive_clock_is_refused_when_the_client_is_built(
    shop: Database, database_url: str
) -> None:
    naive = dt.datetime(2026, 11, 21, 10, 0)
    before = row_counts(shop)
    with pytest.raises(NaiveDatetime) as err:
        FixedClock(naive)
    assert "aware datetime" in err.value.message

    class NaiveClock:
        def now(self) -> dt.datetime:
            return naive

    with pytest.raises(NaiveDatetime) as err:
        Jifen(database_url, program=PROGRAM, clock=NaiveClock())
    assert "clock.now() has no time zone" in err.value.message
    with pytest.raises(ConfigurationError, match="FixedClock"):
        Jifen(database_url, program=PROGRAM, clock=naive)  # type: ignore[arg-type]
    assert row_counts(shop) == before


@pytest.mark.parametrize(
    ("call", "hint"),
    [
        (lambda j: j.hold(member="alice", order_id="O-9", points=10.0, order_total_minor=9000),
         "whole numbers"),
        (lambda j: j.earn(member="alice", order_id="O-9", amount_minor=99.5), "whole numbers"),
        (lambda j: j.adjust(member="alice", points=1.5, reason="x", adjustment_id="A-9"),
         "integer"),
        (lambda j: j.transfer(sender="alice", recipient="bob", points=2.0, transfer_id="T-9"),
         "whole numbers"),
        (lambda j: j.earn(member="alice", order_id="O-9", amount_minor=-100), "positive"),
        (lambda j: j.earn(member="alice", order_id="O-9", lines=[{"amount_minor": -5}]),
         "positive"),
        (lambda j: j.hold(member="alice", order_id="O-9", points=-10, order_total_minor=9000),
         "positive"),
        (lambda j: j.refund(order_id="O-1", refund_id="R-9", amount_minor=-500), "positive"),
        (lambda j: j.open_dispute(order_id="O-1", dispute_id="D-9", amount_minor=0),
         "positive"),
        (lambda j: j.quote(amount_minor=True), "integer"),
    ],
    ids=[
        "float-hold-points",
        "float-amount",
        "float-adjustment",
        "float-transfer",
        "negative-amount",
        "negative-line",
        "negative-points",
        "negative-refund",
        "zero-dispute",
        "bool-amount",
    ],
)  # fmt: skip
def test_bad_amounts_are_refused_and_write_nothing(
    client: Jifen, shop: Database, call: Any, hint: str
) -> None:
    client.enrol(member="alice")
    client.enrol(member="bob")
    client.earn(member="alice", order_id="O-1", amount_minor=100000)
    before = row_counts(shop)
    with pytest.raises(InvalidAmount) as err:
        call(client)
    assert hint in err.value.message
    assert err.value.code == "invalid_amount" and err.value.http_status == 400
    assert row_counts(shop) == before


def test_other_bad_input_names_what_to_do_and_writes_nothing(client: Jifen, shop: Database) -> None:
    client.enrol(member="alice")
    before = row_counts(shop)
    with pytest.raises(MemberNotFound, match="enrol the member first"):
        client.earn(member="carol", order_id="O-1", amount_minor=1000)
    with pytest.raises(InvalidInput, match="amount_minor or lines"):
        client.earn(member="alice", order_id="O-1")
    with pytest.raises(AlreadyExists, match="link_stripe_customer"):
        client.enrol(member="alice", email="other@example.com")
    with pytest.raises(LoyaltyError) as err:
        client.hold(member="alice", order_id="O-2", points=10, order_total_minor=1000)
    assert err.value.code == "insufficient_points"
    assert row_counts(shop) == before
