"""Member tiers (marketing): the tier version in force and those scheduled (each can be
cancelled before its time), the ladder and its settings in words, a draft editor whose
preview counts the members each tier would hold next to those holding it now (publishing
nothing), publishing effective now or at a local time, and the forecast of the next
evaluations. Every role reads; marketing and admin publish and cancel.

A version's settings read in words in the request's language (:func:`settings_words`), as do
the flashes and the console's own refusals; the tier names are the shop's own and are shown
as they are, and a refusal from the tier rules themselves is shown as it comes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from admin import rules_form, rules_words, tier_form
from admin.auth import MARKETING, actor, has_role, require_role
from admin.error_words import error_text
from admin.formatting import points
from admin.ledger_words import tier_change_words, tier_measure_words
from admin.views.base import ConsoleView, choice_arg, expose, flash_error
from loyalty.domain.calendar import zone
from loyalty.domain.tiers import TierRules
from loyalty.errors import InvalidInput, InvalidRule, LoyaltyError
from loyalty.services import (
    cancel_tiers_audited,
    list_tier_versions,
    place_members_audited,
    preview_tiers,
    publish_tiers_audited,
    tier_distribution,
    tier_forecast,
    tier_history,
    tier_progress,
    tiers_in_force,
)
from loyalty.services.results import ProgramInfo
from loyalty.services.tier_results import TierCount, TierForecast, TierVersionInfo
from loyalty.services.uow import Target

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

HORIZONS = (30, 90, 365)
DEFAULT_HORIZON = 90
HISTORY = 50


class TiersView(ConsoleView):
    """Tier versions, the ladder, the draft editor with its preview, and the forecast."""

    def _page(self, *, values: dict[str, Any], **extra: Any) -> str:
        program = self.program()
        db = self.console.db
        timeline = TierTimeline.read(db, program)
        horizon = int(choice_arg("days", tuple(map(str, HORIZONS))) or DEFAULT_HORIZON)
        return str(
            self.render(
                "jifen/tiers.html",
                program=program,
                timeline=timeline,
                settings_words=lambda rules: settings_words(rules, program.currency),
                threshold_words=lambda rules, t: threshold_words(rules, t, program.currency),
                values=values,
                holding=tier_distribution(db, program=program.code) if timeline.current else [],
                forecasts=_forecasts(db, program) if timeline.current else [],
                horizon=horizon,
                horizons=HORIZONS,
                can_edit=has_role(*MARKETING),
                effective_from=extra.pop("effective_from", ""),
                **extra,
            )
        )

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        timeline = TierTimeline.read(self.console.db, program)
        base = timeline.latest
        values = tier_form.form_values(base.rules if base else None, program.currency)
        return self._page(values=values)

    @expose("/draft", methods=("POST",))
    def draft(self) -> ResponseReturnValue:
        require_role(*MARKETING)
        program = self.program()
        db = self.console.db
        form = request.form
        effective_text = form.get("effective_from", "").strip()
        page: dict[str, Any] = {
            "values": tier_form.raw_values(form),
            "effective_from": effective_text,
        }
        try:
            draft = tier_form.rules_from_form(form, program.currency)
            effective_from = _effective_from(effective_text, program, db.clock.now())
        except LoyaltyError as exc:
            return self._page(**page, problem=error_text(exc), problem_field=_field(exc)), 400
        fingerprint = rules_form.digest(draft, effective_from)
        if form.get("action") == "publish":
            if form.get("previewed") != fingerprint:
                flash(
                    _("The draft changed since its preview: check the new preview, then publish."),
                    "warning",
                )
            else:
                try:
                    published = publish_tiers_audited(
                        db,
                        program=program.code,
                        rules=draft,
                        effective_from=effective_from,
                        actor=actor(),
                    )
                except LoyaltyError as exc:
                    problem = error_text(exc)
                    return self._page(**page, problem=problem, problem_field=_field(exc)), 400
                start = rules_words.local(published.effective_from_at, program.timezone)
                flash(
                    _(
                        "Published tier version %(version)s, in force from %(start)s (%(zone)s).",
                        version=published.version,
                        start=start,
                        zone=program.timezone,
                    ),
                    "success",
                )
                return redirect(url_for(".index"))
        preview = _preview(db, program, draft)
        return self._page(**page, preview=preview, previewed=fingerprint, draft=draft)

    @expose("/cancel", methods=("POST",))
    def cancel(self) -> ResponseReturnValue:
        require_role(*MARKETING)
        program = self.program()
        raw = request.form.get("version", "").strip()
        if not raw.isdigit() or len(raw) > 9:
            flash_error(InvalidInput(_("choose the version to cancel from the tiers page")))
            return redirect(url_for(".index"))
        try:
            cancelled = cancel_tiers_audited(
                self.console.db, program=program.code, version=int(raw), actor=actor()
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            start = rules_words.local(cancelled.effective_from_at, program.timezone)
            flash(
                _(
                    "Cancelled tier version %(version)s: it will not take effect on %(start)s "
                    "(%(zone)s).",
                    version=cancelled.version,
                    start=start,
                    zone=program.timezone,
                ),
                "success",
            )
        return redirect(url_for(".index"))

    @expose("/place", methods=("POST",))
    def place(self) -> ResponseReturnValue:
        require_role(*MARKETING)
        program = self.program()
        try:
            placed = place_members_audited(self.console.db, program=program.code, actor=actor())
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash(
                _(
                    "Placed members by their measure: %(up)s moved up (nobody moves down here; "
                    "evaluations do that).",
                    up=points(placed.up),
                ),
                "success",
            )
        return redirect(url_for(".index"))


class TierTimeline:
    """A program's tier versions as staff read them: the one in force now (None before any)
    and those scheduled for later, soonest first."""

    def __init__(self, versions: list[TierVersionInfo], current: int | None, now: dt.datetime):
        self.versions = versions
        self.now = now
        self.current = next((v for v in versions if v.version == current), None)
        self.scheduled = sorted(
            (v for v in versions if v.effective_from_at > now), key=lambda v: v.effective_from_at
        )

    @classmethod
    def read(cls, db: Target, program: ProgramInfo) -> TierTimeline:
        found = tiers_in_force(db, program=program.code)
        versions = list_tier_versions(db, program=program.code)
        return cls(versions, None if found is None else found[0], db.clock.now())

    @property
    def latest(self) -> TierVersionInfo | None:
        """The version the editor starts from: the last scheduled one, else the one in force."""
        return self.scheduled[-1] if self.scheduled else self.current


def _effective_from(text: str, program: ProgramInfo, now: dt.datetime) -> dt.datetime | None:
    try:
        effective_from = rules_form.from_local(text, program.timezone, "effective from")
    except LoyaltyError as exc:
        problem = _(
            "%(what)s is not a date and time: %(value)s",
            what=_("effective from"),
            value=repr(text.strip()),
        )
        raise InvalidRule(problem, field="effective_from") from exc
    if effective_from is not None and effective_from < now:
        raise InvalidRule(
            _(
                "a tier change cannot take effect in the past: choose a later 'in force from' "
                "time, or leave it blank for now"
            ),
            field="effective_from",
        )
    return effective_from


def _field(exc: LoyaltyError) -> str:
    """The form field a refusal is about (``effective_from``, ``tier_threshold``…), if any."""
    named = str(exc.details.get("field") or "")
    if named == "effective from":
        return "effective_from"
    return named if named in (*tier_form.SETTINGS, *tier_form.ROW_FIELDS, "effective_from") else ""


class PreviewRow:
    """One tier of the preview: members holding it now beside those the draft would place."""

    def __init__(self, draft: TierCount, now: int | None) -> None:
        self.tier = draft.tier
        self.name = draft.name
        self.threshold = draft.threshold
        self.draft = draft.members
        self.now = now

    @property
    def change(self) -> int | None:
        return None if self.now is None else self.draft - self.now


def _preview(db: Target, program: ProgramInfo, draft: Mapping[str, Any]) -> list[PreviewRow]:
    """Per tier of the draft, members it would hold by their measure now and members who
    hold that tier code now (None for a code the version in force does not have)."""
    holding: dict[str, int] = {}
    if tiers_in_force(db, program=program.code) is not None:
        holding = {c.tier: c.members for c in tier_distribution(db, program=program.code)}
    return [
        PreviewRow(row, holding.get(row.tier))
        for row in preview_tiers(db, program=program.code, rules=draft)
    ]


def _forecasts(db: Target, program: ProgramInfo) -> list[tuple[int, TierForecast]]:
    return [(days, tier_forecast(db, program=program.code, days=days)) for days in HORIZONS]


# --- a tier version in words ----------------------------------------------------------------


def threshold_words(rules: Mapping[str, Any], threshold: int, currency: str) -> str:
    """A threshold as the ladder shows it: ``5,000 points`` or ``CNY 5,000.00 spent``."""
    return tier_measure_words(threshold, str(rules.get("measure", "points")), currency)


def settings_words(rules: Mapping[str, Any], currency: str) -> list[tuple[str, str]]:
    """A version's settings as ``(topic, sentence)`` pairs staff can read."""
    parsed = TierRules.from_dict(rules)
    return [
        (_("Measure"), _measure_sentence(parsed, currency)),
        (_("Window"), _window_sentence(parsed)),
        (_("Tier period"), _period_sentence(parsed)),
        (_("Grace"), _grace_sentence(parsed)),
        (_("Downgrade"), _downgrade_sentence(parsed)),
        (_("Refunds and disputes"), _reversal_sentence(parsed)),
        (_("Counted"), _sources_sentence(parsed)),
    ]


def _months(n: int) -> str:
    return _("1 month") if n == 1 else _("%(count)s months", count=n)


def _measure_sentence(rules: TierRules, currency: str) -> str:
    if rules.measure == "money":
        return _(
            "money spent (%(currency)s, not counting what was paid with points)",
            currency=currency,
        )
    return _("points earned (never the balance: spending does not lower it)")


def _window_sentence(rules: TierRules) -> str:
    months = _months(rules.window_months)
    if rules.window == "rolling":
        return _("rolling: what was counted in the last %(months)s", months=months)
    if rules.window_months == 12:
        return _("calendar year (from 1 January, local time)")
    return _("calendar blocks of %(months)s from 1 January (local time)", months=months)


def _period_sentence(rules: TierRules) -> str:
    span = _months(rules.period_months)
    if rules.anchor == "upgrade":
        return _("a tier is held for %(months)s from the upgrade, then evaluated", months=span)
    if rules.anchor == "join":
        return _("evaluated every %(months)s from the member's join date", months=span)
    return _("evaluated at fixed calendar boundaries every %(months)s from 1 January", months=span)


def _grace_sentence(rules: TierRules) -> str:
    if not rules.grace_days:
        return _("none: the evaluation is due when the period ends")
    days = _("1 day") if rules.grace_days == 1 else _("%(days)s days", days=rules.grace_days)
    return _("%(days)s after the period ends to requalify before the evaluation", days=days)


def _downgrade_sentence(rules: TierRules) -> str:
    if rules.downgrade == "one":
        return _("one tier at a time when the measure falls short (never below a lock)")
    return _("straight to the tier the measure supports (never below a lock)")


def _reversal_sentence(rules: TierRules) -> str:
    if rules.on_reversal == "at_once":
        return _("a reversal that drops the measure below the tier moves the member down at once")
    return _("reversals lower the measure; the tier is weighed again at the next evaluation")


def _sources_sentence(rules: TierRules) -> str:
    """What the measure counts, and the optional sources it leaves out."""
    counted = [_("purchases"), _("actions"), _("refunds and disputes (as reversals)")]
    if rules.count_adjustments:
        counted.append(_("manual adjustments"))
    if rules.count_transfers:
        counted.append(_("transfers received"))
    left_out = []
    if not rules.count_adjustments:
        left_out.append(_("manual adjustments"))
    if not rules.count_transfers:
        left_out.append(_("transfers"))
    sentence = _(", ").join(counted)
    if not left_out:
        return sentence
    return _("%(counted)s; not %(left_out)s", counted=sentence, left_out=_(" or ").join(left_out))


# --- the member page's tier panel -----------------------------------------------------------


class TierPanel:
    """What the member page shows of a member's tier: progress, lock and history in words."""

    def __init__(self, db: Target, program: ProgramInfo, member: str, rules: TierRules) -> None:
        tz = program.timezone
        self.progress = tier_progress(db, program=program.code, member=member)
        self.tiers = [(t.code, t.name) for t in rules.tiers]
        names = dict(self.tiers)
        kind = rules.measure
        self.measure = tier_measure_words(self.progress.measure, kind, program.currency)
        self.window = _window_sentence(rules)
        self.history = [
            (
                change,
                tier_change_words(
                    change, names=names, measure_kind=kind, currency=program.currency, tz=tz
                ),
            )
            for change in tier_history(db, program=program.code, member=member, limit=HISTORY)
        ]
        p = self.progress
        self.to_next = (
            None
            if p.to_next_tier is None
            else tier_measure_words(p.to_next_tier, kind, program.currency)
        )
        self.to_keep = (
            None
            if p.to_keep_tier is None
            else tier_measure_words(p.to_keep_tier, kind, program.currency)
        )
        self.evaluate_day = _local_day(p.evaluate_at, tz)
        self.locked_day = _local_day(p.locked_until_at, tz)
        self.lock_name = names.get(p.lock or "", p.lock)

    @classmethod
    def read(cls, db: Target, program: ProgramInfo, member: str) -> TierPanel | None:
        """The panel, or None when the program has no tiers in force."""
        found = tiers_in_force(db, program=program.code)
        return None if found is None else cls(db, program, member, found[1])


def tier_name(db: Target, program: ProgramInfo, code: str | None) -> str:
    """What the tiers in force call tier ``code`` (the code itself if they do not know it)."""
    found = tiers_in_force(db, program=program.code)
    names = {} if found is None else {t.code: t.name for t in found[1].tiers}
    return names.get(code or "", code or _("no tier"))


def _local_day(instant: dt.datetime | None, tz: str) -> str:
    return "" if instant is None else instant.astimezone(zone(tz)).date().isoformat()
