"""The events feed and webhook endpoints through the SDK give the same answers embedded and
remote, on both databases: one scenario (pages of events with their cursor and filters, one
event, endpoints added, listed, rotated, disabled and enabled, their deliveries listed and
replayed singly and in bulk, and the errors a shop meets)
runs on a fresh database through each transport, and the outcomes must be equal step by step
once the random parts (event ids, secrets) are named by their order of appearance."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Callable
from typing import Any

from loyalty import services as core
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.events.dispatch import dispatch_events
from loyalty.events.outbox import envelope
from sdk import DeliveryInfo, EndpointCreated, EndpointInfo, Event, EventPage, Jifen
from tests.conftest import START
from tests.http_api import test_sdk_transports as transports
from tests.http_api.test_sdk_transports import TRANSPORTS, client_for, outcome, plain
from tests.integration.helpers import PROGRAM

fresh_url = transports.fresh_url  # the fixture of fresh migrated databases
HOOK_URL = "http://127.0.0.1:9/hooks"
NO_EVENT = "evt_" + "0" * 32
RANDOM = re.compile(r"evt_[0-9a-f]{32}|whsec_[A-Za-z0-9+/=]+")


def scenario(
    jifen: Jifen, clock: FixedClock, dispatch: Callable[[], object]
) -> list[tuple[str, Any]]:
    """Every events and webhook method of the client, with the errors a shop meets;
    ``dispatch`` turns new events into deliveries (the server's job)."""
    seen: list[tuple[str, Any]] = []

    def step(name: str, call: Callable[[], Any]) -> Any:
        seen.append((name, outcome(call)))
        return seen[-1][1]

    step("nothing yet", lambda: jifen.events())
    jifen.enrol(member="alice")
    clock.advance(dt.timedelta(minutes=1))
    jifen.enrol(member="bob")
    jifen.earn(member="alice", order_id="o-1", amount_minor=10_000)
    everything = step("all", lambda: jifen.events())
    first = step("first two", lambda: jifen.events(limit=2))
    step("next two", lambda: jifen.events(after=first.next_after, limit=2))
    step("earned", lambda: jifen.events(type="points.earned"))
    step("bob's", lambda: jifen.events(member="bob"))
    step("one", lambda: jifen.event(event_id=everything.items[-1].id))
    bad: list[tuple[str, dict[str, Any]]] = [
        ("limit 0", {"limit": 0}),
        ("limit 101", {"limit": 101}),
        ("limit float", {"limit": 1.5}),
        ("unknown type", {"type": "points.stolen"}),
        ("malformed after", {"after": "evt_nope"}),
        ("unknown after", {"after": NO_EVENT}),
        ("unknown member", {"member": "zed"}),
    ]
    for name, wrong in bad:
        step(name, functools.partial(jifen.events, **wrong))
    step("no such event", lambda: jifen.event(event_id=NO_EVENT))
    step("malformed event", lambda: jifen.event(event_id="evt_x"))

    step("no endpoints", lambda: jifen.webhook_endpoints())
    added = step(
        "add",
        lambda: jifen.add_webhook_endpoint(
            url=HOOK_URL, event_types=["points.earned"], description="CRM"
        ),
    )
    step("add all types", lambda: jifen.add_webhook_endpoint(url=HOOK_URL + "/all"))
    step("add ftp", lambda: jifen.add_webhook_endpoint(url="ftp://example.com/x"))
    step("add unknown type", lambda: jifen.add_webhook_endpoint(url=HOOK_URL, event_types=["x"]))
    endpoint = added.endpoint.id
    step("list", lambda: jifen.webhook_endpoints())
    step("get", lambda: jifen.webhook_endpoint(endpoint=endpoint))
    step("get unknown", lambda: jifen.webhook_endpoint(endpoint=999))
    step("get zero", lambda: jifen.webhook_endpoint(endpoint=0))
    step("rotate", lambda: jifen.rotate_webhook_secret(endpoint=endpoint))
    step("disable", lambda: jifen.disable_webhook_endpoint(endpoint=endpoint, reason="upgrade"))
    step("disable unknown", lambda: jifen.disable_webhook_endpoint(endpoint=999, reason="x"))
    step("enable", lambda: jifen.enable_webhook_endpoint(endpoint=endpoint))
    step(
        "update",
        lambda: jifen.update_webhook_endpoint(endpoint=endpoint, description="CRM, new"),
    )
    step(
        "update to ftp",
        lambda: jifen.update_webhook_endpoint(endpoint=endpoint, url="ftp://example.com/x"),
    )

    jifen.earn(member="bob", order_id="o-2", amount_minor=5_000)
    step("after the last", lambda: jifen.events(after=everything.next_after))

    dispatch()  # bob's earning goes to both endpoints
    jifen.disable_webhook_endpoint(endpoint=endpoint, reason="upgrade")  # its delivery fails
    step("deliveries", lambda: jifen.webhook_deliveries())
    failed = step("failed", lambda: jifen.webhook_deliveries(status="failed"))
    step("of the other endpoint", lambda: jifen.webhook_deliveries(endpoint=endpoint + 1))
    step("older", lambda: jifen.webhook_deliveries(before=failed[0].id))
    step("bad status", lambda: jifen.webhook_deliveries(status="lost"))
    step("limit 501", lambda: jifen.webhook_deliveries(limit=501))
    step("replay while disabled", lambda: jifen.replay_webhook_delivery(delivery=failed[0].id))
    jifen.enable_webhook_endpoint(endpoint=endpoint)
    step("replay one", lambda: jifen.replay_webhook_delivery(delivery=failed[0].id))
    step("replay it again", lambda: jifen.replay_webhook_delivery(delivery=failed[0].id))
    step("replay unknown", lambda: jifen.replay_webhook_delivery(delivery=999))
    jifen.disable_webhook_endpoint(endpoint=endpoint, reason="again")
    jifen.enable_webhook_endpoint(endpoint=endpoint)
    later = clock.now() + dt.timedelta(days=1)
    step("replay none since", lambda: jifen.replay_webhook_deliveries(since=later))
    step("replay naive", lambda: jifen.replay_webhook_deliveries(since=dt.datetime(2026, 1, 1)))
    step("replay unknown endpoint", lambda: jifen.replay_webhook_deliveries(endpoint=999))
    step("replay the endpoint's", lambda: jifen.replay_webhook_deliveries(endpoint=endpoint))
    step("replay all", lambda: jifen.replay_webhook_deliveries())
    return seen


def named(value: Any, names: dict[str, str]) -> Any:
    """``value`` (as :func:`plain` shows it) with event ids and secrets named by their order
    of appearance, and secret hints (the last characters of a secret) by their secret."""
    if isinstance(value, str):
        return RANDOM.sub(lambda m: names.setdefault(m.group(), f"<{len(names)}>"), value)
    if isinstance(value, tuple | list):
        return type(value)(named(v, names) for v in value)
    if isinstance(value, dict):
        shown = {k: named(v, names) for k, v in value.items()}
        if isinstance(shown.get("secret_hint"), str):
            shown["secret_hint"] = len(value["secret_hint"])
        return shown
    return value


def test_the_event_and_webhook_methods_give_the_same_outcomes_on_both_transports(
    fresh_url: Callable[[], str],
) -> None:
    outcomes: dict[str, list[tuple[str, Any]]] = {}
    for transport in TRANSPORTS:
        clock = FixedClock(START)
        url = fresh_url()
        with client_for(transport, url, clock) as client:
            server = Database.from_url(url, clock=clock)
            try:
                core.update_program(server, program=PROGRAM, webhooks_allow_private=True)
                outcomes[transport] = scenario(
                    client, clock, functools.partial(dispatch_events, server)
                )
            finally:
                server.dispose()
    embedded, remote = outcomes["embedded"], outcomes["remote"]
    assert [name for name, _ in remote] == [name for name, _ in embedded]
    for (name, here), (_, there) in zip(embedded, remote, strict=True):
        assert named(plain(there), {}) == named(plain(here), {}), name
    _the_scenario_does_what_it_says(dict(embedded))


def _the_scenario_does_what_it_says(by_name: dict[str, Any]) -> None:
    """Checked once: the transports agree."""
    assert by_name["nothing yet"] == EventPage((), None, False)
    everything = by_name["all"]
    assert isinstance(everything, EventPage) and not everything.has_more
    assert [e.type for e in everything.items] == [
        "member.enrolled",
        "member.enrolled",
        "points.earned",
    ]
    assert all(isinstance(e, Event) and e.timestamp.tzinfo is not None for e in everything.items)
    assert everything.items[1].timestamp == START + dt.timedelta(minutes=1)
    first, following = by_name["first two"], by_name["next two"]
    assert (first.items, first.has_more) == (everything.items[:2], True)
    assert (following.items, following.has_more) == (everything.items[2:], False)
    assert by_name["earned"].items == everything.items[2:]
    assert [e.data["member"] for e in by_name["bob's"].items] == ["bob"]
    one = by_name["one"]
    assert one == everything.items[-1]
    as_sent = envelope(one.id, one.type, one.timestamp, one.data)
    assert as_sent["data"]["points"] == one.data["points"] == 100
    for name, code in [
        ("limit 0", "invalid_amount"),
        ("limit 101", "invalid_amount"),
        ("limit float", "invalid_amount"),
        ("unknown type", "invalid_input"),
        ("malformed after", "invalid_input"),
        ("unknown after", "event_not_found"),
        ("unknown member", "member_not_found"),
        ("no such event", "event_not_found"),
        ("malformed event", "invalid_input"),
        ("add ftp", "invalid_input"),
        ("add unknown type", "invalid_input"),
        ("get unknown", "webhook_endpoint_not_found"),
        ("disable unknown", "webhook_endpoint_not_found"),
        ("update to ftp", "invalid_input"),
        ("bad status", "invalid_input"),
        ("limit 501", "invalid_amount"),
        ("replay while disabled", "conflict"),
        ("replay it again", "conflict"),
        ("replay unknown", "webhook_delivery_not_found"),
        ("replay naive", "naive_datetime"),
        ("replay unknown endpoint", "webhook_endpoint_not_found"),
    ]:
        assert by_name[name][:1] == ("raised",) and by_name[name][2] == code, name

    added = by_name["add"]
    assert isinstance(added, EndpointCreated) and added.secret.startswith("whsec_")
    assert added.endpoint.event_types == ("points.earned",)
    assert added.endpoint.secret_hint == added.secret[-4:]
    assert by_name["add all types"].endpoint.event_types == ("*",)
    assert [e.url for e in by_name["list"]] == [HOOK_URL, HOOK_URL + "/all"]
    assert all(isinstance(e, EndpointInfo) for e in by_name["list"])
    rotated = by_name["rotate"]
    assert rotated.secret != added.secret
    assert rotated.endpoint.rotating_until == START + dt.timedelta(hours=24, minutes=1)
    disabled = by_name["disable"]
    assert (disabled.enabled, disabled.disabled_reason) == (False, "upgrade")
    assert by_name["enable"].enabled is True
    updated = by_name["update"]
    assert (updated.description, updated.event_types, updated.url) == (
        "CRM, new",
        ("points.earned",),
        HOOK_URL,
    )
    assert [e.type for e in by_name["after the last"].items] == ["points.earned"]
    assert dataclasses.asdict(by_name["after the last"].items[0])["data"]["member"] == "bob"

    deliveries = by_name["deliveries"]
    assert all(isinstance(d, DeliveryInfo) for d in deliveries)
    assert [d.id for d in deliveries] == sorted((d.id for d in deliveries), reverse=True)
    by_endpoint = {(d.endpoint_id, d.status) for d in deliveries}
    assert by_endpoint == {(1, "failed"), (2, "pending")}
    failed = by_name["failed"]
    assert [d.event_id for d in failed] == [d.event_id for d in deliveries if d.endpoint_id == 1]
    earned = [e.id for e in everything.items + by_name["after the last"].items]
    assert sorted(d.event_id for d in failed) == sorted(earned[2:])
    assert len(by_name["of the other endpoint"]) == 4  # every event: it takes all types
    assert all(d.id < failed[0].id for d in by_name["older"])
    replayed = by_name["replay one"]
    assert (replayed.id, replayed.status, replayed.attempts) == (failed[0].id, "pending", 0)
    assert by_name["replay none since"] == 0
    assert by_name["replay the endpoint's"] == 2
    assert by_name["replay all"] == 0
