"""The member page at ``/m/``: what a customer sees of their own points, opened with a member
token (``/m/?token=jfn_mt_…``, from ``POST /v1/members/{member}/tokens``).

It shows the available balance, pending, held and frozen points, any debt, the points that
expire within 90 days with their last day, the member's tier when the program has tiers (its
name, the progress to the next tier, what keeping it needs by the next evaluation and its
benefits), and the history in words (tier changes among the points), page by page, in
Simplified Chinese or English (:mod:`api.member_texts`), dates and times in the program's time
zone. The token decides the member; a bad, expired or revoked token gets a friendly 401 page,
never JSON. Every response forbids caching and inline script and style; the program's allowed
origins (``jifen keys origins``) may frame the page, no one else may.

The token stays in the URL rather than moving into a cookie: the page is often framed by the
shop's site, where browsers block third-party cookies, and a token lives minutes, is sent to
no one else (``Referrer-Policy: no-referrer``) and is kept by no cache (``no-store``).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_skeleton, get_timezone_location
from babel.numbers import format_currency, format_decimal, get_currency_precision
from flask import Blueprint, Response, g, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from api.context import context, database
from api.member_texts import BABEL_LOCALE, HTML_LANG, choose_language, kind_text, page_text
from loyalty.domain.tiers import TierRules
from loyalty.errors import LoyaltyError, NotAuthenticated
from loyalty.services.api_keys import list_origins
from loyalty.services.member_tokens import read_member_token
from loyalty.services.programs import get_program
from loyalty.services.queries import balance, history
from loyalty.services.results import Balance, HistoryItem, HistoryPage, ProgramInfo
from loyalty.services.tier_results import TierChangeInfo, TierProgress
from loyalty.services.tiers import list_tier_versions, tier_history, tier_progress
from loyalty.services.uow import Target, unit_of_work

blp = Blueprint(
    "member_page",
    __name__,
    url_prefix="/m",
    template_folder="templates",
    static_folder="static/member",
    static_url_path="/static",
)
log = logging.getLogger("jifen.member_page")

EXPIRING_WITHIN_DAYS = 90
HISTORY_PAGE_SIZE = 20
TIER_CHANGES_READ = 1000  # a member's tier changes read to place them among the history
MAX_CURSOR = 2**63 - 1  # operation ids are BIGINT
MINUS = "\u2212"  # a real minus sign: as wide as the plus, read as minus by screen readers
_CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src {images}; "
    "object-src 'none'; base-uri 'none'; form-action {forms}; frame-ancestors {ancestors}"
)
# What a program's allowed origin must look like to be written into the CSP (the services
# already normalise origins; this keeps a stray ``;`` or space from ever reaching the header).
_CSP_ORIGIN = re.compile(r"https?://(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::\d{1,5})?")


@dataclass(frozen=True)
class Line:
    """One history item as shown: what happened, its details, when, and the points."""

    title: str
    details: tuple[str, ...]
    when: str
    at: str  # the same moment, ISO 8601 (for <time datetime>)
    amount: str  # empty for a tier change
    tone: str  # ``plus``, ``minus``, ``move`` (points changed bucket, not owner) or ``tier``


@dataclass(frozen=True)
class Expiring:
    """Points that stop being usable, and the last local day they can be used."""

    points: str
    until: str


# --- language and formats -------------------------------------------------------------------


def language() -> str:
    """The request's language, ``zh`` or ``en`` (chosen once per request)."""
    chosen: str | None = getattr(g, "member_language", None)
    if chosen is None:
        chosen = choose_language(request.values.get("lang"), request.accept_languages)
        g.member_language = chosen
    return chosen


def say(message: str, **fields: object) -> str:
    """A page message in the request's language."""
    return page_text(language(), message, **fields)


class Formats:
    """Numbers, money, dates and times in one language and one program's time zone."""

    def __init__(self, lang: str, timezone: str):
        self.locale = BABEL_LOCALE[lang]
        self.zone = ZoneInfo(timezone)

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def signed(self, value: int) -> str:
        sign = "+" if value > 0 else MINUS if value < 0 else ""
        return sign + self.number(abs(value))

    def money(self, minor: int, currency: str) -> str:
        exponent = get_currency_precision(currency)
        return format_currency(Decimal(minor).scaleb(-exponent), currency, locale=self.locale)

    def day(self, value: dt.date) -> str:
        return format_date(value, "long", locale=self.locale)

    def last_day_before(self, moment: dt.datetime) -> str:
        """The last local day before ``moment`` (a deadline at local midnight)."""
        return self.day(self.local_day(moment - dt.timedelta(microseconds=1)))

    def local_day(self, value: dt.datetime) -> dt.date:
        return value.astimezone(self.zone).date()

    def moment(self, value: dt.datetime) -> str:
        local = value.astimezone(self.zone)
        date = format_date(local.date(), "medium", locale=self.locale)
        return f"{date} {format_skeleton('Hm', local, tzinfo=self.zone, locale=self.locale)}"

    def zone_name(self) -> str:
        return get_timezone_location(self.zone, locale=self.locale)


# --- history in words -----------------------------------------------------------------------

# The services describe each item in English words built from its operation's stored result
# (``loyalty.services.queries.describe``); the ids a person needs (the order, the other member
# of a transfer, the action) are read back from those words. The item's reference is the
# operation's idempotency key, which a caller may have chosen freely, so it is never shown.
_SUBJECTS = (
    re.compile(r"purchase, order (?P<order>.+)"),
    re.compile(r"points (?:held for|spent on) order (?P<order>.+)"),
    re.compile(r"hold of order (?P<order>.+) (?:released|timed out)"),
    re.compile(
        r"(?:refund|dispute) (?P<case>.+?) of order (?P<order>.+?)"
        r"(?: succeeded| failed| lost| won)?"
    ),
    re.compile(r"transfer from (?P<sender>.+)"),
    re.compile(r"transfer to (?P<recipient>.+)"),
    re.compile(r"(?P<action>[^:]+?) \((?P<reference>.*)\)"),
)
_STEP_WORDS = re.compile(
    r": (?:points frozen|frozen points taken back|frozen points given back|taken from other "
    r"points|left as debt|redeemed points given back|repaid debt|transfer fee)$"
)
_ACTION_KEY = re.compile(r"action:(?P<action>[^:]+):")


def subjects(item: HistoryItem) -> dict[str, str]:
    """The order, counterpart or action named in ``item``'s description (empty if none)."""
    headline = _STEP_WORDS.sub("", item.description)
    for pattern in _SUBJECTS:
        found = pattern.fullmatch(headline)
        if found:
            named = {k: v for k, v in found.groupdict().items() if v}
            if "action" in named:
                return _action_subject(item)
            return named
    return {}


def _action_subject(item: HistoryItem) -> dict[str, str]:
    """An action's name, from the derived key ``action:<name>:<member>:<reference>``."""
    found = _ACTION_KEY.match(item.reference)
    return {"action": found["action"].replace("_", " ")} if found else {}


def phrase_kind(item: HistoryItem, named: dict[str, str]) -> str:
    """The message id of ``item``'s phrase: its kind, or for an earn, whether a purchase or
    an action earned it."""
    if item.kind in ("earn", "earn_pending") and "order" not in named:
        return f"{item.kind}_action"
    return item.kind


_DETAILS: tuple[tuple[str, str, str], ...] = (
    ("order", "detail_order", "order"),
    ("sender", "detail_from", "who"),
    ("recipient", "detail_to", "who"),
    ("action", "detail_action", "action"),
)


def line(item: HistoryItem, formats: Formats) -> Line:
    """``item`` in words: its phrase, the ids and reason a person needs, time and points."""
    named = subjects(item)
    details = [
        say(message, **{field: named[key]}) for key, message, field in _DETAILS if key in named
    ]
    if item.reason:
        details.append(say("detail_reason", reason=item.reason))
    if item.points:
        amount, tone = formats.signed(item.points), "plus" if item.points > 0 else "minus"
    else:  # moved between buckets (a hold, a maturation, a freeze): how many, unsigned
        moved = max(abs(item.available), abs(item.pending), abs(item.held), abs(item.frozen))
        amount, tone = formats.number(moved), "move"
    return Line(
        title=kind_text(language(), phrase_kind(item, named)),
        details=tuple(details),
        when=formats.moment(item.created_at),
        at=item.created_at.isoformat(),
        amount=amount,
        tone=tone,
    )


# --- the member's tier ----------------------------------------------------------------------


@dataclass(frozen=True)
class Tiers:
    """What the page reads of tiers: the member's progress, their tier changes (newest first),
    the rules of every tier version (the names and ranks of the tiers a change names), and for
    an older page of history the moment of the newest page's last item (``before``)."""

    progress: TierProgress
    changes: tuple[TierChangeInfo, ...]
    versions: dict[int, TierRules]
    before: dt.datetime | None = None


@dataclass(frozen=True)
class TierPanel:
    """The member's tier as shown: its name and what it brings, the way to the next tier
    (``next`` is ``None`` at the top; ``value`` of ``maximum`` for the progress bar, and the
    same in words in ``measured``), what keeping it needs, and a lock."""

    name: str
    multiplier: str | None
    next: str | None
    value: int
    maximum: int
    measured: str
    keep: str | None
    lock: str | None
    benefits: tuple[str, ...]


def read_tiers(uow: Target, program: str, member: str, cursor: int | None) -> Tiers | None:
    """The member's tiers (``None`` when the program has no tiers)."""
    progress = tier_progress(uow, program=program, member=member)
    if not progress.tiers_enabled:
        return None
    changes = tier_history(uow, program=program, member=member, limit=TIER_CHANGES_READ)
    versions = list_tier_versions(uow, program=program)
    return Tiers(
        progress=progress,
        changes=tuple(changes),
        versions={v.version: TierRules.from_dict(v.rules) for v in versions},
        before=_page_top(uow, program, member, cursor) if cursor and changes else None,
    )


def _page_top(uow: Target, program: str, member: str, cursor: int) -> dt.datetime | None:
    """When the operation ``cursor`` (the last one of the newer page) happened."""
    if cursor >= MAX_CURSOR:
        return None
    found = history(uow, program=program, member=member, limit=1, cursor=cursor + 1).items
    return found[0].created_at if found and found[0].id == cursor else None


class TierWords:
    """Tier amounts and tier names in the page's words."""

    def __init__(self, formats: Formats, currency: str, tiers: Tiers):
        self.formats, self.currency, self.tiers = formats, currency, tiers

    def amount(self, kind: str, value: int) -> str:
        """A measure: points, or money in minor units."""
        if kind == "money":
            return self.formats.money(value, self.currency)
        return self.formats.number(value)

    def rules(self, version: int | None) -> TierRules | None:
        return self.tiers.versions.get(version) if version is not None else None

    def name(self, code: str | None, version: int | None) -> str:
        """Tier ``code``'s name in ``version`` (the code if the version does not know it)."""
        rules = self.rules(version)
        if rules is None or code is None or not rules.knows(code):
            return code or ""
        return rules.tier(code).name

    def rank(self, code: str | None, version: int) -> int:
        rules = self.rules(version)
        return rules.rank(code) if rules is not None and rules.knows(code) else 0


def tier_panel(words: TierWords) -> TierPanel | None:
    """The tier card: name, multiplier, progress to the next tier, keeping it, benefits."""
    p = words.tiers.progress
    if p.tier_name is None:
        return None
    kind = p.measure_kind
    next_text, value, maximum, measured = None, 0, 1, ""
    if p.next_tier_name is not None and p.next_threshold and p.to_next_tier is not None:
        next_text = say(
            f"tier_to_next_{kind}", amount=words.amount(kind, p.to_next_tier), tier=p.next_tier_name
        )
        maximum = p.next_threshold
        value = min(max(p.measure, 0), maximum)
        measured = say(
            f"tier_measured_{kind}",
            measure=words.amount(kind, p.measure),
            threshold=words.amount(kind, p.next_threshold),
        )
    return TierPanel(
        name=p.tier_name,
        multiplier=say("tier_multiplier", times=p.multiplier) if p.multiplier != "1" else None,
        next=next_text,
        value=value,
        maximum=maximum,
        measured=measured,
        keep=_keep_text(words, p),
        lock=_lock_text(words, p),
        benefits=tuple(p.benefits),
    )


def _keep_text(words: TierWords, p: TierProgress) -> str | None:
    """What keeping the tier needs by the last local day before the evaluation (nothing at
    the lowest tier, or while a lock holds the tier past the evaluation)."""
    if p.to_keep_tier is None or p.evaluate_at is None:
        return None
    if p.lock == p.tier and p.locked_until_at is not None and p.locked_until_at >= p.evaluate_at:
        return None
    date = words.formats.last_day_before(p.evaluate_at)
    if p.to_keep_tier <= 0:
        return say("tier_kept", tier=p.tier_name, date=date)
    amount = words.amount(p.measure_kind, p.to_keep_tier)
    return say(f"tier_keep_{p.measure_kind}", amount=amount, tier=p.tier_name, date=date)


def _lock_text(words: TierWords, p: TierProgress) -> str | None:
    if p.lock is None or p.locked_until_at is None:
        return None
    date = words.formats.last_day_before(p.locked_until_at)
    return say("tier_lock", tier=words.name(p.lock, p.tier_version), date=date)


def tier_line(change: TierChangeInfo, words: TierWords) -> Line:
    """A tier change in words: up, down, kept or guaranteed, and why."""
    version = change.tier_version
    up = words.rank(change.to_tier, version) - words.rank(change.from_tier, version)
    tier = words.name(change.to_tier, version)
    if up:
        title = say("tier_up" if up > 0 else "tier_down", tier=tier)
    else:
        title = say(_SAME_TIER.get(change.reason, "tier_set"), tier=tier)
    return Line(
        title=title,
        details=(_tier_why(change, words, up > 0),),
        when=words.formats.moment(change.created_at),
        at=change.created_at.isoformat(),
        amount="",
        tone="tier",
    )


_SAME_TIER = {"evaluation": "tier_kept_title", "lock": "tier_guaranteed"}
_WHY = {
    "refund": "tier_why_refund",
    "dispute": "tier_why_dispute",
    "adjustment": "tier_why_adjustment",
    "transfer": "tier_why_transfer",
    "manual": "tier_why_manual",
}


def _tier_why(change: TierChangeInfo, words: TierWords, up: bool) -> str:
    """Why the tier changed, in words."""
    rules = words.rules(change.tier_version)
    kind = rules.measure if rules is not None else "points"
    measure = words.amount(kind, change.measure)
    if change.reason == "evaluation":
        return say(f"tier_why_review_{kind}", measure=measure)
    if change.reason == "lock" and change.locked_until_at is not None:
        return say("tier_why_lock", date=words.formats.last_day_before(change.locked_until_at))
    if up and change.reason in ("earn", "adjustment", "transfer"):
        return say(f"tier_why_reached_{kind}", measure=measure)
    return say(_WHY.get(change.reason, "tier_why_manual"))


def history_lines(view: MemberView, formats: Formats, words: TierWords | None) -> list[Line]:
    """The page's history items in words, with the tier changes of the same stretch of time
    among them (a change goes before the items of the moment it happened)."""
    if words is None:
        return [line(item, formats) for item in view.history.items]
    pending = list(_changes_on_page(view))
    lines: list[Line] = []
    for item in view.history.items:
        while pending and pending[0].created_at >= item.created_at:
            lines.append(tier_line(pending.pop(0), words))
        lines.append(line(item, formats))
    lines.extend(tier_line(change, words) for change in pending)
    return lines


def _changes_on_page(view: MemberView) -> tuple[TierChangeInfo, ...]:
    """The tier changes between this page's last item (none if it is the oldest page) and the
    newer page's last item (none if this is the newest), so each shows on one page."""
    tiers = view.tiers
    if tiers is None:
        return ()
    page = view.history
    since = page.items[-1].created_at if page.next_cursor and page.items else None
    return tuple(
        c
        for c in tiers.changes
        if (since is None or c.created_at >= since)
        and (tiers.before is None or c.created_at < tiers.before)
    )


# --- the page -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberView:
    """What the page reads, in one unit of work."""

    program: ProgramInfo
    member: str
    balance: Balance
    history: HistoryPage
    origins: tuple[str, ...]
    tiers: Tiers | None = None


def read_member(token: str, cursor: int | None) -> MemberView:
    """The token's member, balance and history page, or :class:`NotAuthenticated`."""
    with unit_of_work(database()) as uow:
        claims = read_member_token(uow, token, secret=context().secret)
        program, member = claims.program, claims.member
        return MemberView(
            program=get_program(uow, program),
            member=member,
            balance=balance(
                uow, program=program, member=member, expiring_within_days=EXPIRING_WITHIN_DAYS
            ),
            history=history(
                uow, program=program, member=member, limit=HISTORY_PAGE_SIZE, cursor=cursor
            ),
            origins=tuple(list_origins(uow, program=program)),
            tiers=read_tiers(uow, program, member, cursor),
        )


def link_here(endpoint: str = "member_page.page", **changes: Any) -> str:
    """A link to one of the member's views (the points by default) with the request's token
    and language (from the query, or a posted form's fields) and ``changes`` (an argument
    given as ``None`` is left out)."""
    args = {"token": request.values.get("token"), "lang": request.values.get("lang")} | changes
    return url_for(endpoint, **{k: v for k, v in args.items() if v is not None})


def tabs(current: str) -> list[tuple[str, str, bool]]:
    """The member's three views as links: label, address, and whether it is this one."""
    views = (
        ("tab_points", "member_page.page"),
        ("tab_rewards", "member_page.rewards"),
        ("tab_mine", "member_page.my_rewards"),
    )
    return [(say(label), link_here(endpoint), endpoint == current) for label, endpoint in views]


def _cursor() -> int | None:
    """The history page asked for: an operation id (anything else reads the newest page)."""
    cursor = request.args.get("cursor", type=int)
    return cursor if cursor is not None and 0 < cursor <= MAX_CURSOR else None


@blp.get("/")
def page() -> ResponseReturnValue:
    """The member's points."""
    cursor = _cursor()
    view = read_member(request.args.get("token", ""), cursor)
    g.member_frame_origins = view.origins
    lang = language()
    formats = Formats(lang, view.program.timezone)
    points = view.balance
    words = TierWords(formats, view.program.currency, view.tiers) if view.tiers else None
    return render_template(
        "member/page.html",
        lang=lang,
        html_lang=HTML_LANG[lang],
        say=say,
        program=view.program,
        member=view.member,
        available=formats.number(points.available),
        worth=_worth(points.available, view.program, formats),
        secondary=_secondary(points, formats),
        debt=formats.number(points.debt) if points.debt > 0 else None,
        expiring=[
            Expiring(
                formats.number(e.points), formats.day(e.last_day or formats.local_day(e.expires_at))
            )
            for e in points.expiring
        ],
        expiring_days=formats.number(EXPIRING_WITHIN_DAYS),
        tier=tier_panel(words) if words is not None else None,
        lines=history_lines(view, formats, words),
        older=link_here(cursor=view.history.next_cursor) if view.history.next_cursor else None,
        latest=link_here() if cursor is not None else None,
        other_language=link_here(lang="en" if lang == "zh" else "zh", cursor=cursor),
        zone=formats.zone_name(),
        tabs=tabs("member_page.page"),
    )


def _worth(available: int, program: ProgramInfo, formats: Formats) -> str | None:
    """What the available points are worth as a discount, at the program's rate."""
    if available <= 0 or program.points_per_unit <= 0:
        return None
    exponent = get_currency_precision(program.currency)
    minor = available * 10**exponent // program.points_per_unit
    return formats.money(minor, program.currency) if minor > 0 else None


def _secondary(points: Balance, formats: Formats) -> list[tuple[str, str, str, str]]:
    """Pending, held and frozen points (held only while there are some): name, label, figure
    and hint."""
    shown = [("pending", points.pending), ("frozen", points.frozen)]
    if points.held:
        shown.insert(1, ("held", points.held))
    return [(name, say(name), formats.number(value), say(f"{name}_hint")) for name, value in shown]


# --- errors and headers ---------------------------------------------------------------------


def _error_page(status: int, title: str, body: str) -> ResponseReturnValue:
    lang = language()
    html = render_template(
        "member/error.html",
        lang=lang,
        html_lang=HTML_LANG[lang],
        say=say,
        title=say(title),
        body=say(body),
        other_language=link_here(lang="en" if lang == "zh" else "zh"),
    )
    return html, status


@blp.errorhandler(NotAuthenticated)
def not_authenticated(error: NotAuthenticated) -> ResponseReturnValue:
    """A bad, expired or revoked token (or none): the visitor needs a new link."""
    del error
    return _error_page(401, "expired_title", "expired_body")


@blp.errorhandler(LoyaltyError)
def loyalty_error(error: LoyaltyError) -> ResponseReturnValue:
    """Anything else the services refuse (the member was removed…): a page, not JSON."""
    if error.http_status >= 500:
        log.error("member page request %s: %s", getattr(g, "request_id", "-"), error)
    return _error_page(error.http_status, "error_title", "error_body")


@blp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> ResponseReturnValue:
    """A method or path the page does not have."""
    return _error_page(error.code or 500, "error_title", "error_body")


@blp.errorhandler(Exception)
def crash(error: Exception) -> ResponseReturnValue:
    """An unexpected failure: logged with the request id, no traceback shown."""
    log.error("member page request %s failed", getattr(g, "request_id", "-"), exc_info=error)
    return _error_page(500, "error_title", "error_body")


def frame_ancestors(origins: tuple[str, ...]) -> str:
    """The CSP ``frame-ancestors`` source list: the program's origins, else ``'none'``."""
    allowed = [o for o in origins if _CSP_ORIGIN.fullmatch(o)]
    return " ".join(allowed) if allowed else "'none'"


@blp.after_request
def security_headers(response: Response) -> Response:
    """No caching, no referrer, no sniffing, no inline code; framed only by the program's
    allowed origins. Only the rewards views may show images from other https sites (a
    reward's picture is stored by URL, usually on the shop's CDN) and post forms (to this
    server only)."""
    origins: tuple[str, ...] = getattr(g, "member_frame_origins", ())
    response.headers["Content-Security-Policy"] = _CSP.format(
        images="'self' https:" if g.get("member_shows_images") else "'self'",
        forms="'self'" if g.get("member_posts_forms") else "'none'",
        ancestors=frame_ancestors(origins),
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if not origins:
        response.headers["X-Frame-Options"] = "DENY"
    response.vary.add("Accept-Language")
    return response


# The rewards views join the blueprint (they use the helpers above).
from api import member_rewards  # noqa: E402, F401
