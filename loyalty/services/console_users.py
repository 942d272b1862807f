"""Console accounts: people who sign in, their role and their hashed password.

Roles, from least to most: ``viewer`` (reads everything), ``marketing`` (earning rules),
``operations`` (members, adjustments and their approval, webhook events, jobs, exports) and
``admin`` (everything). Passwords are stored only as salted scrypt hashes (werkzeug). Every
change to an account, and every failed sign-in, is in the audit log.

Each account has a ``session_version`` that every session cookie carries: signing out
(:func:`end_sessions`) and a new password (:func:`set_password`) increment it, so every
session signed in before, on any browser, ends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, insert, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from loyalty.db.database import Database
from loyalty.db.tables import admin_users
from loyalty.domain.checks import require_text
from loyalty.errors import AlreadyExists, InvalidInput, NotFound
from loyalty.services.audit import record_audit

ROLES = ("viewer", "marketing", "operations", "admin")
CONSOLE_LOCALES = ("zh_Hans", "en")  # the languages the console speaks
MIN_PASSWORD = 8
# Compared against when the username is unknown, so a miss takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a real password")


@dataclass(frozen=True)
class ConsoleUser:
    """A console account (never its password hash)."""

    id: int
    username: str
    role: str
    active: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None
    session_version: int = 0
    locale: str | None = None  # the console's language for them (None: their browser's)


def _user(row: Row[Any]) -> ConsoleUser:
    return ConsoleUser(
        id=int(row.id),
        username=row.username,
        role=row.role,
        active=bool(row.active),
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        session_version=int(row.session_version),
        locale=row.locale,
    )


def _role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, got {role!r}", field="role")
    return role


def _password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"the password must have at least {MIN_PASSWORD} characters", field="password"
        )
    return password


def create_user(
    db: Database, *, username: str, role: str, password: str, actor: str = "cli"
) -> ConsoleUser:
    """Create an account; :class:`AlreadyExists` if the username is taken."""
    username = require_text("username", username, max_length=120).strip()
    _role(role)
    hashed = generate_password_hash(_password(password))
    now = db.clock.now()
    with db.write() as conn:
        if conn.execute(select(admin_users.c.id).where(admin_users.c.username == username)).first():
            raise AlreadyExists(f"a user called {username!r} already exists", username=username)
        conn.execute(
            insert(admin_users).values(
                username=username, role=role, password_hash=hashed, active=True, created_at=now
            )
        )
        record_audit(
            conn,
            actor=actor,
            action="user.create",
            target=f"user {username}",
            at=now,
            after={"username": username, "role": role, "active": True},
        )
        return _user(_row(conn, username))


def _row(conn: Any, username: str) -> Row[Any]:
    row = conn.execute(select(admin_users).where(admin_users.c.username == username)).first()
    if row is None:
        raise NotFound(
            f"no console user called {username!r}; list them with `jifen users list`",
            username=username,
        )
    return cast(Row[Any], row)


def list_users(db: Database) -> list[ConsoleUser]:
    """Every account, by username."""
    with db.read() as conn:
        rows = conn.execute(select(admin_users).order_by(admin_users.c.username)).all()
    return [_user(r) for r in rows]


def get_user(db: Database, user_id: int) -> ConsoleUser | None:
    """The account with this id, or None."""
    with db.read() as conn:
        row = conn.execute(select(admin_users).where(admin_users.c.id == user_id)).first()
    return None if row is None else _user(row)


def _change(db: Database, username: str, actor: str, action: str, **values: Any) -> ConsoleUser:
    now = db.clock.now()
    with db.write() as conn:
        row = _row(conn, username)
        before = {k: getattr(row, k) for k in values}
        conn.execute(update(admin_users).where(admin_users.c.id == row.id).values(**values))
        record_audit(
            conn,
            actor=actor,
            action=action,
            target=f"user {username}",
            at=now,
            before=before,
            after=values,
        )
        return _user(_row(conn, username))


def set_role(db: Database, *, username: str, role: str, actor: str = "cli") -> ConsoleUser:
    """Give an account another role."""
    return _change(db, username, actor, "user.set_role", role=_role(role))


def set_active(db: Database, *, username: str, active: bool, actor: str = "cli") -> ConsoleUser:
    """Disable (or enable again) an account; a disabled account cannot sign in."""
    return _change(
        db, username, actor, "user.disable" if not active else "user.enable", active=active
    )


def set_language(
    db: Database, *, username: str, locale: str | None, actor: str = "cli"
) -> ConsoleUser:
    """Keep the console's language for an account: ``zh_Hans``, ``en``, or ``None`` for
    whatever their browser asks for."""
    if locale not in (*CONSOLE_LOCALES, None):
        raise InvalidInput(
            f"the console speaks {' or '.join(CONSOLE_LOCALES)}, not {locale!r:.20}",
            field="locale",
        )
    return _change(db, username, actor, "user.set_language", locale=locale)


def set_password(db: Database, *, username: str, password: str, actor: str = "cli") -> ConsoleUser:
    """Replace an account's password (the audit entry does not hold it)."""
    hashed = generate_password_hash(_password(password))
    now = db.clock.now()
    with db.write() as conn:
        row = _row(conn, username)
        conn.execute(
            update(admin_users)
            .where(admin_users.c.id == row.id)
            .values(password_hash=hashed, session_version=admin_users.c.session_version + 1)
        )
        record_audit(
            conn,
            actor=actor,
            action="user.set_password",
            target=f"user {username}",
            at=now,
            after={"sessions": "ended"},
        )
        return _user(_row(conn, username))


def end_sessions(db: Database, user_id: int) -> None:
    """End every session of this account (signing out does this): cookies signed in under the
    current ``session_version`` no longer load the account."""
    with db.write() as conn:
        conn.execute(
            update(admin_users)
            .where(admin_users.c.id == user_id)
            .values(session_version=admin_users.c.session_version + 1)
        )


def shown_username(username: Any) -> str:
    """``username`` as it can be stored in an audit entry: cleaned, or escaped if it cannot."""
    if not isinstance(username, str) or not username.strip():
        return "(empty)"
    try:
        return require_text("username", username, max_length=120)
    except InvalidInput:
        return ascii(username)[:120]


def _failed(db: Database, username: str, address: str | None, reason: str) -> None:
    name = shown_username(username)
    with db.write() as conn:
        record_audit(
            conn,
            actor=f"address {address or 'unknown'}"[:120],
            action="login.failed",
            target=f"user {name}"[:255],
            at=db.clock.now(),
            after={"username": name, "address": address, "reason": reason},
        )


def authenticate(
    db: Database, username: str, password: str, *, address: str | None = None
) -> ConsoleUser | None:
    """The active account with this username and password, or None; records the login, and a
    failure (with the client's ``address`` and why) in the audit log."""
    wanted = (username or "").strip() if isinstance(username, str) else ""
    row = None
    if wanted and len(wanted) <= 120 and "\x00" not in wanted:
        with db.read() as conn:
            row = conn.execute(select(admin_users).where(admin_users.c.username == wanted)).first()
    if row is None:
        check_password_hash(_DUMMY_HASH, password or "")
        _failed(db, username, address, "unknown username")
        return None
    if not check_password_hash(row.password_hash, password or ""):
        _failed(db, username, address, "wrong password")
        return None
    if not row.active:
        _failed(db, username, address, "account disabled")
        return None
    with db.write() as conn:
        conn.execute(
            update(admin_users)
            .where(admin_users.c.id == row.id)
            .values(last_login_at=db.clock.now())
        )
    return _user(row)
