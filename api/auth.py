"""Who is calling: server keys (``jfn_sk_…``) and member tokens (``jfn_mt_…``), per request.

Both are sent as ``Authorization: Bearer …``. A server key acts for its program with its
scopes; a request may name the program it expects in ``Jifen-Program`` (the SDK does), and a
key of another program is refused with 403. A member token may only read its own member's
balance, history, expiring points, tier and tier history, rewards and redemptions, and redeem
rewards for that member (the customer spends their own points). The credential is read
before the request's body, so a refused one is a 401 whatever the body; the scope is checked
by the view. The services decide everything else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from flask import Flask, g, request

from api.context import begin_request_unit, context, request_target
from loyalty.errors import NotAuthenticated, PermissionDenied
from loyalty.services.api_keys import ApiKeyInfo, authenticate, require_scope
from loyalty.services.member_tokens import TOKEN_PREFIX, MemberClaims, read_member_token

PROGRAM_HEADER = "Jifen-Program"


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


def init_credentials(app: Flask, blueprints: Iterable[str]) -> None:
    """Read the credential of a request to ``blueprints`` before its body or query is parsed,
    so a missing, unknown, revoked or expired one is a 401 whatever else is wrong with the
    request (the view checks the scope)."""
    guarded = frozenset(blueprints)

    @app.before_request
    def check_credential() -> None:
        if request.method != "OPTIONS" and request.blueprint in guarded:
            if request.method == "POST":
                begin_request_unit()
            _credential()


def _credential() -> ApiKeyInfo | MemberClaims:
    """The request's verified server key or member token claims, read once per request."""
    found: ApiKeyInfo | MemberClaims | None = g.get("credential")
    if found is None:
        secret = bearer()
        if secret.startswith(TOKEN_PREFIX):
            found = read_member_token(request_target(), secret, secret=context().secret)
        else:
            found = authenticate(request_target(), secret)
        g.credential = found
    return found


def server_key(scope: str) -> ApiKeyInfo:
    """The request's server key, if it has ``scope`` and is for the program asked for."""
    key = _credential()
    if isinstance(key, MemberClaims):
        raise PermissionDenied(
            "a member token may only read its member's balance, history, expiring points, "
            "tier and tier history and rewards, and redeem rewards for its member; this "
            "needs a server key"
        )
    g.api_key = key
    g.program = key.program
    _require_program(key.program)
    require_scope(key, scope)
    return key


def member_reader(member: str) -> str:
    """The program whose ``member`` the caller may read: a ``read`` key's, or the program of a
    member token issued for exactly this member."""
    return _member_or_key(member, "read")


def member_redeemer(member: str) -> str:
    """The program whose ``member`` the caller may redeem rewards for: a ``redeem`` key's, or
    the program of a member token issued for exactly this member."""
    return _member_or_key(member, "redeem")


def _member_or_key(member: str, scope: str) -> str:
    claims = _credential()
    if not isinstance(claims, MemberClaims):
        return server_key(scope).program
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
