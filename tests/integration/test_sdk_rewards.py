"""The reward catalog through the SDK gives the same answers embedded and remote, on both
databases: one scenario (the catalog, each kind redeemed, replays, pages, fulfilment,
cancelling, vouchers at checkout, and the errors a shop meets) runs on a fresh database
through each transport, and the outcomes must be equal step by step (voucher codes and draw
seeds are random: they are compared by their order of appearance). A remote redemption
whose answer was lost is retried with the key the client chose and made once."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from api import create_api_app
from loyalty import services as core
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from sdk import (
    DrawOutcome,
    Jifen,
    RedemptionPage,
    RewardOffer,
    RewardRedemptionResult,
    VoucherCheck,
)
from tests.conftest import START
from tests.http_api import test_sdk_transports as transports
from tests.http_api.live_server import live_api, live_server
from tests.http_api.test_rewards_api import ADDRESS, reward_catalog
from tests.http_api.test_sdk_transports import TRANSPORTS, outcome, prepare
from tests.integration.helpers import PROGRAM

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

fresh_url = transports.fresh_url  # the fixture of fresh migrated databases
VOUCHER_CODE = re.compile(r"\bV-[0-9A-Z]{12}\b")


@contextmanager
def client_for(transport: str, url: str, clock: FixedClock) -> Iterator[Jifen]:
    """A client of the shop with the catalog of :func:`reward_catalog` on the database at
    ``url``: in-process, or through a live server of the API on that database."""
    db = Database.from_url(url, clock=clock)
    try:
        key = prepare(db)
        reward_catalog(db)
        if transport == "embedded":
            with Jifen(url, program=PROGRAM, clock=clock) as jifen:
                yield jifen
        else:
            with live_api(db) as base_url, Jifen(base_url, api_key=key, program=PROGRAM) as jifen:
                yield jifen
    finally:
        db.dispose()


def scenario(jifen: Jifen) -> list[tuple[str, Any]]:
    """Every reward method of the client, with replays and the errors a checkout meets."""
    seen: list[tuple[str, Any]] = []

    def step(name: str, call: Callable[[], Any]) -> Any:
        seen.append((name, outcome(call)))
        return seen[-1][1]

    jifen.enrol(member="alice")
    jifen.enrol(member="bob")
    jifen.earn(member="alice", order_id="o-a", amount_minor=200_000)
    jifen.earn(member="bob", order_id="o-b", amount_minor=10_000)
    redeem = jifen.redeem_reward

    step("catalog", lambda: jifen.rewards())
    step("catalog for bob", lambda: jifen.rewards(member="bob"))
    step(
        "coffee", lambda: redeem(member="alice", reward="coffee", quantity=2, idempotency_key="k1")
    )
    step(
        "coffee replay",
        lambda: redeem(member="alice", reward="coffee", quantity=2, idempotency_key="k1"),
    )
    step(
        "same key, other body",
        lambda: redeem(member="alice", reward="coffee", idempotency_key="k1"),
    )
    step("coffee without a key", lambda: redeem(member="alice", reward="coffee"))
    mug = step("mug", lambda: redeem(member="alice", reward="mug", shipping=ADDRESS))
    voucher = step("voucher", lambda: redeem(member="alice", reward="ten-off"))
    step("draw", lambda: redeem(member="alice", reward="lucky", idempotency_key="d1"))
    step("draw replay", lambda: redeem(member="alice", reward="lucky", idempotency_key="d1"))
    step("out of stock", lambda: redeem(member="alice", reward="mug", quantity=3, shipping=ADDRESS))
    step("insufficient points", lambda: redeem(member="bob", reward="mug", shipping=ADDRESS))
    step("limit per day", lambda: redeem(member="alice", reward="coffee", quantity=2))
    step("hidden", lambda: redeem(member="alice", reward="sticker", shipping=ADDRESS))
    step("no such reward", lambda: redeem(member="alice", reward="teapot"))
    step("no such member", lambda: redeem(member="zed", reward="coffee"))
    step("no address", lambda: redeem(member="alice", reward="mug"))
    step("float quantity", lambda: redeem(member="alice", reward="coffee", quantity=1.5))  # type: ignore[arg-type]
    step("unknown keyword", lambda: redeem(member="alice", reward="coffee", colour="red"))  # type: ignore[call-arg]
    step("bad key", lambda: redeem(member="alice", reward="coffee", idempotency_key=""))
    step("catalog for alice now", lambda: jifen.rewards(member="alice"))

    page = step("page 1", lambda: jifen.redemptions(member="alice", limit=2))
    step("page 2", lambda: jifen.redemptions(member="alice", limit=2, cursor=page.next_cursor))
    step("issued coffees", lambda: jifen.redemptions(reward="coffee", status="issued"))
    step("unknown state", lambda: jifen.redemptions(status="lost"))
    step("redemptions of no one", lambda: jifen.redemptions(member="zed"))

    mug_id, coffee_id = mug.id, seen[2][1].id
    advance = jifen.advance_fulfilment
    step("packing", lambda: advance(redemption=mug_id, status="packing", actor="ops"))
    step("packing again", lambda: advance(redemption=mug_id, status="packing", actor="ops"))
    step(
        "shipped", lambda: advance(redemption=mug_id, status="shipped", reason="SF123", actor="ops")
    )
    step("ship a coupon", lambda: advance(redemption=coffee_id, status="shipped", actor="ops"))
    step("cancel by advancing", lambda: advance(redemption=mug_id, status="cancelled"))
    step("mug with events", lambda: jifen.get_redemption(redemption=mug_id))
    cancel = jifen.cancel_redemption
    step("cancel coffee", lambda: cancel(redemption=coffee_id, reason="wrong size", actor="ops"))
    step("cancel again", lambda: cancel(redemption=coffee_id, reason="wrong size", actor="ops"))
    step("cancel otherwise", lambda: cancel(redemption=coffee_id, reason="other", actor="ops"))
    step("coffee with events", lambda: jifen.get_redemption(redemption=coffee_id))
    step("no such redemption", lambda: jifen.get_redemption(redemption=999))
    step("redemption not an id", lambda: jifen.get_redemption(redemption="1"))  # type: ignore[arg-type]
    step("balance", lambda: jifen.balance(member="alice").available)

    code = voucher.vouchers[0].code
    order = {"order_id": "o-9", "order_total_minor": 5_000}
    step("validate", lambda: jifen.validate_voucher(code=code, order_total_minor=600))
    step(
        "validate for bob",
        lambda: jifen.validate_voucher(code=code, order_total_minor=600, member="bob"),
    )
    step(
        "validate in USD",
        lambda: jifen.validate_voucher(code=code, order_total_minor=600, currency="USD"),
    )
    step("consume", lambda: jifen.consume_voucher(code=code, member="alice", **order))
    step("consume again", lambda: jifen.consume_voucher(code=code, member="alice", **order))
    step(
        "consume elsewhere",
        lambda: jifen.consume_voucher(code=code, order_id="o-10", order_total_minor=100),
    )
    step("cancel a used voucher", lambda: cancel(redemption=voucher.id, reason="x", actor="ops"))
    step("release elsewhere", lambda: jifen.release_voucher(code=code, order_id="o-10"))
    step("release", lambda: jifen.release_voucher(code=code, order_id="o-9"))
    step("release again", lambda: jifen.release_voucher(code=code, order_id="o-9"))
    step(
        "no such voucher",
        lambda: jifen.validate_voucher(code="V-NONE00000000", order_total_minor=1),
    )
    step("not a code", lambda: jifen.consume_voucher(code="x", order_id="o-1", order_total_minor=1))
    return seen  # fmt: skip


def normal(value: Any, codes: dict[str, str]) -> Any:
    """``value`` with every dataclass field shown, voucher codes named by their order of
    appearance and a draw's seed and number left out (both are random)."""
    if isinstance(value, DrawOutcome):
        value = dataclasses.replace(value, seed="", value=0)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: normal(getattr(value, f.name), codes) for f in dataclasses.fields(value)}
        return (type(value), fields)
    if isinstance(value, tuple | list):
        return type(value)(normal(v, codes) for v in value)
    if isinstance(value, dict):
        return {k: normal(v, codes) for k, v in value.items()}
    if isinstance(value, str):
        return VOUCHER_CODE.sub(lambda m: codes.setdefault(m.group(), f"V#{len(codes)}"), value)
    return value


def test_the_reward_methods_give_the_same_outcomes_on_both_transports(
    fresh_url: Callable[[], str],
) -> None:
    outcomes: dict[str, list[tuple[str, Any]]] = {}
    for transport in TRANSPORTS:
        with client_for(transport, fresh_url(), FixedClock(START)) as client:
            outcomes[transport] = scenario(client)
    embedded, remote = outcomes["embedded"], outcomes["remote"]
    assert [name for name, _ in remote] == [name for name, _ in embedded]
    here_codes: dict[str, str] = {}
    there_codes: dict[str, str] = {}
    for (name, here), (_, there) in zip(embedded, remote, strict=True):
        assert normal(there, there_codes) == normal(here, here_codes), name

    # the scenario does what it says (checked once: the transports agree)
    by_name = dict(embedded)
    assert isinstance(by_name["catalog"][0], RewardOffer)
    assert by_name["catalog for bob"][2].reasons == ("insufficient_points",)
    first, replay = by_name["coffee"], by_name["coffee replay"]
    assert isinstance(first, RewardRedemptionResult) and first.codes == ("COF-0001", "COF-0002")
    assert replay == dataclasses.replace(first, replayed=True)
    assert by_name["coffee without a key"].codes == ("COF-0003",)
    assert by_name["draw replay"].draw == by_name["draw"].draw
    assert by_name["draw"].prize.reward == "sticker"
    assert isinstance(by_name["page 1"], RedemptionPage) and by_name["page 2"].items
    assert by_name["packing again"].replayed and by_name["cancel again"].replayed
    assert [e.to_status for e in by_name["mug with events"].events] == ["packing", "shipped"]
    assert by_name["coffee with events"].events[0].reason == "wrong size"
    assert by_name["balance"] == 2_000 - 300 - 200 - 50 - 100
    check = by_name["consume"]
    assert isinstance(check, VoucherCheck) and (check.status, check.discount_minor) == (
        "used",
        1_000,
    )
    assert by_name["consume again"].replayed and by_name["release again"].replayed
    errors = {
        name: o[1].__name__ for name, o in embedded if isinstance(o, tuple) and o[:1] == ("raised",)
    }
    assert errors == {
        "same key, other body": "IdempotencyConflict",
        "out of stock": "OutOfStock",
        "insufficient points": "InsufficientPoints",
        "limit per day": "RewardLimit",
        "hidden": "RewardUnavailable",
        "no such reward": "RewardNotFound",
        "no such member": "MemberNotFound",
        "no address": "InvalidInput",
        "float quantity": "InvalidAmount",
        "unknown keyword": "TypeError",
        "bad key": "InvalidIdempotencyKey",
        "unknown state": "InvalidInput",
        "redemptions of no one": "MemberNotFound",
        "ship a coupon": "FulfilmentConflict",
        "cancel by advancing": "InvalidInput",
        "cancel otherwise": "IdempotencyConflict",
        "no such redemption": "RewardRedemptionNotFound",
        "redemption not an id": "InvalidAmount",
        "validate for bob": "VoucherNotUsable",
        "validate in USD": "CurrencyMismatch",
        "consume elsewhere": "VoucherNotUsable",
        "cancel a used voucher": "FulfilmentConflict",
        "release elsewhere": "VoucherNotUsable",
        "no such voucher": "VoucherNotFound",
        "not a code": "InvalidInput",
    }


def test_cancel_and_fulfilment_name_who_did_them(
    fresh_url: Callable[[], str],
) -> None:
    """Without an actor, the embedded client records ``sdk`` and the API the key's label."""
    actors = {}
    for transport in TRANSPORTS:
        url = fresh_url()
        with client_for(transport, url, FixedClock(START)) as jifen:
            jifen.enrol(member="alice")
            jifen.earn(member="alice", order_id="o-a", amount_minor=100_000)
            done = jifen.redeem_reward(member="alice", reward="mug", shipping=ADDRESS)
            jifen.advance_fulfilment(redemption=done.id, status="packing")
            jifen.cancel_redemption(redemption=done.id, reason="out of paint")
            events = jifen.get_redemption(redemption=done.id).events
            actors[transport] = [(e.to_status, e.actor) for e in events]
        db = Database.from_url(url)
        assert core.get_reward(db, program=PROGRAM, reward="mug").stock_left == 3
        db.dispose()
    assert actors == {
        "embedded": [("packing", "sdk"), ("cancelled", "sdk")],
        "remote": [("packing", "api:test"), ("cancelled", "api:test")],
    }


class LostFirstAnswer:
    """Runs the first redemption to its commit, then answers 502 as a proxy whose upstream
    hung up would; records each attempt's ``Idempotency-Key``."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.keys: list[str | None] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if (
            not environ["PATH_INFO"].endswith("/reward-redemptions")
            or environ["REQUEST_METHOD"] != "POST"
        ):
            return self.app(environ, start_response)
        self.keys.append(environ.get("HTTP_IDEMPOTENCY_KEY"))
        if len(self.keys) > 1:
            return self.app(environ, start_response)
        b"".join(self.app(environ, lambda status, headers, exc_info=None: lambda data: None))
        start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
        return [b"upstream hung up"]


def test_a_remote_redemption_whose_answer_was_lost_is_made_once(db: Database) -> None:
    key = prepare(db)
    reward_catalog(db)
    app = create_api_app(
        {"JIFEN_DATABASE": db, "SECRET_KEY": "s" * 32, "RATELIMIT_ENABLED": False,
         "JIFEN_REDIS_URL": None}
    )  # fmt: skip
    lost = LostFirstAnswer(app.wsgi_app)
    with live_server(lost) as url, Jifen(url, api_key=key, program=PROGRAM) as jifen:
        jifen.enrol(member="alice")
        jifen.earn(member="alice", order_id="o-a", amount_minor=100_000)
        done = jifen.redeem_reward(member="alice", reward="coffee")
        other = jifen.redeem_reward(member="alice", reward="coffee")
    assert done.replayed and done.codes == ("COF-0001",) and other.codes == ("COF-0002",)
    first, retry, second = lost.keys
    assert first is not None and first.startswith("reward:") and retry == first != second
    assert core.balance(db, program=PROGRAM, member="alice").available == 1_000 - 200
