"""Who is calling: server keys (``jfn_sk_…``) and member tokens (``jfn_mt_…``), per request.

Both are sent as ``Authorization: Bearer …``. A server key acts for its program with its
scopes; a request may name the program it expects in ``Jifen-Program`` (the SDK does), and a
key of another program is refused with 403. A member token may only read its own member's
balance, history and expiring points. The services decide everything else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from flask import current_app, g, request

from loyalty.db.database import Database
from loyalty.errors import NotAuthenticated, PermissionDenied
from loyalty.services.api_keys import ApiKeyInfo, authenticate, require_scope
from loyalty.services.member_tokens import TOKEN_PREFIX, MemberClaims, read_member_token

EXTENSION = "jifen.api"
PROGRAM_HEADER = "Jifen-Program"


@dataclass(frozen=True)
class ApiContext:
    """What every API request needs: the database, the token secret, policy settings."""

    db: Database
    secret: str
    approval_threshold: int
    redis_url: str | None
    currencies: dict[str, str] = field(default_factory=dict)  # a program's never changes


def context() -> ApiContext:
    """The running app's :class:`ApiContext`."""
    found: ApiContext = current_app.extensions[EXTENSION]
    return found


def database() -> Database:
    """The API's database."""
    return context().db


def bearer() -> str:
    """The request's bearer credential, or :class:`NotAuthenticated`."""
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise NotAuthenticated(
            "send `Authorization: Bearer <key>` with a server key (jfn_sk_…) or a member "
            "token (jfn_mt_…)"
        )
    return credential.strip()


def limit_key() -> str:
    """What rate limits count by: the credential's hash, else the client's address."""
    header = request.headers.get("Authorization", "")
    if header:
        return "cred:" + hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()[:24]
    return "ip:" + (request.remote_addr or "unknown")


def refused_key() -> str:
    """What refused credentials count by: the client's address, so that sending made-up keys
    (each a bucket of its own under :func:`limit_key`) does not escape the limit."""
    return "refused:" + (request.remote_addr or "unknown")


def server_key(scope: str) -> ApiKeyInfo:
    """The request's server key, if it has ``scope`` and is for the program asked for."""
    credential = bearer()
    if credential.startswith(TOKEN_PREFIX):
        raise PermissionDenied(
            "a member token may only read its member's balance, history and expiring points; "
            "this needs a server key"
        )
    key = authenticate(database(), credential)
    g.api_key = key
    g.program = key.program
    _require_program(key.program)
    require_scope(key, scope)
    return key


def member_reader(member: str) -> str:
    """The program whose ``member`` the caller may read: a ``read`` key's, or the program of a
    member token issued for exactly this member."""
    credential = bearer()
    if not credential.startswith(TOKEN_PREFIX):
        return server_key("read").program
    claims: MemberClaims = read_member_token(database(), credential, secret=context().secret)
    g.program = claims.program
    _require_program(claims.program)
    claims.require_member(claims.program, member)
    return claims.program


def _require_program(program: str) -> None:
    expected = request.headers.get(PROGRAM_HEADER)
    if expected is not None and expected != program:
        raise PermissionDenied(
            f"this credential belongs to program {program!r}, not {expected!r}",
            program=expected,
        )
