"""Server keys of the HTTP API and the browser origins a program allows.

A server key belongs to one program and carries scopes (:data:`SCOPES`; ``admin`` implies
every other). It is made of 256 random bits, shown once as ``jfn_sk_…`` when created, and
stored only as its SHA-256 with its first characters (to recognise it in a list). A key
works until it is revoked or its expiry passes; any number may be valid at once, so a shop
rotates by creating the new key, deploying it and revoking the old one. Creating and revoking
keys and origins is audited.

:func:`authenticate` is what the API calls on every request: one indexed read, plus a write
of ``last_used_at`` at most once a minute per key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import Row, delete, insert, or_, select, update

from loyalty.db.tables import api_keys, api_origins, programs
from loyalty.domain.checks import require_program_code, require_text
from loyalty.errors import InvalidInput, NotAuthenticated, NotFound, PermissionDenied
from loyalty.services.audit import record_audit
from loyalty.services.uow import Target, writing
from loyalty.services.writes import program_row

SCOPES = (
    "read",
    "earn",
    "redeem",
    "refund",
    "transfer",
    "adjust",
    "events",  # read the outbound events feed
    "webhooks",  # manage webhook endpoints (their secrets too)
    "risk",  # risk rules and cases, account freezes and holds (风控)
    "admin",
)
KEY_PREFIX = "jfn_sk_"
SHOWN_CHARS = 12  # "jfn_sk_" and five characters of the secret: enough to tell keys apart
LAST_USED_EVERY = dt.timedelta(minutes=1)
MAX_KEY_CHARS = 200
W = TypeVar("W")


@dataclass(frozen=True)
class ApiKeyInfo:
    """A server key as the API and the console see it (never the key itself)."""

    id: int
    program: str
    label: str
    prefix: str
    scopes: tuple[str, ...]
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def allows(self, scope: str) -> bool:
        """Whether the key may do what ``scope`` covers (``admin`` covers everything)."""
        return scope in self.scopes or "admin" in self.scopes

    def status(self, now: dt.datetime) -> str:
        """``active``, ``revoked`` or ``expired`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``secret`` is the only time the key itself is available."""

    key: ApiKeyInfo
    secret: str


def require_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, checked, without repeats, in :data:`SCOPES` order."""
    given = {str(s).strip().lower() for s in scopes}
    unknown = sorted(given - set(SCOPES))
    if unknown or not given:
        raise InvalidInput(
            f"scopes must be one or more of {', '.join(SCOPES)}; "
            f"got {', '.join(unknown) or 'none'}",
            field="scopes",
        )
    return tuple(s for s in SCOPES if s in given)


def require_scope(key: ApiKeyInfo, scope: str) -> None:
    """Refuse with :class:`PermissionDenied` unless ``key`` has ``scope``."""
    if not key.allows(scope):
        raise PermissionDenied(
            f"this API key ({key.prefix}…, {key.label!r}) lacks the {scope!r} scope; "
            f"create a key with --scope {scope}",
            scope=scope,
            key=key.prefix,
        )


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _info(row: Row[Any], program: str) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=int(row.id),
        program=program,
        label=row.label,
        prefix=row.prefix,
        scopes=tuple(row.scopes.split()),
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def create_key(
    db: Target,
    *,
    program: str,
    scopes: Iterable[str],
    label: str,
    expires_at: dt.datetime | None = None,
    actor: str = "cli",
) -> CreatedKey:
    """A new server key for ``program``; the result's ``secret`` is shown once."""
    program = require_program_code(program)
    chosen = require_scopes(scopes)
    label = require_text("label", label, max_length=120)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)

    def work(conn: Any, now: dt.datetime) -> CreatedKey:
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("expires_at must be in the future", field="expires_at")
        prow = program_row(conn, program)
        values = {
            "program_id": prow.id,
            "label": label,
            "prefix": secret[:SHOWN_CHARS],
            "key_hash": hash_key(secret),
            "scopes": " ".join(chosen),
            "created_by": actor,
            "created_at": now,
            "expires_at": expires_at,
        }
        key_id = conn.execute(insert(api_keys).values(**values).returning(api_keys.c.id)).scalar()
        record_audit(
            conn,
            program_id=prow.id,
            actor=actor,
            action="api_key.create",
            target=f"api key {values['prefix']}",
            at=now,
            after={"label": label, "scopes": list(chosen), "expires_at": _iso(expires_at)},
        )
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one()
        return CreatedKey(key=_info(row, program), secret=secret)

    return _write(db, work)


def list_keys(db: Target, *, program: str) -> list[ApiKeyInfo]:
    """The program's keys, newest first (revoked and expired ones included)."""
    program = require_program_code(program)

    with db.read() as conn:
        prow = program_row(conn, program)
        rows = conn.execute(
            select(api_keys)
            .where(api_keys.c.program_id == prow.id)
            .order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc())
        ).all()
    return [_info(r, program) for r in rows]


def revoke_key(db: Target, *, program: str, key: str | int, actor: str = "cli") -> ApiKeyInfo:
    """Revoke a key, named by its id or its shown prefix; revoking it again changes nothing."""
    program = require_program_code(program)

    def work(conn: Any, now: dt.datetime) -> ApiKeyInfo:
        prow = program_row(conn, program)
        row = _find_key(conn, prow.id, program, key)
        if row.revoked_at is not None:
            return _info(row, program)
        conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(revoked_at=now))
        record_audit(
            conn,
            program_id=prow.id,
            actor=actor,
            action="api_key.revoke",
            target=f"api key {row.prefix}",
            at=now,
            before={"label": row.label, "revoked_at": None},
            after={"revoked_at": now.isoformat()},
        )
        return _info(conn.execute(select(api_keys).where(api_keys.c.id == row.id)).one(), program)

    return _write(db, work)


def _find_key(conn: Any, program_id: int, program: str, key: str | int) -> Row[Any]:
    query = select(api_keys).where(api_keys.c.program_id == program_id)
    text = str(key).strip()
    if text.isdigit():
        query = query.where(api_keys.c.id == int(text))
    else:
        query = query.where(api_keys.c.prefix == text.rstrip("…."))
    rows = conn.execute(query).all()
    if len(rows) != 1:
        raise NotFound(
            f"no single API key {text!r} in program {program!r}; "
            f"list them with `jifen keys list --program {program}`",
            key=text,
        )
    return rows[0]  # type: ignore[no-any-return]


def authenticate(db: Target, secret: str) -> ApiKeyInfo:
    """The active key whose secret this is, or :class:`NotAuthenticated` saying why not."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > MAX_KEY_CHARS:
        raise NotAuthenticated(
            "not a Jifen server key: send `Authorization: Bearer jfn_sk_…` "
            "(create one with `jifen keys create`)"
        )

    now = db.clock.now()
    with db.read() as conn:
        row = conn.execute(
            select(api_keys, programs.c.code)
            .join(programs, programs.c.id == api_keys.c.program_id)
            .where(api_keys.c.key_hash == hash_key(secret))
        ).first()
    if row is None:
        raise NotAuthenticated("unknown API key: check it was copied whole, or create a new one")
    key = _info(row, row.code)
    status = key.status(now)
    if status != "active":
        raise NotAuthenticated(
            f"this API key ({key.prefix}…) is {status}; use another key of the program",
            key=key.prefix,
            status=status,
        )
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
        _touch(db, key.id, now)
    return key


def _touch(db: Target, key_id: int, now: dt.datetime) -> None:
    """Record the key's use, skipping the write when another request did it this minute."""

    def work(conn: Any, _now: dt.datetime) -> None:
        conn.execute(
            update(api_keys)
            .where(
                api_keys.c.id == key_id,
                or_(
                    api_keys.c.last_used_at.is_(None),
                    api_keys.c.last_used_at <= now - LAST_USED_EVERY,
                ),
            )
            .values(last_used_at=now)
        )

    _write(db, work)


# --- browser origins (CORS and embedding) -------------------------------------------------


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, or :class:`InvalidInput`."""
    text = require_text("origin", origin, max_length=255).lower().rstrip("/")
    parts = urlsplit(text)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise InvalidInput(
            f"an origin is scheme://host[:port] such as https://shop.example, got {origin!r}",
            field="origin",
        )
    return text


def add_origin(db: Target, *, program: str, origin: str, actor: str = "cli") -> list[str]:
    """Allow ``origin``; the program's origins after the change."""
    program = require_program_code(program)
    origin = normalise_origin(origin)

    def work(conn: Any, now: dt.datetime) -> list[str]:
        prow = program_row(conn, program)
        if origin not in _origins(conn, prow.id):
            conn.execute(
                insert(api_origins).values(program_id=prow.id, origin=origin, created_at=now)
            )
            record_audit(
                conn,
                program_id=prow.id,
                actor=actor,
                action="api_origin.add",
                target=f"origin {origin}",
                at=now,
                after={"origin": origin},
            )
        return _origins(conn, prow.id)

    return _write(db, work)


def remove_origin(db: Target, *, program: str, origin: str, actor: str = "cli") -> list[str]:
    """Stop allowing ``origin``; the program's origins after the change."""
    program = require_program_code(program)
    origin = normalise_origin(origin)

    def work(conn: Any, now: dt.datetime) -> list[str]:
        prow = program_row(conn, program)
        gone = conn.execute(
            delete(api_origins).where(
                api_origins.c.program_id == prow.id, api_origins.c.origin == origin
            )
        ).rowcount
        if gone:
            record_audit(
                conn,
                program_id=prow.id,
                actor=actor,
                action="api_origin.remove",
                target=f"origin {origin}",
                at=now,
                before={"origin": origin},
            )
        return _origins(conn, prow.id)

    return _write(db, work)


def list_origins(db: Target, *, program: str) -> list[str]:
    """The origins the program allows, sorted."""
    program = require_program_code(program)
    with db.read() as conn:
        return _origins(conn, program_row(conn, program).id)


def origin_allowed_anywhere(db: Target, origin: str) -> bool:
    """Whether any program allows ``origin`` (a CORS preflight carries no credential)."""
    with db.read() as conn:
        found = conn.execute(
            select(api_origins.c.id).where(api_origins.c.origin == origin.lower()).limit(1)
        ).first()
    return found is not None


def _origins(conn: Any, program_id: int) -> list[str]:
    return list(
        conn.execute(
            select(api_origins.c.origin)
            .where(api_origins.c.program_id == program_id)
            .order_by(api_origins.c.origin)
        ).scalars()
    )


# --- plumbing -----------------------------------------------------------------------------


def _write(db: Target, work: Callable[[Any, dt.datetime], W]) -> W:
    with writing(db) as uow:
        return work(uow.connection, uow.clock.now())


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()
