"""The SDK's two transports give the same answers: embedded (the services in-process) and
remote (``Jifen("http://…")`` against the HTTP API on a live loopback server).

One checkout scenario (every method, the replays, the errors) runs on a fresh database
through each transport; the outcomes, results and errors alike, must be equal step by step.
The remote client's own concerns (its construction checks, what it cannot do, its repr) are
tested after.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import itertools
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from loyalty.db import Database
from loyalty.db.models import Base
from loyalty.domain.clock import FixedClock
from loyalty.domain.rules import OrderLine
from loyalty.errors import LoyaltyError
from sdk import (
    ApprovalRequired,
    ConfigurationError,
    EarnResult,
    Jifen,
    NotAuthenticated,
    PermissionDenied,
)
from sdk._remote import ROUTES, RemoteJifen
from tests.conftest import START
from tests.http_api.conftest import new_key
from tests.http_api.live_server import live_api
from tests.integration.helpers import PROGRAM, make_program

TRANSPORTS = ["embedded", "remote"]
ACTION_RULES = {"actions": {"sign_in": {"points": 5, "limit": 1, "period": "day"}}}

Outcome = tuple[str, Any]


# --- the two transports ---------------------------------------------------------------------


def prepare(db: Database) -> str:
    """The program (transfers allowed, a sign-in action) and a key with every scope."""
    make_program(db, rules=ACTION_RULES, transfers_enabled=True)
    return new_key(db, "admin")


@contextmanager
def client_for(transport: str, url: str, clock: FixedClock) -> Iterator[Jifen]:
    """A client of the program on the database at ``url``: in-process, or through a live
    server of the API on that database."""
    db = Database.from_url(url, clock=clock)
    try:
        key = prepare(db)
        if transport == "embedded":
            with Jifen(url, program=PROGRAM, clock=clock) as jifen:
                yield jifen
        else:
            with live_api(db) as base_url, Jifen(base_url, api_key=key, program=PROGRAM) as jifen:
                yield jifen
    finally:
        db.dispose()


@pytest.fixture
def fresh_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """A maker of empty migrated databases on the test's backend: SQLite files side by side;
    on PostgreSQL the session's database emptied again (use one at a time)."""
    numbers = itertools.count()

    def make() -> str:
        if backend == "sqlite":
            path = tmp_path / f"jifen-{next(numbers)}.db"
            shutil.copy(request.getfixturevalue("sqlite_template"), path)
            return f"sqlite:///{path}"
        url: str = request.getfixturevalue("pg_url")
        _empty(url)
        return url

    return make


def _empty(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=TRANSPORTS)
def jifen(request: pytest.FixtureRequest, database_url: str, clock: FixedClock) -> Iterator[Jifen]:
    """A client of each transport on the test's backend (the program prepared)."""
    with client_for(str(request.param), database_url, clock) as client:
        yield client


# --- the scenario ---------------------------------------------------------------------------


def outcome(call: Callable[[], Any]) -> Any:
    """What a call gave: its result, or its error as class, code, message and details."""
    try:
        return call()
    except LoyaltyError as exc:
        return ("raised", type(exc), exc.code, exc.message, exc.details)
    except TypeError:  # the message names the method's own function: not compared
        return ("raised", TypeError)


def scenario(jifen: Jifen, clock: FixedClock) -> list[Outcome]:
    """Every method of the client once or more, and the errors a checkout meets."""
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("enrol alice", lambda: jifen.enrol(member="alice", email="alice@example.com")),
        ("enrol bob", lambda: jifen.enrol(member="bob")),
        ("enrol carol", lambda: jifen.enrol(member="carol", stripe_customer_id="cus_carol")),
        ("enrol alice again", lambda: jifen.enrol(member="alice", email="alice@example.com")),
        ("enrol alice otherwise", lambda: jifen.enrol(member="alice", email="a@example.org")),
        (
            "link stripe",
            lambda: jifen.link_stripe_customer(member="bob", stripe_customer_id="cus_b"),
        ),
        ("get member", lambda: jifen.get_member(member="bob")),
        ("quote", lambda: jifen.quote(amount_minor=12_345)),
        (
            "quote lines",
            lambda: jifen.quote(
                lines=[OrderLine(10_000, sku="A-1", category="tea"), {"amount_minor": 2_345}],
                member="alice",
            ),
        ),
        ("earn", lambda: jifen.earn(member="alice", order_id="o-1", amount_minor=120_000)),
        ("earn replay", lambda: jifen.earn(member="alice", order_id="o-1", amount_minor=120_000)),
        (
            "earn lines",
            lambda: jifen.earn(
                member="bob",
                order_id="o-2",
                lines=[{"amount_minor": 30_000, "sku": "B"}, OrderLine(20_000)],
                currency="CNY",
            ),
        ),
        (
            "earn action",
            lambda: jifen.earn_action(member="alice", action="sign_in", reference="d1"),
        ),
        (
            "earn action over its limit",
            lambda: jifen.earn_action(member="alice", action="sign_in", reference="d2"),
        ),
        (
            "quote redemption",
            lambda: jifen.quote_redemption(member="alice", order_total_minor=50_000),
        ),
        (
            "hold",
            lambda: jifen.hold(
                member="alice", order_id="o-3", points=100, order_total_minor=50_000
            ),
        ),
        ("capture", lambda: jifen.capture(order_id="o-3")),
        ("capture again", lambda: jifen.capture(order_id="o-3")),
        (
            "hold to release",
            lambda: jifen.hold(
                member="alice",
                order_id="o-4",
                points=50,
                order_total_minor=50_000,
                idempotency_key="hold-o-4",
            ),
        ),
        ("release", lambda: jifen.release(order_id="o-4")),
        ("capture released", lambda: jifen.capture(order_id="o-4")),
        (
            "refund pending",
            lambda: jifen.refund(order_id="o-1", refund_id="re-1", amount_minor=20_000),
        ),
        ("complete refund", lambda: jifen.complete_refund(refund_id="re-1")),
        (
            "refund to fail",
            lambda: jifen.refund(order_id="o-1", refund_id="re-2", amount_minor=10_000),
        ),
        ("fail refund", lambda: jifen.fail_refund(refund_id="re-2")),
        (
            "refund succeeded",
            lambda: jifen.refund(
                order_id="o-2", refund_id="re-3", amount_minor=5_000, succeeded=True
            ),
        ),
        (
            "open dispute",
            lambda: jifen.open_dispute(order_id="o-2", dispute_id="dp-1", amount_minor=10_000),
        ),
        ("close dispute", lambda: jifen.close_dispute(dispute_id="dp-1", won=True)),
        (
            "transfer",
            lambda: jifen.transfer(
                sender="alice", recipient="carol", points=100, transfer_id="t-1"
            ),
        ),
        (
            "adjust",
            lambda: jifen.adjust(
                member="carol", points=250, reason="goodwill", adjustment_id="a-1", actor="ops"
            ),
        ),
        (
            "adjust down",
            lambda: jifen.adjust(
                member="carol", points=-20, reason="correction", adjustment_id="a-2", actor="ops"
            ),
        ),
        ("balance alice", lambda: jifen.balance(member="alice", expiring_within_days=120)),
        ("balance bob", lambda: jifen.balance(member="bob")),
        ("history page 1", lambda: jifen.history(member="alice", limit=3)),
        ("forecast alice", lambda: jifen.forecast(member="alice", days=120)),
        ("forecast program", lambda: jifen.forecast(days=120)),
        ("forecast of what is due now", lambda: jifen.forecast(days=0)),
        # errors
        ("no such member", lambda: jifen.get_member(member="nobody")),
        (
            "insufficient points",
            lambda: jifen.hold(
                member="bob", order_id="o-9", points=10**9, order_total_minor=10**12
            ),
        ),
        (
            "float amount",
            lambda: jifen.earn(member="bob", order_id="o-5", amount_minor=100.5),  # type: ignore[arg-type]
        ),
        (
            "keyed earn",
            lambda: jifen.earn(
                member="bob", order_id="o-6", amount_minor=10_000, idempotency_key="k-6"
            ),
        ),
        (
            "same key, other body",
            lambda: jifen.earn(
                member="bob", order_id="o-6", amount_minor=20_000, idempotency_key="k-6"
            ),
        ),
        (
            "other currency",
            lambda: jifen.earn(member="bob", order_id="o-7", amount_minor=100, currency="USD"),
        ),
        (
            "unknown keyword",
            lambda: jifen.earn(member="bob", order_id="o-8", amount_minor=100, colour="red"),  # type: ignore[call-arg]
        ),
        ("positional argument", lambda: jifen.balance("bob")),  # type: ignore[misc]
        ("bad key", lambda: jifen.capture(order_id="o-3", idempotency_key="with space")),
        ("unknown hold", lambda: jifen.release(order_id="o-404")),
        ("lone surrogate in a body", lambda: jifen.enrol(member="bad\ud800")),
        ("lone surrogate in a path", lambda: jifen.get_member(member="bad\ud800")),
        ("empty member in a path", lambda: jifen.balance(member="")),
        ("member id of dots", lambda: jifen.balance(member="..")),
        ("member id with a slash", lambda: jifen.history(member="a/b?c#d")),
        ("non-ASCII member", lambda: jifen.enrol(member="ünïcødé 会员")),
        ("non-ASCII member read", lambda: jifen.get_member(member="ünïcødé 会员")),
        ("no such refund", lambda: jifen.complete_refund(refund_id="re-404")),
        ("close member", lambda: jifen.close_member(member="carol")),
        ("close member again", lambda: jifen.close_member(member="carol")),
        (
            "closed member earns",
            lambda: jifen.earn(member="carol", order_id="o-10", amount_minor=1),
        ),
    ]
    seen = [(name, outcome(call)) for name, call in steps]
    page = dict(seen)["history page 1"]
    seen.append(
        (
            "history page 2",
            outcome(lambda: jifen.history(member="alice", limit=3, cursor=page.next_cursor)),
        )
    )
    clock.advance(dt.timedelta(days=100))
    seen.append(("balance after expiry date", outcome(lambda: jifen.balance(member="bob"))))
    return seen


def plain(value: Any) -> Any:
    """``value`` with every dataclass field shown, those left out of ``==`` too (a
    ``last_day``); datetimes must be aware."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return (type(value), fields)
    if isinstance(value, tuple | list):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        assert value.utcoffset() == dt.timedelta(0), value
    return value


def test_one_scenario_gives_the_same_outcomes_on_both_transports(
    fresh_url: Callable[[], str],
) -> None:
    outcomes: dict[str, list[Outcome]] = {}
    for transport in TRANSPORTS:
        clock = FixedClock(START)
        with client_for(transport, fresh_url(), clock) as client:
            outcomes[transport] = scenario(client, clock)
    embedded, remote = outcomes["embedded"], outcomes["remote"]
    assert [name for name, _ in remote] == [name for name, _ in embedded]
    for (name, here), (_, there) in zip(embedded, remote, strict=True):
        assert plain(there) == plain(here), name
    by_name = dict(embedded)
    # the scenario does what it says on both transports (checked once: they are equal)
    first, replay = by_name["earn"], by_name["earn replay"]
    assert isinstance(first, EarnResult) and first.points_granted > 0 and not first.replayed
    assert replay == dataclasses.replace(first, replayed=True)
    assert by_name["capture again"].replayed
    errors = {
        name: o[1].__name__ for name, o in embedded if isinstance(o, tuple) and o[:1] == ("raised",)
    }
    assert errors == {
        "enrol alice otherwise": "AlreadyExists",
        "capture released": "HoldNotActive",
        "no such member": "MemberNotFound",
        "insufficient points": "InsufficientPoints",
        "float amount": "InvalidAmount",
        "same key, other body": "IdempotencyConflict",
        "other currency": "CurrencyMismatch",
        "unknown keyword": "TypeError",
        "positional argument": "TypeError",
        "bad key": "InvalidIdempotencyKey",
        "unknown hold": "HoldNotFound",
        "lone surrogate in a body": "InvalidText",
        "lone surrogate in a path": "InvalidText",
        "empty member in a path": "InvalidInput",
        "member id of dots": "MemberNotFound",
        "member id with a slash": "MemberNotFound",
        "no such refund": "ReversalNotFound",
        "closed member earns": "MemberInactive",
    }
    assert by_name["earn action over its limit"].capped_by == "action_limit"
    assert by_name["history page 1"].next_cursor is not None
    assert by_name["history page 2"].items
    assert by_name["balance alice"].expiring and by_name["forecast alice"].items


# --- each transport -------------------------------------------------------------------------


def test_lines_may_be_dataclasses_or_mappings(jifen: Jifen) -> None:
    jifen.enrol(member="dora")
    as_mappings = jifen.quote(
        lines=[{"amount_minor": 5_000, "category": "tea"}, {"amount_minor": 700}], member="dora"
    )
    as_lines = jifen.quote(lines=(OrderLine(5_000, category="tea"), OrderLine(700)), member="dora")
    assert as_lines == as_mappings
    assert as_lines.points == 57


def test_one_client_is_shared_by_threads(jifen: Jifen) -> None:
    jifen.enrol(member="dora")

    def earn(n: int) -> int:
        return jifen.earn(member="dora", order_id=f"o-{n}", amount_minor=1_000).points_granted

    with ThreadPoolExecutor(max_workers=4) as pool:
        granted = list(pool.map(earn, range(12)))
    assert granted == [10] * 12
    assert jifen.balance(member="dora").available == 120
    assert len(jifen.history(member="dora").items) == 12


def test_the_client_is_a_jifen_of_the_program(jifen: Jifen) -> None:
    assert isinstance(jifen, Jifen)
    assert jifen.program == PROGRAM
    assert jifen.currency == "CNY"
    assert jifen.program_info.transfers_enabled is True
    with pytest.raises(TypeError):
        jifen.enrol(membr="x")  # type: ignore[call-arg]


def test_the_remote_client_has_every_method_with_the_embedded_signature() -> None:
    public = {n for n, v in vars(Jifen).items() if not n.startswith("_") and callable(v)}
    not_over_http = {"close", "on_reminder", "send_reminders", "stripe_webhook"}
    assert public - not_over_http == set(ROUTES)
    for name in public:
        assert name in vars(RemoteJifen), name
        embedded = inspect.signature(getattr(Jifen, name))
        assert inspect.signature(getattr(RemoteJifen, name)) == embedded, name
        assert inspect.getdoc(getattr(RemoteJifen, name)), name


# --- the remote client's own behaviour ------------------------------------------------------


@pytest.fixture
def server(program_db: Database) -> Iterator[str]:
    """A live API server on the test database (program ``shop``)."""
    with live_api(program_db) as base_url:
        yield base_url


def test_remote_construction_checks_the_key(
    server: str, program_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JIFEN_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="JIFEN_API_KEY"):
        Jifen(server, program=PROGRAM)
    with pytest.raises(NotAuthenticated, match="api_key="):
        Jifen(server, api_key="jfn_sk_not-a-real-key", program=PROGRAM)
    make_program(program_db, "other")
    other = new_key(program_db, "read", program="other")
    with pytest.raises(PermissionDenied) as refused:
        Jifen(server, api_key=other, program=PROGRAM)
    assert refused.value.code == "permission_denied"
    earn_only = new_key(program_db, "earn")
    with pytest.raises(PermissionDenied, match="read"):
        Jifen(server, api_key=earn_only, program=PROGRAM)
    monkeypatch.setenv("JIFEN_API_KEY", new_key(program_db, "read"))
    with Jifen(server + "/", program=PROGRAM) as from_env:
        assert from_env.program_info.code == PROGRAM


def test_remote_refuses_what_needs_the_database(server: str, program_db: Database) -> None:
    key = new_key(program_db, "admin")
    jifen = Jifen(server, api_key=key, program=PROGRAM)
    assert isinstance(jifen, RemoteJifen)
    assert key not in repr(jifen) and server in repr(jifen) and PROGRAM in repr(jifen)
    with pytest.raises(ConfigurationError, match="server"):
        jifen.database  # noqa: B018
    with pytest.raises(ConfigurationError, match="remind"):
        jifen.send_reminders()
    with pytest.raises(ConfigurationError, match="on_reminder"):
        jifen.on_reminder(lambda reminder: None)
    with pytest.raises(ConfigurationError, match="webhooks/stripe"):
        jifen.stripe_webhook(secret="whsec_x")
    with pytest.raises(ConfigurationError, match="embedded"):
        Jifen(server, api_key=key, program=PROGRAM, clock=FixedClock(START))
    jifen.close()
    with pytest.raises(ConfigurationError, match="server URL"):
        Jifen("sqlite:///nowhere.db", api_key=key, program=PROGRAM)


def test_remote_adjustments_above_the_threshold_need_the_console(
    server: str, program_db: Database
) -> None:
    """The one rule of the API door: a large adjustment needs a second person's approval."""
    with Jifen(server, api_key=new_key(program_db, "admin"), program=PROGRAM) as jifen:
        jifen.enrol(member="erin")
        with pytest.raises(ApprovalRequired) as refused:
            jifen.adjust(member="erin", points=5_000, reason="big", adjustment_id="a-big")
        assert refused.value.details["threshold"] == 1_000
        assert jifen.balance(member="erin").available == 0
