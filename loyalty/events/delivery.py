"""Signed delivery of webhook events: sending, retries, the attempt log and replays.

:func:`deliver_due` claims the deliveries that are due and at the head of their member's queue
for their endpoint (no earlier pending delivery of that member to that endpoint, no earlier
event of the member still waiting for dispatch), leasing them by moving ``next_attempt_at``
past the request's timeout, and commits; a sender killed mid-request leaves a claim that
comes back when the lease ends. It then posts outside any transaction (a few threads, no
redirects followed) and records each outcome in a short transaction of its own: an attempt
row and the delivery's new state.

Requests follow the Standard Webhooks specification: ``webhook-id`` is the event's id (the
receiver's deduplication key), ``webhook-timestamp`` the moment of sending (the wall clock,
since receivers compare it with theirs), ``webhook-signature`` one ``v1,`` signature per
secret in force (two during a rotation), made by the ``standardwebhooks`` package over the
exact body sent.

A 2xx answer delivers. Anything else is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
10 h (eight attempts, the first at once), or later if the answer carries ``Retry-After``
(capped at a day); after the eighth the delivery fails. A 410 disables the endpoint at once,
and so does a failure five days after the first failure since the last success. The
destination rule of :mod:`.endpoints` is checked again before each request. Failed deliveries
can be replayed by hand (:func:`replay_delivery`, :func:`replay_failed`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import email.utils
import functools
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from standardwebhooks import Webhook

from loyalty.db.database import Database
from loyalty.db.dialect import is_postgres
from loyalty.db.tables import (
    events,
    members,
    programs,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)
from loyalty.domain.checks import require_aware, require_int
from loyalty.errors import Conflict, InvalidInput, WebhookDeliveryNotFound
from loyalty.events.dispatch import dispatch_events
from loyalty.events.email import EmailRun, send_due_emails
from loyalty.events.endpoints import (
    actor_name,
    audit_endpoint,
    destination_problem,
    disable_in,
    endpoint_row,
    require_endpoint_id,
)
from loyalty.events.outbox import envelope
from loyalty.services.results import Record
from loyalty.services.uow import Target
from loyalty.services.writes import program_row

RETRY_DELAYS = (
    dt.timedelta(seconds=5),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=5),
    dt.timedelta(hours=10),
    dt.timedelta(hours=10),
)
"""The wait after failed attempt n (``RETRY_DELAYS[n - 1]``), per the specification."""

MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
FAILING_LIMIT = dt.timedelta(days=5)
RETRY_AFTER_CAP = dt.timedelta(hours=24)
LEASE_MARGIN = dt.timedelta(seconds=60)
DEFAULT_TIMEOUT = 15.0
EXCERPT_CHARS = 500
USER_AGENT = "Jifen-Webhooks/1"
MAX_LIMIT = 10_000
MAX_WORKERS = 64
MAX_PAGE = 500
TEST_EVENT = "webhook.test"


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRun:
    """What one :func:`deliver_due` did: requests made, and how they ended (delivered, to be
    retried, failed for good), and how many endpoints were disabled on the way."""

    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    disabled_endpoints: int = 0

    def __add__(self, other: DeliveryRun) -> DeliveryRun:
        return DeliveryRun(
            self.attempted + other.attempted,
            self.delivered + other.delivered,
            self.retrying + other.retrying,
            self.failed + other.failed,
            self.disabled_endpoints + other.disabled_endpoints,
        )


@dataclass(frozen=True)
class AttemptInfo(Record):
    """One request: when, the HTTP status (``None`` when no answer came), how long it took,
    the error and the start of the response; ``manual`` for a hand test."""

    attempted_at: dt.datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None
    manual: bool = False

    @property
    def ok(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class DeliveryInfo(Record):
    """A delivery of one event to one endpoint, as the console and the shell list it."""

    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    member: str | None
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime


@dataclass(frozen=True)
class DeliveryDetail:
    """A delivery with every attempt (oldest first) and the body it sends."""

    delivery: DeliveryInfo
    attempts: tuple[AttemptInfo, ...]
    payload: dict[str, Any]


@dataclass(frozen=True)
class Backlog:
    """What waits: events not dispatched, deliveries pending (and how many are due now),
    deliveries failed, and the oldest pending delivery's creation time and age."""

    undispatched: int
    pending: int
    due: int
    failed: int
    oldest_pending_at: dt.datetime | None
    oldest_pending_seconds: float | None


# --- what is sent ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery, ready to send outside any transaction."""

    delivery_id: int
    endpoint_id: int
    url: str
    allow_private: bool
    secrets: tuple[str, ...]
    webhook_id: str
    body: str


@dataclass(frozen=True)
class Answer:
    """What came back from one request (or why nothing did)."""

    status_code: int | None
    latency_ms: int
    error: str | None
    excerpt: str | None
    retry_after: dt.timedelta | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def body_of(event_id: str, type_: str, occurred_at: dt.datetime, data: Any) -> str:
    """The exact JSON text a receiver gets (and the signature covers)."""
    payload = envelope(event_id, type_, occurred_at, data)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def secrets_in_force(row: Any, now: dt.datetime) -> tuple[str, ...]:
    """The endpoint's current secret, and the previous one while its overlap lasts."""
    expires = row.previous_expires_at
    if row.previous_secret is not None and expires is not None and expires > now:
        return (row.secret, row.previous_secret)
    return (row.secret,)


def signed_headers(
    webhook_id: str, body: str, secrets: Sequence[str], at: dt.datetime | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers for ``body``: one ``v1`` signature per secret."""
    sent_at = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    signatures = " ".join(Webhook(secret).sign(webhook_id, sent_at, body) for secret in secrets)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def retry_after(value: str | None) -> dt.timedelta | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as a wait, capped at a day."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        wait = dt.timedelta(seconds=int(text[:7]))
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        wait = max(when - dt.datetime.now(dt.UTC), dt.timedelta(0))
    return min(wait, RETRY_AFTER_CAP)


def _excerpt(response: httpx.Response) -> str:
    """The start of the response body, read no further than needed."""
    chunks = bytearray()
    for chunk in response.iter_bytes():
        chunks.extend(chunk)
        if len(chunks) >= EXCERPT_CHARS * 4:
            break
    return chunks.decode("utf-8", errors="replace")[:EXCERPT_CHARS]


class Destinations:
    """The destination rule checked once per URL during a run (a name is resolved once)."""

    def __init__(self) -> None:
        self._checked: dict[tuple[str, bool], str | None] = {}
        self._lock = threading.Lock()

    def problem(self, url: str, *, allow_private: bool) -> str | None:
        key = (url, allow_private)
        with self._lock:
            if key in self._checked:
                return self._checked[key]
        found = destination_problem(url, allow_private=allow_private)
        with self._lock:
            self._checked[key] = found
        return found


def post(
    client: httpx.Client,
    out: Outgoing,
    *,
    timeout: float,
    destinations: Destinations | None = None,
) -> Answer:
    """Send one signed request (after checking its destination again) and say how it went."""
    problem = (destinations or Destinations()).problem(out.url, allow_private=out.allow_private)
    if problem is not None:
        return Answer(None, 0, f"not sent: {problem}", None)
    headers = signed_headers(out.webhook_id, out.body, out.secrets)
    started = time.monotonic()
    try:
        with client.stream(
            "POST", out.url, content=out.body.encode("utf-8"), headers=headers, timeout=timeout
        ) as response:
            excerpt = _excerpt(response)
    except httpx.TimeoutException:
        return Answer(None, _ms(started), f"no answer within {timeout:g} s (timed out)", None)
    except httpx.HTTPError as exc:
        return Answer(None, _ms(started), f"{type(exc).__name__}: {exc}"[:1000], None)
    error = _error_of(response)
    wait = None if error is None else retry_after(response.headers.get("retry-after"))
    return Answer(response.status_code, _ms(started), error, excerpt or None, wait)


def _ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))


def _error_of(response: httpx.Response) -> str | None:
    code = response.status_code
    if 200 <= code < 300:
        return None
    if 300 <= code < 400:
        where = response.headers.get("location", "elsewhere")
        return f"HTTP {code}: redirected to {where[:300]} (redirects are not followed)"
    return f"HTTP {code} {response.reason_phrase}".strip()


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client: building one loads the system's CA certificates,
    about a quarter of a second, which a sending round would otherwise pay each time."""
    return ssl.create_default_context()


def http_client(timeout: float, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The client deliveries use: no redirects, a timeout per request phase."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        transport=transport,
        verify=_tls(),
        headers={"user-agent": USER_AGENT},
    )


# --- claiming -------------------------------------------------------------------------------


def _due_heads(now: dt.datetime, limit: int) -> Any:
    """Due deliveries of enabled endpoints that head their member's queue, with what sending
    them needs."""
    d, e, ev, p = webhook_deliveries, webhook_endpoints, events, programs
    earlier = webhook_deliveries.alias("earlier")
    waiting = events.alias("waiting")
    return (
        select(
            d.c.id,
            d.c.endpoint_id,
            e.c.url,
            e.c.secret,
            e.c.previous_secret,
            e.c.previous_expires_at,
            p.c.webhooks_allow_private,
            ev.c.event_id,
            ev.c.type,
            ev.c.occurred_at,
            ev.c.data,
        )
        .join(e, e.c.id == d.c.endpoint_id)
        .join(p, p.c.id == e.c.program_id)
        .join(ev, ev.c.id == d.c.event_id)
        .where(
            d.c.status == "pending",
            d.c.next_attempt_at <= now,
            e.c.enabled.is_(True),
            ~exists().where(
                earlier.c.endpoint_id == d.c.endpoint_id,
                earlier.c.member_id == d.c.member_id,
                earlier.c.status == "pending",
                earlier.c.event_id < d.c.event_id,
            ),
            ~exists().where(
                waiting.c.member_id == d.c.member_id,
                waiting.c.dispatched_at.is_(None),
                waiting.c.id < d.c.event_id,
            ),
        )
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(limit)
    )


def claim_due(db: Database, *, limit: int, lease: dt.timedelta) -> list[Outgoing]:
    """Claim up to ``limit`` due queue heads until ``now + lease`` and commit the claim."""
    now = db.clock.now()
    with db.write() as conn:
        query = _due_heads(now, limit)
        if is_postgres(conn):
            query = query.with_for_update(of=webhook_deliveries, skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return []
        claimed = set(
            conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.id.in_([r.id for r in rows]),
                    webhook_deliveries.c.status == "pending",
                    webhook_deliveries.c.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + lease)
                .returning(webhook_deliveries.c.id)
            ).scalars()
        )
    return [_outgoing(r, now) for r in rows if r.id in claimed]


def _outgoing(row: Row[Any], now: dt.datetime) -> Outgoing:
    return Outgoing(
        delivery_id=int(row.id),
        endpoint_id=int(row.endpoint_id),
        url=row.url,
        allow_private=bool(row.webhooks_allow_private),
        secrets=secrets_in_force(row, now),
        webhook_id=row.event_id,
        body=body_of(row.event_id, row.type, row.occurred_at, row.data),
    )


# --- recording ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """How a recorded attempt left its delivery, and whether it disabled the endpoint."""

    status: str
    disabled_endpoint: bool


Answered = tuple[Outgoing, Answer]
RECORD_BATCH = 50


def record_answer(db: Database, out: Outgoing, answer: Answer) -> Recorded:
    """Log one attempt and move its delivery (and maybe its endpoint) on."""
    return record_answers(db, [(out, answer)])[0]


def record_answers(db: Database, answered: Sequence[Answered]) -> list[Recorded]:
    """Log these attempts and move their deliveries (and maybe their endpoints) on, in one
    transaction (one commit for many answers); results in the order given."""
    now = db.clock.now()
    e, d = webhook_endpoints.c, webhook_deliveries.c
    with db.write() as conn:
        # endpoints first, then deliveries, as disabling takes them: no deadlock
        enabled = {
            r.id: bool(r.enabled)
            for r in conn.execute(
                select(e.id, e.enabled)
                .where(e.id.in_({o.endpoint_id for o, _a in answered}))
                .order_by(e.id)
                .with_for_update()
            )
        }
        rows = {
            r.id: r
            for r in conn.execute(
                select(d.id, d.status, d.attempts)
                .where(d.id.in_([o.delivery_id for o, _a in answered]))
                .order_by(d.id)
                .with_for_update()
            )
        }
        conn.execute(insert(webhook_attempts), [_attempt_row(o, a, now) for o, a in answered])
        _delivered(conn, [(o, a) for o, a in answered if a.ok], rows, now)
        results = []
        for out, answer in answered:
            if answer.ok:
                results.append(Recorded("delivered", False))
                continue
            results.append(_failed(conn, out, answer, rows[out.delivery_id], enabled, now))
        return results


def _attempt_row(out: Outgoing, answer: Answer, now: dt.datetime) -> dict[str, Any]:
    return {
        "delivery_id": out.delivery_id,
        "attempted_at": now,
        "status_code": answer.status_code,
        "latency_ms": answer.latency_ms,
        "error": answer.error,
        "response_excerpt": answer.excerpt,
        "manual": False,
    }


_MARK_DELIVERED = (
    update(webhook_deliveries)
    .where(webhook_deliveries.c.id == bindparam("b_id"))
    .values(
        status="delivered",
        attempts=bindparam("b_attempts"),
        next_attempt_at=None,
        last_attempt_at=bindparam("b_at"),
        last_status_code=bindparam("b_code"),
        last_error=None,
        delivered_at=bindparam("b_at"),
    )
)


def _delivered(
    conn: Connection, answered: Sequence[Answered], rows: Mapping[int, Any], now: dt.datetime
) -> None:
    """Mark these deliveries delivered and end their endpoints' failure streaks."""
    if not answered:
        return
    conn.execute(
        _MARK_DELIVERED,
        [
            {
                "b_id": out.delivery_id,
                "b_attempts": int(rows[out.delivery_id].attempts) + 1,
                "b_at": now,
                "b_code": answer.status_code,
            }
            for out, answer in answered
        ],
    )
    conn.execute(
        update(webhook_endpoints)
        .where(
            webhook_endpoints.c.id.in_({out.endpoint_id for out, _a in answered}),
            webhook_endpoints.c.failing_since.is_not(None),
        )
        .values(failing_since=None)
    )


def _failed(
    conn: Connection,
    out: Outgoing,
    answer: Answer,
    row: Any,
    enabled: dict[int, bool],
    now: dt.datetime,
) -> Recorded:
    """Record a failed attempt: retry it later, or fail it (every attempt used, or its
    endpoint disabled, now or before); ``enabled`` is updated when this disables one."""
    attempts = int(row.attempts) + 1
    reason = None
    if enabled[out.endpoint_id]:
        reason = _disable_reason(conn, out.endpoint_id, answer, now)
    final = (
        attempts >= MAX_ATTEMPTS
        or reason is not None
        or row.status != "pending"
        or not enabled[out.endpoint_id]
    )
    _failed_attempt(conn, out.delivery_id, answer, attempts, now, final)
    if reason is not None:
        disable_in(conn, out.endpoint_id, reason, now)
        enabled[out.endpoint_id] = False
    return Recorded("failed" if final else "retrying", reason is not None)


def _failed_attempt(
    conn: Connection,
    delivery_id: int,
    answer: Answer,
    attempts: int,
    now: dt.datetime,
    final: bool,
) -> None:
    conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            status="failed" if final else "pending",
            attempts=attempts,
            next_attempt_at=None if final else now + next_wait(attempts, answer.retry_after),
            last_attempt_at=now,
            last_status_code=answer.status_code,
            last_error=answer.error,
        )
    )


def next_wait(attempts: int, asked: dt.timedelta | None) -> dt.timedelta:
    """The wait after ``attempts`` failed attempts: the schedule's, or longer if the receiver
    asked for it (``Retry-After``)."""
    scheduled = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    return max(scheduled, asked) if asked is not None else scheduled


def _disable_reason(
    conn: Connection, endpoint_id: int, answer: Answer, now: dt.datetime
) -> str | None:
    """Why this failure disables the endpoint (a 410, or five days of failures), or ``None``;
    starts the endpoint's failure streak if none is running."""
    if answer.status_code == 410:
        return f"the endpoint answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC"
    e = webhook_endpoints.c
    conn.execute(
        update(webhook_endpoints)
        .where(e.id == endpoint_id, e.failing_since.is_(None))
        .values(failing_since=now)
    )
    row = conn.execute(select(e.enabled, e.failing_since).where(e.id == endpoint_id)).one()
    if row.enabled and now - row.failing_since >= FAILING_LIMIT:
        return f"failing for 5 days since {row.failing_since:%Y-%m-%d %H:%M} UTC"
    return None


# --- the sender -----------------------------------------------------------------------------


def deliver_due(
    db: Database,
    *,
    limit: int = 200,
    workers: int = 4,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> DeliveryRun:
    """Send up to ``limit`` due deliveries (each the head of its member's queue) with
    ``workers`` threads and record how each went; one round (a member's next delivery is due
    in the next one)."""
    require_int("limit", limit, minimum=1, maximum=MAX_LIMIT)
    require_int("workers", workers, minimum=1, maximum=MAX_WORKERS)
    if not isinstance(timeout, int | float) or not 0 < timeout <= 300:
        raise InvalidInput("timeout must be a number of seconds above 0 and at most 300")
    lease = dt.timedelta(seconds=timeout) + LEASE_MARGIN
    outgoing = claim_due(db, limit=limit, lease=lease)
    if not outgoing:
        return DeliveryRun()
    run = DeliveryRun()
    with (
        http_client(timeout, transport) as client,
        concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        checks = Destinations()
        sends = {
            pool.submit(post, client, out, timeout=timeout, destinations=checks): out
            for out in outgoing
        }
        answered: list[Answered] = []
        for done in concurrent.futures.as_completed(sends):
            answered.append((sends[done], done.result()))
            if len(answered) >= RECORD_BATCH:
                run = run + _record(db, answered)
                answered = []
        if answered:
            run = run + _record(db, answered)
    return run


def _record(db: Database, answered: Sequence[Answered]) -> DeliveryRun:
    run = DeliveryRun()
    for recorded in record_answers(db, answered):
        run = run + _counted(recorded)
    return run


def _counted(recorded: Recorded) -> DeliveryRun:
    return DeliveryRun(
        attempted=1,
        delivered=int(recorded.status == "delivered"),
        retrying=int(recorded.status == "retrying"),
        failed=int(recorded.status == "failed"),
        disabled_endpoints=int(recorded.disabled_endpoint),
    )


# --- replays --------------------------------------------------------------------------------


def _program_deliveries(program_id: int) -> Any:
    """Deliveries of the program's endpoints (a filter to add to a statement)."""
    return webhook_deliveries.c.endpoint_id.in_(
        select(webhook_endpoints.c.id).where(webhook_endpoints.c.program_id == program_id)
    )


def _replayed() -> dict[str, Any]:
    return {"status": "pending", "attempts": 0, "last_error": None}


def replay_delivery(
    db: Target, *, program: str, delivery: int, actor: str | None = None
) -> DeliveryInfo:
    """Send a failed delivery again from the start (attempts reset, due now)."""
    delivery = require_int("delivery", delivery, minimum=1)
    who = actor_name(actor)
    now = db.clock.now()
    with db.write() as conn:
        prog = program_row(conn, program)
        row = _delivery_row(conn, int(prog.id), delivery)
        if row.status != "failed":
            raise Conflict(
                f"delivery {delivery} is {row.status}; only failed deliveries are replayed",
                delivery=delivery,
                status=row.status,
            )
        endpoint = endpoint_row(conn, int(prog.id), int(row.endpoint_id))
        if not endpoint.enabled:
            raise Conflict(
                f"endpoint {endpoint.id} is disabled ({endpoint.disabled_reason}); enable it "
                f"first (`jifen webhooks enable {endpoint.id}`), then replay",
                endpoint=int(endpoint.id),
            )
        conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id == delivery)
            .values(**_replayed(), next_attempt_at=now)
        )
        audit_endpoint(
            conn,
            "webhook.replay",
            row.endpoint_id,
            actor=who,
            at=now,
            program_id=int(prog.id),
            after={"delivery": delivery, "event": row.public_event_id},
        )
        return _delivery_info(_delivery_row(conn, int(prog.id), delivery))


def replay_failed(
    db: Target,
    *,
    program: str,
    endpoint: int | None = None,
    since: dt.datetime | None = None,
    actor: str | None = None,
) -> int:
    """Send again every failed delivery of the program's enabled endpoints (or of one
    endpoint) whose last attempt (or creation) is at or after ``since``; returns how many."""
    who = actor_name(actor)
    if since is not None:
        since = require_aware("since", since)
    now = db.clock.now()
    d = webhook_deliveries.c
    with db.write() as conn:
        prog = program_row(conn, program)
        enabled = select(webhook_endpoints.c.id).where(
            webhook_endpoints.c.program_id == prog.id, webhook_endpoints.c.enabled.is_(True)
        )
        if endpoint is not None:
            endpoint = require_endpoint_id(endpoint)
            endpoint_row(conn, int(prog.id), endpoint)
            enabled = enabled.where(webhook_endpoints.c.id == endpoint)
        query = update(webhook_deliveries).where(d.status == "failed", d.endpoint_id.in_(enabled))
        if since is not None:
            query = query.where(func.coalesce(d.last_attempt_at, d.created_at) >= since)
        count = int(conn.execute(query.values(**_replayed(), next_attempt_at=now)).rowcount)
        audit_endpoint(
            conn,
            "webhook.replay_failed",
            "*" if endpoint is None else endpoint,
            actor=who,
            at=now,
            program_id=int(prog.id),
            after={"deliveries": count, "since": None if since is None else since.isoformat()},
        )
        return count


# --- reading --------------------------------------------------------------------------------


def _deliveries_query() -> Any:
    d, ev, m = webhook_deliveries, events, members
    return (
        select(
            d,
            ev.c.event_id.label("public_event_id"),
            ev.c.type.label("event_type"),
            ev.c.occurred_at.label("event_occurred_at"),
            ev.c.data.label("event_data"),
            m.c.external_id.label("member_external_id"),
        )
        .join(ev, ev.c.id == d.c.event_id)
        .outerjoin(m, m.c.id == d.c.member_id)
    )


def _delivery_row(conn: Connection, program_id: int, delivery: int) -> Row[Any]:
    row = conn.execute(
        _deliveries_query().where(
            webhook_deliveries.c.id == delivery, _program_deliveries(program_id)
        )
    ).first()
    if row is None:
        raise WebhookDeliveryNotFound(
            f"no webhook delivery {delivery} in this program; "
            "`jifen webhooks deliveries` lists them",
            delivery=delivery,
        )
    return row


def _delivery_info(row: Row[Any]) -> DeliveryInfo:
    return DeliveryInfo(
        id=int(row.id),
        endpoint_id=int(row.endpoint_id),
        event_id=row.public_event_id,
        event_type=row.event_type,
        member=row.member_external_id,
        status=row.status,
        attempts=int(row.attempts),
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
    )


STATUSES = ("pending", "delivered", "failed")


def list_deliveries(
    db: Target,
    *,
    program: str,
    endpoint: int | None = None,
    status: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> tuple[DeliveryInfo, ...]:
    """The program's deliveries, newest first; ``before`` (a delivery id) pages on."""
    require_int("limit", limit, minimum=1, maximum=MAX_PAGE)
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
    d = webhook_deliveries.c
    with db.read() as conn:
        prog = program_row(conn, program)
        query = _deliveries_query().where(_program_deliveries(int(prog.id)))
        if endpoint is not None:
            endpoint = require_endpoint_id(endpoint)
            endpoint_row(conn, int(prog.id), endpoint)
            query = query.where(d.endpoint_id == endpoint)
        if status is not None:
            query = query.where(d.status == status)
        if before is not None:
            query = query.where(d.id < require_int("before", before, minimum=1))
        rows = conn.execute(query.order_by(d.id.desc()).limit(limit)).all()
        return tuple(_delivery_info(r) for r in rows)


def _attempt_info(row: Row[Any]) -> AttemptInfo:
    return AttemptInfo(
        attempted_at=row.attempted_at,
        status_code=row.status_code,
        latency_ms=int(row.latency_ms),
        error=row.error,
        response_excerpt=row.response_excerpt,
        manual=bool(row.manual),
    )


def delivery_detail(db: Target, *, program: str, delivery: int) -> DeliveryDetail:
    """One delivery, its attempts (oldest first) and the body it sends."""
    delivery = require_int("delivery", delivery, minimum=1)
    with db.read() as conn:
        prog = program_row(conn, program)
        row = _delivery_row(conn, int(prog.id), delivery)
        attempts = conn.execute(
            select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id == delivery)
            .order_by(webhook_attempts.c.id)
        ).all()
        payload = envelope(
            row.public_event_id, row.event_type, row.event_occurred_at, row.event_data
        )
        return DeliveryDetail(
            delivery=_delivery_info(row),
            attempts=tuple(_attempt_info(a) for a in attempts),
            payload=payload,
        )


def backlog(db: Target, *, program: str | None = None) -> Backlog:
    """How much waits to be dispatched and delivered (for one program, or all)."""
    now = db.clock.now()
    d = webhook_deliveries.c
    with db.read() as conn:
        undispatched = (
            select(func.count()).select_from(events).where(events.c.dispatched_at.is_(None))
        )
        deliveries = select(
            func.count().filter(d.status == "pending"),
            func.count().filter(and_(d.status == "pending", d.next_attempt_at <= now)),
            func.count().filter(d.status == "failed"),
            func.min(d.created_at).filter(d.status == "pending"),
        ).where(or_(d.status == "pending", d.status == "failed"))
        if program is not None:
            program_id = int(program_row(conn, program).id)
            undispatched = undispatched.where(events.c.program_id == program_id)
            deliveries = deliveries.where(_program_deliveries(program_id))
        waiting = int(conn.execute(undispatched).scalar_one())
        pending, due, failed, oldest = conn.execute(deliveries).one()
    return Backlog(
        undispatched=waiting,
        pending=int(pending),
        due=int(due),
        failed=int(failed),
        oldest_pending_at=oldest,
        oldest_pending_seconds=None if oldest is None else (now - oldest).total_seconds(),
    )


# --- a hand test ----------------------------------------------------------------------------


def send_test(
    db: Database,
    *,
    program: str,
    endpoint: int,
    actor: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> AttemptInfo:
    """Send a signed ``webhook.test`` event (not kept in the outbox) to the endpoint now and
    say how it went; audited."""
    endpoint = require_endpoint_id(endpoint)
    who = actor_name(actor)
    now = db.clock.now()
    with db.read() as conn:
        prog = program_row(conn, program)
        row = endpoint_row(conn, int(prog.id), endpoint)
    webhook_id = "evt_" + uuid.uuid4().hex
    data = {"program": prog.code, "endpoint": endpoint, "message": "a test from Jifen"}
    out = Outgoing(
        delivery_id=0,
        endpoint_id=endpoint,
        url=row.url,
        allow_private=bool(prog.webhooks_allow_private),
        secrets=secrets_in_force(row, now),
        webhook_id=webhook_id,
        body=body_of(webhook_id, TEST_EVENT, now, data),
    )
    with http_client(timeout, transport) as client:
        answer = post(client, out, timeout=timeout)
    attempt = AttemptInfo(
        now, answer.status_code, answer.latency_ms, answer.error, answer.excerpt, True
    )
    with db.write() as conn:
        audit_endpoint(
            conn,
            "webhook.test",
            endpoint,
            actor=who,
            at=now,
            program_id=int(prog.id),
            after={"status_code": answer.status_code, "error": answer.error},
        )
    return attempt


def iter_rounds(db: Database, *, rounds: int, **options: Any) -> Iterator[DeliveryRun]:
    """Up to ``rounds`` rounds of :func:`deliver_due`, stopping after one that sent nothing."""
    for _ in range(rounds):
        run = deliver_due(db, **options)
        yield run
        if run.attempted == 0:
            return


# --- a whole run: dispatch, deliver, e-mail -------------------------------------------------


@dataclass(frozen=True)
class OutboundRun:
    """What :func:`run_outbound` did: events dispatched and deliveries made, the sending
    rounds and their totals, and the reminder e-mails' run (``None`` when not run)."""

    dispatched: int
    deliveries_made: int
    rounds: int
    delivery: DeliveryRun
    emails: EmailRun | None = None


def run_outbound(
    db: Database,
    *,
    max_rounds: int = 100,
    budget_seconds: float | None = None,
    limit: int = 200,
    workers: int = 4,
    timeout: float = DEFAULT_TIMEOUT,
    emails: bool = True,
    on_round: Callable[[OutboundRun], None] | None = None,
) -> OutboundRun:
    """Dispatch, then deliver round after round (dispatching what was written meanwhile)
    until nothing is due, ``max_rounds`` or ``budget_seconds`` is reached; then send the due
    reminder e-mails when ``emails`` and the e-mail channel is installed."""
    require_int("max_rounds", max_rounds, minimum=1, maximum=MAX_LIMIT)
    started = time.monotonic()
    total = OutboundRun(0, 0, 0, DeliveryRun())
    while total.rounds < max_rounds:
        made = dispatch_events(db)
        run = deliver_due(db, limit=limit, workers=workers, timeout=timeout)
        total = OutboundRun(
            total.dispatched + made.events,
            total.deliveries_made + made.deliveries,
            total.rounds + 1,
            total.delivery + run,
        )
        if on_round is not None:
            on_round(total)
        spent = time.monotonic() - started
        if run.attempted == 0 or (budget_seconds is not None and spent >= budget_seconds):
            break
    if not emails:
        return total
    left = None if budget_seconds is None else budget_seconds - (time.monotonic() - started)
    return dataclasses.replace(total, emails=_send_emails(db, left))


EMAIL_BATCH = 200


def _send_emails(db: Database, budget_seconds: float | None) -> EmailRun:
    """The due reminder e-mails, a batch after another while batches come back full (a big
    morning of reminders goes out in one run, not 200 a minute), within the budget."""
    started = time.monotonic()
    total = EmailRun(0, 0, 0, 0)
    while True:
        run = send_due_emails(db, limit=EMAIL_BATCH)
        total = EmailRun(
            total.sent + run.sent,
            total.failed + run.failed,
            total.retrying + run.retrying,
            total.skipped + run.skipped,
        )
        handled = run.sent + run.failed + run.retrying + run.skipped
        out_of_time = budget_seconds is not None and time.monotonic() - started >= budget_seconds
        if handled < EMAIL_BATCH or out_of_time:
            return total
