"""Webhook endpoints: adding, listing, changing, rotating, disabling and enabling them, the
refusal of private destinations, and bad input that changes nothing."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from helpers import PROGRAM, make_program, row_counts
from sqlalchemy import insert, select

from loyalty import services as s
from loyalty.db import Database
from loyalty.db.tables import events, webhook_deliveries, webhook_endpoints
from loyalty.domain.clock import FixedClock
from loyalty.errors import InvalidInput, ProgramNotFound, WebhookEndpointNotFound
from loyalty.events import endpoints as ep

PUBLIC = "https://93.184.215.14/hooks"  # an IP literal: no DNS needed, and public


@pytest.fixture
def program(db: Database) -> str:
    make_program(db)
    return PROGRAM


def audit_actions(db: Database) -> list[tuple[str, str, str]]:
    page = s.list_audit(db, program=PROGRAM)
    return [(a.actor, a.action, a.target) for a in reversed(page.items)]


def test_add_shows_the_secret_once_and_lists_it_by_its_hint(db: Database, program: str) -> None:
    created = ep.add_endpoint(
        db,
        program=program,
        url=PUBLIC,
        event_types=["points.earned", "member.enrolled", "points.earned"],
        description="CRM",
        actor="ana",
    )
    assert created.secret.startswith("whsec_")
    assert len(base64.b64decode(created.secret.removeprefix("whsec_"))) == 32
    info = created.endpoint
    assert info.url == PUBLIC and info.description == "CRM" and info.enabled
    assert info.event_types == ("member.enrolled", "points.earned")
    assert info.secret_hint == created.secret[-4:] and info.rotating_until is None
    assert (info.pending, info.failed, info.delivered) == (0, 0, 0)
    assert ep.list_endpoints(db, program=program) == (info,)
    assert ep.get_endpoint(db, program=program, endpoint=info.id) == info
    assert audit_actions(db) == [("ana", "webhook.add", f"webhook:{info.id}")]
    entry = s.list_audit(db, program=PROGRAM).items[0]
    assert created.secret not in repr(entry)


def test_star_stands_alone_and_is_the_default(db: Database, program: str) -> None:
    assert ep.add_endpoint(db, program=program, url=PUBLIC).endpoint.event_types == ("*",)
    both = ep.add_endpoint(db, program=program, url=PUBLIC, event_types=["*", "points.earned"])
    assert both.endpoint.event_types == ("*",)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://100.64.0.1/hook",
        "http://localhost:9000/hook",
    ],
)
def test_private_destinations_are_refused(db: Database, program: str, url: str) -> None:
    before = row_counts(db)
    with pytest.raises(InvalidInput, match="webhooks_allow_private") as exc:
        ep.add_endpoint(db, program=program, url=url)
    assert exc.value.details["field"] == "url"
    assert row_counts(db) == before


def test_private_destinations_are_allowed_when_the_program_allows_them(
    db: Database, program: str
) -> None:
    info = s.update_program(db, program=program, webhooks_allow_private=True)
    assert info.webhooks_allow_private is True
    for url in ("http://127.0.0.1:8080/hook", "http://localhost:9000/x", "http://10.0.0.1/"):
        assert ep.add_endpoint(db, program=program, url=url).endpoint.url == url


def test_a_host_that_does_not_resolve_is_refused(db: Database, program: str) -> None:
    with pytest.raises(InvalidInput, match="does not resolve"):
        ep.add_endpoint(db, program=program, url="https://no-such-host.invalid/hook")


BAD: list[tuple[dict[str, Any], str]] = [
    ({"url": "ftp://93.184.215.14/x"}, "https://"),
    ({"url": "https://user:pw@93.184.215.14/x"}, "password"),
    ({"url": "https:///nohost"}, "host"),
    ({"url": "https://93.184.215.14/" + "a" * 2000}, "2000"),
    ({"url": "https://93.184.215.14/a b"}, "spaces"),
    ({"url": "https://93.184.215.14:99999/"}, "valid URL"),
    ({"url": 42}, "text"),
    ({"event_types": []}, "empty"),
    ({"event_types": ["points.nope"]}, "unknown event types"),
    ({"event_types": "points.earned"}, "list"),
    ({"description": "x" * 501}, "description"),
    ({"program": "nope"}, "nope"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_input_changes_nothing(
    db: Database, program: str, change: dict[str, Any], message: str
) -> None:
    before = row_counts(db)
    args: dict[str, Any] = {"program": program, "url": PUBLIC, **change}
    with pytest.raises((InvalidInput, ProgramNotFound), match=message):
        ep.add_endpoint(db, **args)
    assert row_counts(db) == before


def test_update_checks_like_add_and_is_audited(db: Database, program: str) -> None:
    info = ep.add_endpoint(db, program=program, url=PUBLIC).endpoint
    with pytest.raises(InvalidInput, match="private"):
        ep.update_endpoint(db, program=program, endpoint=info.id, url="http://10.0.0.1/")
    with pytest.raises(InvalidInput, match="unknown event types"):
        ep.update_endpoint(db, program=program, endpoint=info.id, event_types=["x"])
    assert ep.get_endpoint(db, program=program, endpoint=info.id) == info
    changed = ep.update_endpoint(
        db,
        program=program,
        endpoint=info.id,
        url="https://93.184.215.15/v2",
        event_types=["points.expiring"],
        description="reminders",
        actor="ana",
    )
    assert changed.url == "https://93.184.215.15/v2"
    assert changed.event_types == ("points.expiring",) and changed.description == "reminders"
    entry = s.list_audit(db, program=PROGRAM).items[0]
    assert entry.action == "webhook.update"
    assert entry.before is not None and entry.before["url"] == PUBLIC
    assert entry.after is not None and entry.after["event_types"] == ["points.expiring"]
    cleared = ep.update_endpoint(db, program=program, endpoint=info.id, description="")
    assert cleared.description is None


def test_rotation_keeps_the_previous_secret_for_the_overlap(
    db: Database, program: str, clock: FixedClock
) -> None:
    first = ep.add_endpoint(db, program=program, url=PUBLIC)
    rotated = ep.rotate_secret(db, program=program, endpoint=first.endpoint.id, actor="ana")
    assert rotated.secret != first.secret and rotated.secret.startswith("whsec_")
    assert rotated.endpoint.secret_hint == rotated.secret[-4:]
    assert rotated.endpoint.rotating_until == clock.now() + dt.timedelta(hours=24)
    with db.read() as conn:
        row = conn.execute(select(webhook_endpoints)).one()
    assert (row.secret, row.previous_secret) == (rotated.secret, first.secret)
    clock.advance(dt.timedelta(hours=24, seconds=1))
    assert ep.get_endpoint(db, program=program, endpoint=row.id).rotating_until is None
    at_once = ep.rotate_secret(db, program=program, endpoint=row.id, overlap_hours=0)
    assert at_once.endpoint.rotating_until is None
    with pytest.raises(InvalidInput, match="overlap_hours"):
        ep.rotate_secret(db, program=program, endpoint=row.id, overlap_hours=24 * 8)
    actions = [a for _actor, a, _t in audit_actions(db)]
    assert actions == ["webhook.add", "webhook.rotate", "webhook.rotate"]
    audit_text = repr(s.list_audit(db, program=PROGRAM).items)
    assert rotated.secret not in audit_text and first.secret not in audit_text


def _pending_delivery(db: Database, endpoint_id: int) -> int:
    now = db.clock.now()
    with db.write() as conn:
        program_id = conn.execute(select(webhook_endpoints.c.program_id)).scalar_one()
        event_id = conn.execute(
            insert(events)
            .values(
                event_id="evt_" + "0" * 32,
                program_id=program_id,
                type="points.earned",
                occurred_at=now,
                data={},
                dispatched_at=now,
            )
            .returning(events.c.id)
        ).scalar_one()
        return int(
            conn.execute(
                insert(webhook_deliveries)
                .values(
                    endpoint_id=endpoint_id,
                    event_id=event_id,
                    status="pending",
                    next_attempt_at=now,
                    created_at=now,
                )
                .returning(webhook_deliveries.c.id)
            ).scalar_one()
        )


def test_disable_fails_pending_deliveries_and_enable_starts_afresh(
    db: Database, program: str
) -> None:
    info = ep.add_endpoint(db, program=program, url=PUBLIC).endpoint
    delivery = _pending_delivery(db, info.id)
    assert ep.get_endpoint(db, program=program, endpoint=info.id).pending == 1
    with pytest.raises(InvalidInput, match="reason"):
        ep.disable_endpoint(db, program=program, endpoint=info.id, reason="  ")
    off = ep.disable_endpoint(
        db, program=program, endpoint=info.id, reason="shop moved", actor="bo"
    )
    assert not off.enabled and off.disabled_reason == "shop moved" and off.disabled_at
    assert (off.pending, off.failed) == (0, 1)
    with db.read() as conn:
        row = conn.execute(
            select(webhook_deliveries).where(webhook_deliveries.c.id == delivery)
        ).one()
    assert row.status == "failed" and row.last_error == "endpoint disabled: shop moved"
    with db.write() as conn:
        conn.execute(webhook_endpoints.update().values(failing_since=db.clock.now()))
    on = ep.enable_endpoint(db, program=program, endpoint=info.id, actor="bo")
    assert on.enabled and on.disabled_reason is None and on.failing_since is None
    assert on.failed == 1  # replayed by hand, not by enabling
    assert [a for _actor, a, _t in audit_actions(db)][-2:] == ["webhook.disable", "webhook.enable"]


def test_unknown_endpoints_and_other_programs(db: Database, program: str) -> None:
    make_program(db, "other")
    theirs = ep.add_endpoint(db, program="other", url=PUBLIC).endpoint
    for call in (
        lambda: ep.get_endpoint(db, program=program, endpoint=theirs.id),
        lambda: ep.rotate_secret(db, program=program, endpoint=theirs.id),
        lambda: ep.disable_endpoint(db, program=program, endpoint=theirs.id, reason="x"),
        lambda: ep.enable_endpoint(db, program=program, endpoint=999),
        lambda: ep.update_endpoint(db, program=program, endpoint=999, description="x"),
        lambda: ep.get_endpoint(db, program=program, endpoint=3_196_318_352),  # past INTEGER
        lambda: ep.rotate_secret(db, program=program, endpoint=2**62),
    ):
        with pytest.raises(WebhookEndpointNotFound, match="jifen webhooks list"):
            call()
    assert ep.list_endpoints(db, program=program) == ()
    with pytest.raises(InvalidInput):
        ep.get_endpoint(db, program=program, endpoint=0)
