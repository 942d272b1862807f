"""Member tiers through the SDK give the same answers embedded and remote, on both databases:
one scenario (tier versions published, listed and cancelled, the tier on earnings, quotes and
balances, progress and history, manual changes and locks with their replays, the forecast,
the distribution and the preview, and the errors a shop meets) runs on a fresh database
through each transport, and the outcomes must be equal step by step: the same frozen
dataclasses, field for field (datetimes aware), and the same error classes and messages."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from loyalty.domain.clock import FixedClock
from loyalty.domain.tiers import TierRules
from sdk import (
    Balance,
    EarnQuote,
    EarnResult,
    Jifen,
    TierChangeInfo,
    TierCount,
    TierForecast,
    TierProgress,
    TierVersionInfo,
)
from tests.conftest import START
from tests.http_api import test_sdk_transports as transports
from tests.http_api.test_sdk_transports import TRANSPORTS, client_for, outcome, plain

fresh_url = transports.fresh_url  # the fixture of fresh migrated databases
CST = dt.timezone(dt.timedelta(hours=8))
LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通", "threshold": 0},
        {
            "code": "silver",
            "name": "银卡",
            "threshold": 1_000,
            "multiplier": "1.5",
            "benefits": ["Free shipping", "生日礼"],
        },
        {"code": "gold", "name": "金卡", "threshold": 5_000, "multiplier": "2"},
    ],
    "measure": "points",
    "window": "rolling",
    "window_months": 12,
    "anchor": "upgrade",
    "period_months": 12,
}


def scenario(jifen: Jifen, clock: FixedClock) -> list[tuple[str, Any]]:
    """Every tier method of the client, with replays and the errors a shop meets."""
    seen: list[tuple[str, Any]] = []

    def step(name: str, call: Callable[[], Any]) -> Any:
        seen.append((name, outcome(call)))
        return seen[-1][1]

    jifen.enrol(member="alice")
    jifen.enrol(member="bob")
    step("progress without tiers", lambda: jifen.tier_progress(member="alice"))
    step("no versions", lambda: jifen.tier_versions())
    step(
        "change without tiers",
        lambda: jifen.set_member_tier(member="bob", tier="gold", reason="VIP", change_id="c-0"),
    )

    step("publish", lambda: jifen.publish_tiers(rules=LADDER))
    later = clock.now() + dt.timedelta(days=30)
    rules = TierRules.from_dict({**LADDER, "grace_days": 14})
    step("publish later", lambda: jifen.publish_tiers(rules=rules, effective_from=later))
    step("versions", lambda: jifen.tier_versions())
    step(
        "publish in the past",
        lambda: jifen.publish_tiers(rules=LADDER, effective_from=START - dt.timedelta(days=1)),
    )
    naive = dt.datetime(2099, 1, 1)
    step("publish naive", lambda: jifen.publish_tiers(rules=LADDER, effective_from=naive))
    step("publish bad rules", lambda: jifen.publish_tiers(rules={"tiers": []}))
    step("cancel in force", lambda: jifen.cancel_tiers(version=1))
    step("cancel later", lambda: jifen.cancel_tiers(version=2))
    step("cancel again", lambda: jifen.cancel_tiers(version=2))
    step("cancel zero", lambda: jifen.cancel_tiers(version=0))
    step("cancel text", lambda: jifen.cancel_tiers(version="1"))  # type: ignore[arg-type]
    step("versions now", lambda: jifen.tier_versions())

    step("quote for alice", lambda: jifen.quote(amount_minor=10_000, member="alice"))
    step("earn to silver", lambda: jifen.earn(member="alice", order_id="o-1", amount_minor=110_000))
    step("earn as silver", lambda: jifen.earn(member="alice", order_id="o-2", amount_minor=10_000))
    step("earn replay", lambda: jifen.earn(member="alice", order_id="o-2", amount_minor=10_000))
    step("bob earns", lambda: jifen.earn(member="bob", order_id="o-3", amount_minor=10_000))
    step("quote as silver", lambda: jifen.quote(amount_minor=10_000, member="alice"))
    step("balance", lambda: jifen.balance(member="alice"))
    step("progress", lambda: jifen.tier_progress(member="alice"))
    step("history", lambda: jifen.tier_history(member="alice"))
    step("history of one", lambda: jifen.tier_history(member="bob", limit=1))
    step("history limit 0", lambda: jifen.tier_history(member="bob", limit=0))
    step("history of no one", lambda: jifen.tier_history(member="zed"))
    step("progress of no one", lambda: jifen.tier_progress(member="zed"))

    change: dict[str, Any] = {
        "member": "bob",
        "tier": "gold",
        "change_id": "c-1",
        "actor": "客服 Li",
    }
    step("manual", lambda: jifen.set_member_tier(reason="升级 🎉 — 补偿", **change))
    step("manual replay", lambda: jifen.set_member_tier(reason="升级 🎉 — 补偿", **change))
    step("manual otherwise", lambda: jifen.set_member_tier(reason="other", **change))
    until = (clock.now() + dt.timedelta(days=90)).astimezone(CST)
    step(
        "lock",
        lambda: jifen.set_member_tier(
            member="bob",
            tier="silver",
            reason="合同",
            change_id="c-2",
            locked_until=until,
            actor="ops",
            idempotency_key="lock-bob",
        ),
    )
    step("progress locked", lambda: jifen.tier_progress(member="bob"))
    bad: list[tuple[str, dict[str, Any]]] = [
        ("unknown tier", {"tier": "platinum"}),
        ("odd unicode", {"reason": "bad\u202ereason"}),
        ("empty reason", {"reason": ""}),
        ("bad change id", {"change_id": "has space"}),
        ("naive lock", {"locked_until": naive}),
        ("past lock", {"locked_until": START - dt.timedelta(days=1)}),
        ("bad key", {"idempotency_key": ""}),
        ("no such member", {"member": "zed"}),
        ("unknown keyword", {"colour": "red"}),
    ]
    for name, wrong in bad:
        args = {"member": "bob", "tier": "gold", "reason": "VIP", "change_id": "c-9", **wrong}
        step(name, functools.partial(jifen.set_member_tier, **args))
    step("history of bob", lambda: jifen.tier_history(member="bob"))

    step("forecast", lambda: jifen.tier_forecast())
    step("forecast a year", lambda: jifen.tier_forecast(days=400))
    step("forecast 0 days", lambda: jifen.tier_forecast(days=0))
    step("forecast huge", lambda: jifen.tier_forecast(days=10**30))
    step("forecast float", lambda: jifen.tier_forecast(days=1.5))  # type: ignore[arg-type]
    step("distribution", lambda: jifen.tier_distribution())
    draft = {**LADDER, "tiers": [{**t, "threshold": t["threshold"] // 10} for t in LADDER["tiers"]]}
    step("preview", lambda: jifen.preview_tiers(rules=draft))
    step("preview rules", lambda: jifen.preview_tiers(rules=TierRules.from_dict(LADDER)))
    step("preview bad rules", lambda: jifen.preview_tiers(rules={**LADDER, "measure": "karma"}))
    return seen


def wired(value: Any) -> Any:
    """An error's outcome with the datetimes of its details as JSON carries them (text): a
    remote error's details are the server's, read from the problem's JSON."""
    if isinstance(value, tuple) and value[:1] == ("raised",) and len(value) == 5:
        details = {k: str(v) if isinstance(v, dt.datetime) else v for k, v in value[4].items()}
        return (*value[:4], details)
    return value


def test_the_tier_methods_give_the_same_outcomes_on_both_transports(
    fresh_url: Callable[[], str],
) -> None:
    outcomes: dict[str, list[tuple[str, Any]]] = {}
    for transport in TRANSPORTS:
        clock = FixedClock(START)
        with client_for(transport, fresh_url(), clock) as client:
            outcomes[transport] = scenario(client, clock)
    embedded, remote = outcomes["embedded"], outcomes["remote"]
    assert [name for name, _ in remote] == [name for name, _ in embedded]
    for (name, here), (_, there) in zip(embedded, remote, strict=True):
        assert plain(there) == plain(wired(here)), name
    _the_scenario_does_what_it_says(dict(embedded))


def _the_scenario_does_what_it_says(by_name: dict[str, Any]) -> None:
    """Checked once: the transports agree."""
    assert by_name["progress without tiers"] == TierProgress(member="alice", tiers_enabled=False)
    assert by_name["no versions"] == ()
    published = by_name["publish"]
    assert isinstance(published, TierVersionInfo) and published.version == 1
    assert by_name["publish later"].rules["grace_days"] == 14
    assert [v.version for v in by_name["versions"]] == [1, 2]
    assert [v.version for v in by_name["versions now"]] == [1]
    assert by_name["cancel later"].version == 2

    assert isinstance(by_name["quote for alice"], EarnQuote)
    assert (by_name["quote for alice"].tier, by_name["quote for alice"].tier_multiplier) == (
        "member",
        "1",
    )
    up = by_name["earn to silver"]
    assert isinstance(up, EarnResult) and (up.tier, up.tier_upgraded_from) == ("silver", "member")
    assert (by_name["earn as silver"].points_granted, by_name["earn replay"].replayed) == (
        150,
        True,
    )
    assert by_name["quote as silver"].points == 150
    balance = by_name["balance"]
    assert isinstance(balance, Balance) and (balance.tier, balance.tier_name) == ("silver", "银卡")
    progress = by_name["progress"]
    assert isinstance(progress, TierProgress)
    assert (progress.tier, progress.measure, progress.to_next_tier) == ("silver", 1_250, 3_750)
    assert progress.benefits == ["Free shipping", "生日礼"]
    history = by_name["history"]
    assert isinstance(history, tuple) and isinstance(history[0], TierChangeInfo)
    assert [(h.to_tier, h.reason) for h in history] == [("silver", "earn")]

    manual = by_name["manual"]
    assert (manual.to_tier, manual.note, manual.actor) == ("gold", "升级 🎉 — 补偿", "客服 Li")
    assert by_name["manual replay"] == dataclasses.replace(manual, replayed=True)
    lock = by_name["lock"]
    assert (lock.reason, lock.lock, lock.locked_until_at) == (
        "lock",
        "silver",
        START + dt.timedelta(days=90),
    )
    assert by_name["progress locked"].lock == "silver"
    assert [h.reason for h in by_name["history of bob"]] == ["lock", "manual"]

    forecast = by_name["forecast a year"]
    assert isinstance(forecast, TierForecast) and isinstance(forecast.holding[0], TierCount)
    assert (forecast.up + forecast.down + forecast.keep, forecast.holding) == (
        2,  # alice and bob, both silver, are evaluated within the year
        list(by_name["distribution"]),
    )
    assert [c.members for c in by_name["distribution"]] == [0, 2, 0]
    assert [c.members for c in by_name["preview"]] == [0, 1, 1]
    errors = {
        name: o[1].__name__
        for name, o in by_name.items()
        if isinstance(o, tuple) and o[:1] == ("raised",)
    }
    assert errors == {
        "change without tiers": "Conflict",
        "publish in the past": "InvalidRule",
        "publish naive": "NaiveDatetime",
        "publish bad rules": "InvalidRule",
        "cancel in force": "Conflict",
        "cancel again": "NotFound",
        "cancel zero": "InvalidInput",
        "cancel text": "InvalidInput",
        "history limit 0": "InvalidInput",
        "history of no one": "MemberNotFound",
        "progress of no one": "MemberNotFound",
        "manual otherwise": "IdempotencyConflict",
        "unknown tier": "InvalidInput",
        "odd unicode": "InvalidText",
        "empty reason": "InvalidInput",
        "bad change id": "InvalidIdempotencyKey",
        "naive lock": "NaiveDatetime",
        "past lock": "InvalidInput",
        "bad key": "InvalidIdempotencyKey",
        "no such member": "MemberNotFound",
        "unknown keyword": "TypeError",
        "forecast 0 days": "InvalidAmount",
        "forecast huge": "InvalidAmount",
        "forecast float": "InvalidAmount",
        "preview bad rules": "InvalidRule",
    }
