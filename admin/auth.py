"""Signing in and out, the current user, and who may see and change what.

Roles: ``viewer`` reads; ``marketing`` also edits earning rules; ``operations`` also looks
after members, adjustments, webhook events, jobs and exports; ``admin`` may do everything.
Views say which roles may read them (``read_roles``) and check write roles per POST with
:func:`require_role`; a signed-out visitor is sent to the login page, a signed-in one
without the role gets 403 (:class:`RoleRequired`, which carries the roles, so the console's
403 page can say who may open the page).

A session holds the account's id and its ``session_version`` (``"7:3"``); the user loader
refuses a session whose version is not the account's current one. Signing out increments it
(every session of that account ends, a copied cookie included), and so does a new password.

A refused sign-in is logged (``jifen.console``, WARNING) with the username given and the
client's address, never the password.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import (  # type: ignore[import-untyped]
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from werkzeug.exceptions import Forbidden

from admin.context import console
from admin.i18n import LOCALES, SESSION_KEY
from admin.words import role_word
from loyalty.services import console_users as accounts

EVERYONE = accounts.ROLES
log = logging.getLogger("jifen.console")
MARKETING = ("marketing", "admin")
OPERATIONS = ("operations", "admin")

blueprint = Blueprint("auth", __name__)


class RoleRequired(Forbidden):
    """403 for someone signed in without one of ``roles``, the roles that may go on."""

    def __init__(self, roles: tuple[str, ...]) -> None:
        super().__init__(f"This needs one of these roles: {', '.join(roles)}.")
        self.roles = roles


class SignedIn(UserMixin):  # type: ignore[misc]
    """The signed-in person, as flask-login sees them."""

    def __init__(self, user: accounts.ConsoleUser) -> None:
        self.user = user
        self.id = session_id(user)
        self.username = user.username
        self.role = user.role

    @property
    def is_active(self) -> bool:
        return self.user.active

    def has_role(self, *roles: str) -> bool:
        """True if this person's role is one of ``roles``."""
        return self.role in roles


def session_id(user: accounts.ConsoleUser) -> str:
    """What the session stores for ``user``: id and session version."""
    return f"{user.id}:{user.session_version}"


def _load(session_value: str) -> SignedIn | None:
    """The signed-in person for a session's stored value, or None if that session ended."""
    user_id, _, version = session_value.partition(":")
    if not (user_id.isdigit() and version.isdigit()) or len(user_id) > 18 or len(version) > 18:
        return None
    user = accounts.get_user(console().db, int(user_id))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return SignedIn(user)


def init_auth(app: Flask) -> LoginManager:
    """Sign-in for ``app``: flask-login with users loaded from ``admin_users``."""
    manager = LoginManager()
    manager.login_view = "auth.login"
    manager.login_message = "Please sign in to open the console."
    manager.login_message_category = "info"
    manager.session_protection = "strong"

    @manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(session_value: str) -> SignedIn | None:
        return _load(session_value)

    manager.init_app(app)
    app.register_blueprint(blueprint)
    return manager


def has_role(*roles: str) -> bool:
    """True if someone is signed in with one of ``roles`` (usable in templates)."""
    return bool(current_user.is_authenticated and current_user.has_role(*roles))


def require_role(*roles: str) -> None:
    """Abort with 403 unless the signed-in person has one of ``roles``."""
    if not current_user.is_authenticated:
        abort(401)
    if not current_user.has_role(*roles):
        raise RoleRequired(roles)


def actor() -> str:
    """The signed-in person's username, for audit entries."""
    return str(current_user.username)


def local_path(target: str | None) -> str | None:
    """``target`` if it is a plain path on this site, else None: no scheme or host, no
    ``//`` or backslash a browser could read as another host, no control characters."""
    if not target or len(target) > 2000 or not target.startswith("/"):
        return None
    if target.startswith("//") or "\\" in target:
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never redirect a login to another host."""
    return local_path(target) or url_for("admin.index")


def adopt_language(user: accounts.ConsoleUser) -> None:
    """On sign-in, the language kept on the account wins; an account without one keeps the
    language chosen on the sign-in page, if any."""
    if user.locale is not None:
        session[SESSION_KEY] = user.locale
    elif session.get(SESSION_KEY) in LOCALES:
        accounts.set_language(
            console().db, username=user.username, locale=session[SESSION_KEY], actor=user.username
        )


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The sign-in form."""
    if request.method == "POST":
        user = accounts.authenticate(
            console().db,
            request.form.get("username", ""),
            request.form.get("password", ""),
            address=request.remote_addr,
        )
        if user is not None:
            login_user(SignedIn(user))
            adopt_language(user)
            flash(
                _(
                    "Signed in as %(user)s (%(role)s).",
                    user=user.username,
                    role=role_word(user.role),
                ),
                "success",
            )
            return redirect(_safe_next(request.form.get("next")))
        log.warning(
            "console sign-in refused",
            extra={
                "username": request.form.get("username", "")[:120],
                "address": request.remote_addr,
            },
        )
        flash(_("Wrong username or password, or the account is disabled."), "error")
        return render_template("jifen/login.html", next=request.form.get("next", "")), 401
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    return render_template(
        "jifen/login.html",
        next=request.args.get("next", ""),
        demo_logins=current_app.config.get("JIFEN_DEMO_LOGINS"),
    )


@blueprint.post("/logout")
@login_required  # type: ignore[untyped-decorator]
def logout() -> ResponseReturnValue:
    """Sign out (a POST, so another site cannot sign you out): every session of this
    account ends, here and on any other browser."""
    accounts.end_sessions(console().db, current_user.user.id)
    logout_user()
    flash(_("Signed out."), "info")
    return redirect(url_for("auth.login"))


def inaccessible(
    name: str, roles: tuple[str, ...] = EVERYONE, **kwargs: Any
) -> ResponseReturnValue:
    """What a flask-admin view open to ``roles`` answers to someone who may not see it."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    raise RoleRequired(roles)
