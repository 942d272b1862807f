"""What the console's risk pages say, in the request's language: the words for risk control's
codes (rule actions, case states, outcomes and resolutions, member account states, a case's
figures, the operations of its evidence), a case's trail from the audit log, what a scan and
what resolving a case did, a rule's sentence, and a case's summary.

The codes stay what they are in the database and the API; a code without words shows as it
is, its underscores as spaces. The risk job stores a case's summary in English
(:mod:`loyalty.services.risk_scan`); in Chinese the summary is said again from the case's
figures and its rule (:func:`case_summaries`). The ``jifen`` command keeps its English words
(:mod:`loyalty.services.risk_review`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import LazyString, gettext
from flask_babel import lazy_gettext as _l

from admin.code_words import code_word
from admin.formatting import local_time, points
from admin.i18n import CHINESE, current_locale
from loyalty.domain.risk import RiskRule, RiskRules
from loyalty.services import risk_rules
from loyalty.services.audit import AuditRecord
from loyalty.services.risk_cases import RiskCaseInfo
from loyalty.services.risk_rules import RiskRulesInfo
from loyalty.services.uow import Target

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

ACTION_WORDS: dict[str, object] = {"flag": _l("flag"), "hold": _l("hold"), "block": _l("block")}
ACTION_TITLES: dict[str, object] = {
    "flag": _l("opens a case for review"),
    "hold": _l("opens a case and keeps the member's new points pending"),
    "block": _l("refuses the write"),
}
# The cases filter's choices: the case states and ``all``.
CASE_STATUS_WORDS: dict[str, object] = {
    "open": _l("open"),
    "resolved": _l("resolved"),
    "dismissed": _l("dismissed"),
    "all": _l("all"),
}
RESOLUTION_WORDS: dict[str, object] = {
    "released": _l("released"),
    "reversed": _l("reversed"),
    "dismissed": _l("dismissed"),
}
# How a person closes a case, as the case page's radio buttons say it.
OUTCOME_WORDS: dict[str, object] = {
    "release": _l("Release: the held points become available"),
    "reverse": _l("Reverse: release, then deduct points (an adjustment)"),
    "dismiss": _l("Dismiss: a false alarm; the held points are released"),
}
# Codes whose English is the code itself (:mod:`admin.code_words`): a member's account state
# (``suspended`` is an account frozen by risk control) and the column of a rule's action.
MEMBER_STATUS_MEANINGS: dict[str, LazyString] = {
    "active": _l("active account"),
    "suspended": _l("account frozen"),
    "closed": _l("account closed"),
}
COLUMN_MEANINGS: dict[str, LazyString] = {"action": _l("rule action")}
# The operations a case's evidence lists, by their operation kind.
OPERATION_WORDS: dict[str, object] = {
    "earn_purchase": _l("earn purchase"),
    "earn_action": _l("earn action"),
    "refund": _l("refund"),
    "dispute": _l("dispute"),
    "transfer": _l("transfer"),
}
# What an operation of the evidence names: its order, refund, location or device.
EVIDENCE_FIELDS: tuple[tuple[str, object], ...] = (
    ("order_id", _l("order")),
    ("refund", _l("refund")),
    ("location", _l("location")),
    ("device", _l("device")),
)
# The figures the risk job keeps with a case (:mod:`loyalty.services.risk_scan`), named by their
# code in English (``share percent``) and by what they are otherwise (:mod:`admin.code_words`).
FIGURE_MEANINGS: dict[str, LazyString] = {
    "measured": _l("what was measured"),
    "limit": _l("the rule's limit"),
    "since": _l("counted since"),
    "earned": _l("points earned"),
    "refunded": _l("points refunded"),
    "refunds": _l("refunds counted"),
    "share_percent": _l("refunded share (%)"),
    "senders": _l("members sending"),
    "received": _l("points received by transfer"),
    "transfers_in": _l("transfers received"),
    "passed_on": _l("points passed on (at most those received)"),
    "sent": _l("points sent after receiving"),
    "transfers_out": _l("transfers passed on"),
    "recipients": _l("members receiving"),
    "passed_on_percent": _l("passed-on share (%)"),
    "points": _l("points counted"),
    "current": _l("points issued in the window"),
    "median": _l("median of the past windows"),
    "mad": _l("median absolute deviation"),
    "score": _l("deviations above the median"),
    "windows": _l("past windows compared"),
}


def _word(words: Mapping[str, object], code: str | None) -> str:
    if not code:
        return ""
    found = words.get(code)
    return str(found) if found is not None else code.replace("_", " ")


def action_word(action: str | None) -> str:
    """A rule's action: flag, hold or block."""
    return _word(ACTION_WORDS, action)


def action_title(action: str | None) -> str:
    """What a rule's action does, for its badge's tooltip."""
    return _word(ACTION_TITLES, action) if action in ACTION_TITLES else ""


def case_status_word(status: str | None) -> str:
    """A case's state (open, resolved, dismissed) or the filter's ``all``."""
    return _word(CASE_STATUS_WORDS, status)


def resolution_word(resolution: str | None) -> str:
    """How a case was closed: released, reversed or dismissed."""
    return _word(RESOLUTION_WORDS, resolution)


def member_status_word(status: str | None) -> str:
    """A member's account state: active, suspended (frozen) or closed."""
    return code_word(MEMBER_STATUS_MEANINGS, status or "")


def column_word(name: str | None) -> str:
    """A column named by a code (``action``): the code in English, its meaning otherwise."""
    return code_word(COLUMN_MEANINGS, name or "")


def operation_word(kind: str | None) -> str:
    """An operation of a case's evidence, by its kind."""
    return _word(OPERATION_WORDS, kind)


# The words the risk pages and the member page's risk panel are rendered with.
TEMPLATE_WORDS: dict[str, Callable[[str | None], str]] = {
    "risk_action_word": action_word,
    "risk_action_title": action_title,
    "case_status_word": case_status_word,
    "resolution_word": resolution_word,
    "member_status_word": member_status_word,
    "risk_column_word": column_word,
    "operation_word": operation_word,
}


# --- sentences --------------------------------------------------------------------------------


def counted_rules(count: int) -> str:
    """``1 rule``, ``4 rules``."""
    return _("1 rule") if count == 1 else _("%(count)s rules", count=points(count))


def counted_members(count: int) -> str:
    """``1 member``, ``4 members``."""
    return _("1 member") if count == 1 else _("%(count)s members", count=points(count))


def rule_sentence(rule: RiskRule) -> str:
    """The rule in one sentence of the request's language."""
    return rule.explain_zh() if current_locale() == CHINESE else rule.explain()


def other_sentence(rule: RiskRule) -> str:
    """The rule in one sentence of the other language (the API publishes both)."""
    return rule.explain() if current_locale() == CHINESE else rule.explain_zh()


def version_sentences(version: RiskRulesInfo) -> tuple[str, ...]:
    """A published version's sentences in the request's language."""
    return version.sentences_zh if current_locale() == CHINESE else version.sentences


def scan_words(details: Mapping[str, Any], trips: int) -> str:
    """What a risk scan did, from its run's details and its trips: ``2 rules evaluated, 1 over
    a limit; cases 1 opened, 0 added to, 0 reopened; 1 member put on hold``."""
    return _(
        "%(rules)s evaluated, %(trips)s over a limit; cases %(opened)s opened, %(updated)s "
        "added to, %(reopened)s reopened; %(members)s put on hold",
        rules=counted_rules(int(details.get("rules", 0))),
        trips=points(trips),
        opened=points(details.get("opened", 0)),
        updated=points(details.get("updated", 0)),
        reopened=points(details.get("reopened", 0)),
        members=counted_members(int(details.get("held", 0))),
    )


def resolved_words(before: RiskCaseInfo, done: RiskCaseInfo, deduct: int | None) -> str:
    """What resolving a case did, for the flash: the outcome, then what became of the hold."""
    member, held = before.member, before.held_points
    if done.resolution == "reversed":
        text = _(
            "Resolved case %(id)s: reversed, %(points)s points deducted from %(member)s.",
            id=done.id,
            points=points(deduct if deduct is not None else held),
            member=member,
        )
    elif done.resolution == "dismissed":
        text = _("Dismissed case %(id)s as a false alarm.", id=done.id)
    else:
        text = _("Resolved case %(id)s: released.", id=done.id)
    if member and done.member_on_hold:
        then = _(
            "%(member)s stays on hold (another hold case is open): the points stay held.",
            member=member,
        )
    elif member and held:
        then = _(
            "%(member)s's %(points)s held points are available.", member=member, points=points(held)
        )
    else:
        return text
    return _("%(done)s %(then)s", done=text, then=then)


# --- a case's page: figures and trail ---------------------------------------------------------


def figure_rows(figures: Mapping[str, Any], timezone: str) -> list[tuple[str, str]]:
    """A case's figures as (name, value) rows: numbers with separators, instants local."""
    return [
        (code_word(FIGURE_MEANINGS, name, name.replace("_", " ")), figure_text(value, timezone))
        for name, value in figures.items()
    ]


def figure_text(value: Any, timezone: str) -> str:
    """One figure as staff read it: ``1,234``, ``2.5``, or an instant in the program's zone."""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, int):
        return points(value)
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    try:
        instant = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if instant.tzinfo is None:
        return str(value)
    return f"{local_time(instant)} ({timezone})"


@dataclass(frozen=True)
class TrailEntry:
    """One line of a case's trail: when, who, what."""

    at: dt.datetime
    who: str
    what: str


def case_trail(case: RiskCaseInfo, entries: Iterable[AuditRecord]) -> list[TrailEntry]:
    """A case's story, oldest first (``entries`` newest first): opened by the risk job, then
    each audited change."""
    trail = [
        TrailEntry(case.opened_at, _("risk job"), _("opened by rule %(rule)s", rule=case.rule_id))
    ]
    trail += [TrailEntry(e.created_at, e.actor, audit_line(e)) for e in reversed(list(entries))]
    return trail


def audit_line(entry: AuditRecord) -> str:
    """A case's audit entry in words."""
    after = entry.after or {}
    if entry.action == "risk.case_assigned":
        who = after.get("assigned_to")
        return _("assigned to %(who)s", who=who) if who else _("unassigned")
    if entry.action not in ("risk.case_resolved", "risk.case_dismissed"):
        return entry.action
    resolution = str(after.get("resolution") or "")
    if resolution == "dismissed":
        text = resolution_word(resolution)
    else:
        text = _("resolved as %(resolution)s", resolution=resolution_word(resolution))
    done = []
    if after.get("released_points"):
        done.append(
            _("%(points)s held points made available", points=points(after["released_points"]))
        )
    deducted = after.get("points") or after.get("released_points")  # the default
    if resolution == "reversed" and deducted:
        done.append(_("%(points)s points deducted", points=points(deducted)))
    if done:
        text = _("%(what)s (%(done)s)", what=text, done=_(", ").join(done))
    note = after.get("resolution_note")
    return _("%(what)s: %(detail)s", what=text, detail=note) if note else text


# --- a case's summary ------------------------------------------------------------------------

_WINDOW_SUMMARIES = {
    ("earns", "hour"): _l("%(measured)s earns within an hour, over the limit of %(limit)s"),
    ("earns", "day"): _l("%(measured)s earns within a day, over the limit of %(limit)s"),
    ("points", "hour"): _l("%(measured)s points within an hour, over the limit of %(limit)s"),
    ("points", "day"): _l("%(measured)s points within a day, over the limit of %(limit)s"),
}
_SPIKE_SUMMARIES = {
    "hour": _l(
        "%(current)s points issued in the last hour, %(score)s deviations above the median "
        "of %(median)s"
    ),
    "day": _l(
        "%(current)s points issued in the last day, %(score)s deviations above the median "
        "of %(median)s"
    ),
}


def summary_words(rule: RiskRule, figures: Mapping[str, Any]) -> str:
    """What tripped ``rule``, said from the case's figures in the request's language (the
    risk job's English summary, word for word, in English); :class:`KeyError` or
    :class:`ValueError` when the figures are not the rule kind's."""
    f, p = figures, rule.params
    if rule.kind == "velocity":
        words = _WINDOW_SUMMARIES[(p["measure"], p["window"])]
        return str(words) % {"measured": points(f["measured"]), "limit": points(f["limit"])}
    if rule.kind == "farming":
        return _(
            "%(share)s %% of %(earned)s points earned in %(days)s days refunded (%(refunds)s "
            "refunds), over %(percent)s %%",
            share=int(f["share_percent"]),
            earned=points(f["earned"]),
            days=p["days"],
            refunds=int(f["refunds"]),
            percent=p["refunded_percent"],
        )
    if rule.kind == "transfer_ring":
        return _(
            "%(senders)s members sent %(points)s points within %(hours)s hours",
            senders=int(f["senders"]),
            points=points(f["points"]),
            hours=p["hours"],
        )
    if rule.kind == "transfer_chain":
        return _(
            "passed on %(passed)s of %(received)s points received by transfer (%(share)s %%) "
            "within %(hours)s hours, at least %(percent)s %%",
            passed=points(f["passed_on"]),
            received=points(f["received"]),
            share=int(f["passed_on_percent"]),
            hours=p["hours"],
            percent=p["share_percent"],
        )
    if rule.kind == "new_member_inflow":
        return _(
            "%(points)s points received within %(days)s days of enrolling, over %(limit)s",
            points=points(f["points"]),
            days=p["days"],
            limit=points(f["limit"]),
        )
    if rule.kind == "issuance_spike":
        return str(_SPIKE_SUMMARIES[p["window"]]) % {
            "current": points(f["current"]),
            "score": f"{float(f['score']):.1f}",
            "median": f"{float(f['median']):,.0f}",
        }
    raise ValueError(rule.kind)


def case_summaries(db: Target, program: str, cases: Iterable[RiskCaseInfo]) -> dict[int, str]:
    """Each case's summary in the request's language, by case id (:func:`case_summary`),
    reading the rules of the cases' versions only in Chinese."""
    found = list(cases)
    if current_locale() != CHINESE:
        return {c.id: c.summary for c in found}
    versions: dict[int, RiskRules] = {}
    for version in {c.rule_version for c in found}:
        info = risk_rules(db, program=program, version=version)
        versions[version] = RiskRules.from_dict(info.rules if info else {})
    return {c.id: case_summary(c, versions[c.rule_version].get(c.rule_id)) for c in found}


def case_summary(case: RiskCaseInfo, rule: RiskRule | None) -> str:
    """A case's summary in the request's language: the one the risk job stored in English,
    said again from the figures and ``rule`` (the case's, in its version) in Chinese; the
    stored one when the rule or its figures are missing."""
    if current_locale() != CHINESE or rule is None:
        return case.summary
    try:
        return summary_words(rule, case.figures)
    except (KeyError, ValueError, TypeError):
        return case.summary
