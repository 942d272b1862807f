"""Member tokens: short-lived signed credentials a customer's browser or app uses.

A server key with the ``read`` scope asks for a token for one member of its program; the
token (``jfn_mt_…``) is an HMAC-SHA256-signed claim of the program, the member, the key that
issued it, what it may do (``read``: balance, history, expiring points) and when it expires
(15 minutes by default, at most a day). Nothing is stored: verifying checks the signature,
the expiry and that the issuing key is still active, so revoking a key ends its tokens too.

The signing secret is the server's ``JIFEN_SECRET_KEY``; rotating it ends every token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from loyalty.db.tables import api_keys
from loyalty.domain.checks import require_int, require_member_id
from loyalty.errors import NotAuthenticated, PermissionDenied
from loyalty.services.api_keys import ApiKeyInfo, require_scope
from loyalty.services.members import get_member
from loyalty.services.uow import Target

TOKEN_PREFIX = "jfn_mt_"
DEFAULT_TTL_SECONDS = 15 * 60
MAX_TTL_SECONDS = 24 * 3600
MIN_TTL_SECONDS = 60
TOKEN_SCOPES = ("read",)
_SALT = "jifen.member-token.v1"


@dataclass(frozen=True)
class MemberToken:
    """A token issued for one member, and when it stops working."""

    token: str
    program: str
    member: str
    scopes: tuple[str, ...]
    expires_at: dt.datetime


@dataclass(frozen=True)
class MemberClaims:
    """What a verified token allows: one member of one program, until ``expires_at``."""

    program: str
    member: str
    key_id: int
    scopes: tuple[str, ...]
    expires_at: dt.datetime

    def require_member(self, program: str, member: str) -> None:
        """Refuse with :class:`PermissionDenied` unless the token is this member's."""
        if (self.program, self.member) != (program, member):
            raise PermissionDenied(
                "this member token is for another member; ask the shop for a new link",
                member=member,
            )


def _serializer(secret: str) -> URLSafeSerializer:
    if not secret:
        raise NotAuthenticated("member tokens are not enabled: the server has no secret key")
    return URLSafeSerializer(secret, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def issue_member_token(
    db: Target,
    *,
    key: ApiKeyInfo,
    member: str,
    secret: str,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> MemberToken:
    """A token for ``member`` of the key's program; the key needs the ``read`` scope."""
    require_scope(key, "read")
    member = require_member_id(member)
    ttl = require_int("ttl_seconds", ttl_seconds, minimum=MIN_TTL_SECONDS, maximum=MAX_TTL_SECONDS)
    get_member(db, program=key.program, external_id=member)  # MemberNotFound if unknown
    expires_at = db.clock.now().replace(microsecond=0) + dt.timedelta(seconds=ttl)
    claims = {
        "p": key.program,
        "m": member,
        "k": key.id,
        "s": list(TOKEN_SCOPES),
        "exp": int(expires_at.timestamp()),
    }
    token = TOKEN_PREFIX + _serializer(secret).dumps(claims)
    return MemberToken(token, key.program, member, TOKEN_SCOPES, expires_at)


def read_member_token(db: Target, token: str, *, secret: str) -> MemberClaims:
    """The claims of a valid token, or :class:`NotAuthenticated` saying why it is not."""
    if not token.startswith(TOKEN_PREFIX):
        raise NotAuthenticated("not a Jifen member token (jfn_mt_…)")
    try:
        raw: Any = _serializer(secret).loads(token[len(TOKEN_PREFIX) :])
        claims = MemberClaims(
            program=str(raw["p"]),
            member=str(raw["m"]),
            key_id=int(raw["k"]),
            scopes=tuple(str(s) for s in raw["s"]),
            expires_at=dt.datetime.fromtimestamp(int(raw["exp"]), dt.UTC),
        )
    except (BadSignature, KeyError, TypeError, ValueError) as exc:
        raise NotAuthenticated(
            "this member token is not valid; ask the shop for a new link"
        ) from exc
    if claims.expires_at <= db.clock.now():
        raise NotAuthenticated(
            "this member token has expired; ask the shop for a new link", status="expired"
        )
    _require_issuer_active(db, claims)
    return claims


def _require_issuer_active(db: Target, claims: MemberClaims) -> None:
    now = db.clock.now()
    with db.read() as conn:
        row = conn.execute(
            select(api_keys.c.revoked_at, api_keys.c.expires_at).where(
                api_keys.c.id == claims.key_id
            )
        ).first()
    if row is None or row.revoked_at is not None:
        raise NotAuthenticated("the key that issued this member token was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise NotAuthenticated("the key that issued this member token has expired")
