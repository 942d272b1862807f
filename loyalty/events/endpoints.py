"""Webhook endpoints: where a program's events go, which types, and the secrets that sign them.

An endpoint is a URL (https or http, no credentials in it), the event types it subscribes to
(:data:`~loyalty.events.outbox.EVENT_TYPES` keys, or ``"*"`` for all) and a signing secret
(``whsec_`` + base64 of 32 random bytes) that is shown once, when the endpoint is added or its
secret rotated. A rotation keeps the previous secret signing until the overlap ends, so a
receiver can switch without refusing a delivery.

A URL whose host resolves to loopback, private, link-local, reserved, multicast or unspecified
addresses is refused unless the program's ``webhooks_allow_private`` is on: a shop's console
must not become a way into its own network. :func:`destination_problem` is the same rule the
sender applies again at send time, since DNS answers change.

Disabling an endpoint (by hand, after a 410 or five days of failures) fails its pending
deliveries, so they can be replayed once it works again. Every change is audited (never the
secret).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import secrets
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Row, and_, case, func, insert, select, update

from loyalty.db.tables import programs, webhook_deliveries, webhook_endpoints
from loyalty.domain.checks import require_int, require_text
from loyalty.errors import InvalidInput, WebhookEndpointNotFound
from loyalty.events.outbox import ALL_TYPES, EVENT_TYPES
from loyalty.services.audit import record_audit
from loyalty.services.results import Record
from loyalty.services.uow import Target
from loyalty.services.writes import program_row

MAX_URL = 2000
MAX_DESCRIPTION = 500
MAX_REASON = 500
MAX_OVERLAP_HOURS = 24 * 7
SYSTEM_ACTOR = "system"
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class EndpointInfo(Record):
    """An endpoint as the console and the shell show it (the secret only by its last four
    characters), with its deliveries counted by state and its last attempt."""

    id: int
    url: str
    description: str | None
    event_types: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    disabled_at: dt.datetime | None
    failing_since: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    secret_hint: str
    rotating_until: dt.datetime | None
    pending: int = 0
    failed: int = 0
    delivered: int = 0
    last_attempt_at: dt.datetime | None = None
    last_status_code: int | None = None


@dataclass(frozen=True)
class EndpointCreated:
    """A new endpoint (or a rotated secret) with its secret, shown this once."""

    endpoint: EndpointInfo
    secret: str


def new_secret() -> str:
    """A signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


# --- the destination rule -------------------------------------------------------------------


def _blocked(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` is not a public one, or ``None``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address ``host`` resolves to (an IP literal is itself); empty if it does not
    resolve."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def destination_problem(url: str, *, allow_private: bool) -> str | None:
    """What is wrong with sending to ``url`` now (its host does not resolve, or resolves to an
    address that is not public while the program does not allow that), or ``None``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(host, port)
    if not addresses:
        return f"the host {host!r} does not resolve; check the URL's spelling and DNS"
    if allow_private:
        return None
    for address in addresses:
        why = _blocked(address)
        if why is not None:
            return (
                f"the host {host!r} resolves to {address}, a {why} address; webhooks go to "
                "public addresses only unless the program allows private ones "
                "(webhooks_allow_private)"
            )
    return None


# --- input ----------------------------------------------------------------------------------


def require_url(value: Any) -> str:
    """A webhook URL: http or https, a host, no credentials, at most ``MAX_URL`` characters."""
    if not isinstance(value, str):
        raise InvalidInput("url must be text", field="url")
    url = value.strip()
    if not url or len(url) > MAX_URL:
        raise InvalidInput(f"url must be 1 to {MAX_URL} characters", field="url")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidInput("url may not contain spaces or control characters", field="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise InvalidInput(f"url is not a valid URL: {exc}", field="url") from None
    if parts.scheme not in ("https", "http"):
        raise InvalidInput("url must start with https:// (or http://)", field="url")
    if not parts.hostname:
        raise InvalidInput("url must name a host, as in https://shop.example/hooks", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "url may not carry a user name or password; the signature authenticates Jifen",
            field="url",
        )
    return url


def require_event_types(value: Any) -> tuple[str, ...]:
    """Subscribed types: known event types or ``"*"`` (which stands alone), each once."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidInput("event_types must be a list of event types", field="event_types")
    given = list(value)
    if not given:
        raise InvalidInput(
            'event_types may not be empty; use ["*"] for every type', field="event_types"
        )
    unknown = [t for t in given if t != ALL_TYPES and t not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            f"unknown event types: {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(EVENT_TYPES)} or *",
            field="event_types",
        )
    if ALL_TYPES in given:
        return (ALL_TYPES,)
    return tuple(sorted(set(given)))


def _description(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return require_text("description", value, max_length=MAX_DESCRIPTION)


def actor_name(actor: str | None) -> str:
    return SYSTEM_ACTOR if actor is None else require_text("actor", actor, max_length=120)


MAX_ENDPOINT_ID = 2**31 - 1  # webhook_endpoints.id is an INTEGER


def require_endpoint_id(value: Any) -> int:
    return require_int("endpoint", value, minimum=1)


def _check_destination(db: Target, program: str, url: str) -> None:
    """Refuse ``url`` under the program's destination rule; resolved before any write
    transaction opens (a name lookup can take seconds)."""
    with db.read() as conn:
        allow_private = bool(program_row(conn, program).webhooks_allow_private)
    problem = destination_problem(url, allow_private=allow_private)
    if problem is not None:
        raise InvalidInput(f"url refused: {problem}", field="url")


def audit_endpoint(
    conn: Connection,
    action: str,
    endpoint: int | str,
    *,
    actor: str,
    at: dt.datetime,
    program_id: int,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """One audit entry about an endpoint (``webhook:<id>``; ``*`` for all of them)."""
    record_audit(
        conn,
        actor=actor,
        action=action,
        target=f"webhook:{endpoint}",
        at=at,
        program_id=program_id,
        before=before,
        after=after,
    )


# --- reading --------------------------------------------------------------------------------


def endpoint_row(
    conn: Connection, program_id: int, endpoint: int, *, lock: bool = False
) -> Row[Any]:
    """The program's endpoint with this id, or :class:`WebhookEndpointNotFound` (also for an
    id past the column's range, which no endpoint can have)."""
    query = select(webhook_endpoints).where(
        webhook_endpoints.c.id == endpoint, webhook_endpoints.c.program_id == program_id
    )
    in_range = endpoint <= MAX_ENDPOINT_ID
    row = conn.execute(query.with_for_update() if lock else query).first() if in_range else None
    if row is None:
        raise WebhookEndpointNotFound(
            f"no webhook endpoint {endpoint} in this program; `jifen webhooks list` shows them",
            endpoint=endpoint,
        )
    return row


def _counts(conn: Connection, endpoint_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Per endpoint: deliveries pending, failed and delivered, and the last attempt."""
    if not endpoint_ids:
        return {}
    d = webhook_deliveries.c

    def count(status: str) -> Any:
        return func.coalesce(func.sum(case((d.status == status, 1), else_=0)), 0)

    rows = conn.execute(
        select(
            d.endpoint_id,
            count("pending").label("pending"),
            count("failed").label("failed"),
            count("delivered").label("delivered"),
            func.max(d.last_attempt_at).label("last_attempt_at"),
        )
        .where(d.endpoint_id.in_(endpoint_ids))
        .group_by(d.endpoint_id)
    ).all()
    out = {int(r.endpoint_id): dict(r._mapping) for r in rows}
    for endpoint_id, values in out.items():
        values["last_status_code"] = None
        if values["last_attempt_at"] is not None:
            values["last_status_code"] = conn.execute(
                select(d.last_status_code)
                .where(
                    and_(
                        d.endpoint_id == endpoint_id,
                        d.last_attempt_at == values["last_attempt_at"],
                    )
                )
                .order_by(d.id.desc())
                .limit(1)
            ).scalar()
    return out


def endpoint_info(
    row: Row[Any], now: dt.datetime, counts: Mapping[str, Any] | None
) -> EndpointInfo:
    """The public view of an endpoint row (``counts`` from :func:`_counts`)."""
    counts = counts or {}
    rotating = row.previous_secret is not None and row.previous_expires_at is not None
    rotating_until = row.previous_expires_at if rotating and row.previous_expires_at > now else None
    return EndpointInfo(
        id=int(row.id),
        url=row.url,
        description=row.description,
        event_types=tuple(row.event_types),
        enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason,
        disabled_at=row.disabled_at,
        failing_since=row.failing_since,
        created_at=row.created_at,
        updated_at=row.updated_at,
        secret_hint=row.secret[-4:],
        rotating_until=rotating_until,
        pending=int(counts.get("pending", 0)),
        failed=int(counts.get("failed", 0)),
        delivered=int(counts.get("delivered", 0)),
        last_attempt_at=counts.get("last_attempt_at"),
        last_status_code=counts.get("last_status_code"),
    )


def _info(conn: Connection, row: Row[Any], now: dt.datetime) -> EndpointInfo:
    return endpoint_info(row, now, _counts(conn, [int(row.id)]).get(int(row.id)))


def list_endpoints(db: Target, *, program: str) -> tuple[EndpointInfo, ...]:
    """The program's endpoints, oldest first."""
    now = db.clock.now()
    with db.read() as conn:
        prog = program_row(conn, program)
        rows = conn.execute(
            select(webhook_endpoints)
            .where(webhook_endpoints.c.program_id == prog.id)
            .order_by(webhook_endpoints.c.id)
        ).all()
        counts = _counts(conn, [int(r.id) for r in rows])
        return tuple(endpoint_info(r, now, counts.get(int(r.id))) for r in rows)


def get_endpoint(db: Target, *, program: str, endpoint: int) -> EndpointInfo:
    """One endpoint of the program, or :class:`WebhookEndpointNotFound`."""
    endpoint = require_endpoint_id(endpoint)
    with db.read() as conn:
        prog = program_row(conn, program)
        return _info(conn, endpoint_row(conn, int(prog.id), endpoint), db.clock.now())


# --- changes --------------------------------------------------------------------------------


def _audited(row: Row[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """What an audit entry shows of an endpoint (never a secret)."""
    values = row._mapping if isinstance(row, Row) else row
    out = {f: values[f] for f in ("url", "description", "enabled", "disabled_reason")}
    out["event_types"] = list(values["event_types"])
    return out


def add_endpoint(
    db: Target,
    *,
    program: str,
    url: str,
    event_types: Sequence[str] = (ALL_TYPES,),
    description: str | None = None,
    actor: str | None = None,
) -> EndpointCreated:
    """Add an endpoint to the program; its secret is in the result, and only there."""
    url = require_url(url)
    types = require_event_types(event_types)
    text = _description(description)
    who = actor_name(actor)
    now = db.clock.now()
    secret = new_secret()
    _check_destination(db, program, url)
    with db.write() as conn:
        prog = program_row(conn, program)
        values = {
            "program_id": prog.id,
            "url": url,
            "description": text,
            "event_types": list(types),
            "secret": secret,
            "enabled": True,
            "created_at": now,
            "created_by": who,
            "updated_at": now,
        }
        endpoint_id = conn.execute(
            insert(webhook_endpoints).values(**values).returning(webhook_endpoints.c.id)
        ).scalar_one()
        audit_endpoint(
            conn,
            "webhook.add",
            endpoint_id,
            actor=who,
            at=now,
            program_id=int(prog.id),
            after=_audited({**values, "disabled_reason": None}),
        )
        row = endpoint_row(conn, int(prog.id), int(endpoint_id))
        return EndpointCreated(endpoint=_info(conn, row, now), secret=secret)


def update_endpoint(
    db: Target,
    *,
    program: str,
    endpoint: int,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    actor: str | None = None,
) -> EndpointInfo:
    """Change an endpoint's URL, event types or description (``None`` keeps it; an empty
    description clears it). Only new deliveries follow the new types; a new URL is checked
    like a new endpoint's."""
    endpoint = require_endpoint_id(endpoint)
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = require_url(url)
    if event_types is not None:
        changes["event_types"] = list(require_event_types(event_types))
    if description is not None:
        changes["description"] = _description(description)
    who = actor_name(actor)
    now = db.clock.now()
    if "url" in changes:
        _check_destination(db, program, changes["url"])
    with db.write() as conn:
        prog = program_row(conn, program)
        row = endpoint_row(conn, int(prog.id), endpoint, lock=True)
        if changes:
            _change(conn, row, changes, now)
            audit_endpoint(
                conn,
                "webhook.update",
                endpoint,
                actor=who,
                at=now,
                program_id=int(prog.id),
                before=_audited(row),
                after=_audited({**row._mapping, **changes}),
            )
        return _info(conn, endpoint_row(conn, int(prog.id), endpoint), now)


def _change(conn: Connection, row: Row[Any], values: Mapping[str, Any], now: dt.datetime) -> None:
    conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == row.id)
        .values(**values, updated_at=now)
    )


def rotate_secret(
    db: Target,
    *,
    program: str,
    endpoint: int,
    actor: str | None = None,
    overlap_hours: int = 24,
) -> EndpointCreated:
    """Give the endpoint a new secret (in the result, shown once); the one it replaces keeps
    signing beside it for ``overlap_hours`` (0: it stops at once)."""
    endpoint = require_endpoint_id(endpoint)
    require_int("overlap_hours", overlap_hours, minimum=0)
    if overlap_hours > MAX_OVERLAP_HOURS:
        raise InvalidInput(
            f"overlap_hours may be at most {MAX_OVERLAP_HOURS} (a week)", field="overlap_hours"
        )
    who = actor_name(actor)
    now = db.clock.now()
    secret = new_secret()
    with db.write() as conn:
        prog = program_row(conn, program)
        row = endpoint_row(conn, int(prog.id), endpoint, lock=True)
        overlap = overlap_hours > 0
        _change(
            conn,
            row,
            {
                "secret": secret,
                "previous_secret": row.secret if overlap else None,
                "previous_expires_at": now + dt.timedelta(hours=overlap_hours) if overlap else None,
            },
            now,
        )
        audit_endpoint(
            conn,
            "webhook.rotate",
            endpoint,
            actor=who,
            at=now,
            program_id=int(prog.id),
            after={"overlap_hours": overlap_hours, "secret_hint": secret[-4:]},
        )
        return EndpointCreated(
            endpoint=_info(conn, endpoint_row(conn, int(prog.id), endpoint), now), secret=secret
        )


def disable_in(conn: Connection, endpoint_id: int, reason: str, now: dt.datetime) -> int:
    """Disable an endpoint in the caller's transaction and fail its pending deliveries
    (``endpoint disabled: <reason>``); returns how many were failed."""
    conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now)
    )
    return int(
        conn.execute(
            update(webhook_deliveries)
            .where(
                webhook_deliveries.c.endpoint_id == endpoint_id,
                webhook_deliveries.c.status == "pending",
            )
            .values(
                status="failed",
                next_attempt_at=None,
                last_error=f"endpoint disabled: {reason}"[: MAX_REASON + 20],
            )
        ).rowcount
    )


def disable_endpoint(
    db: Target, *, program: str, endpoint: int, reason: str, actor: str | None = None
) -> EndpointInfo:
    """Stop sending to the endpoint; its pending deliveries fail with ``reason`` (replay
    them after enabling it again)."""
    endpoint = require_endpoint_id(endpoint)
    why = require_text("reason", reason, max_length=MAX_REASON)
    who = actor_name(actor)
    now = db.clock.now()
    with db.write() as conn:
        prog = program_row(conn, program)
        row = endpoint_row(conn, int(prog.id), endpoint, lock=True)
        failed = disable_in(conn, endpoint, why, now)
        audit_endpoint(
            conn,
            "webhook.disable",
            endpoint,
            actor=who,
            at=now,
            program_id=int(prog.id),
            before={"enabled": bool(row.enabled)},
            after={"enabled": False, "reason": why, "deliveries_failed": failed},
        )
        return _info(conn, endpoint_row(conn, int(prog.id), endpoint), now)


def enable_endpoint(
    db: Target, *, program: str, endpoint: int, actor: str | None = None
) -> EndpointInfo:
    """Send to the endpoint again (from the next dispatched event; replay failed deliveries
    to send those). Its failure streak starts afresh."""
    endpoint = require_endpoint_id(endpoint)
    who = actor_name(actor)
    now = db.clock.now()
    with db.write() as conn:
        prog = program_row(conn, program)
        row = endpoint_row(conn, int(prog.id), endpoint, lock=True)
        _change(
            conn,
            row,
            {"enabled": True, "disabled_reason": None, "disabled_at": None, "failing_since": None},
            now,
        )
        audit_endpoint(
            conn,
            "webhook.enable",
            endpoint,
            actor=who,
            at=now,
            program_id=int(prog.id),
            before={"enabled": bool(row.enabled), "disabled_reason": row.disabled_reason},
            after={"enabled": True},
        )
        return _info(conn, endpoint_row(conn, int(prog.id), endpoint), now)


def program_allows_private(conn: Connection, program_id: int) -> bool:
    """Whether the program lets its endpoints resolve to private addresses."""
    return bool(
        conn.execute(
            select(programs.c.webhooks_allow_private).where(programs.c.id == program_id)
        ).scalar()
    )
