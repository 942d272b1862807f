"""Earning rules (marketing): the version in force and those scheduled (each can be
cancelled before its time, after a confirmation naming what stays in force then and what
the cancelled version would have changed), a draft editor that says which version it starts
from (in force or scheduled, as picked), a preview of a sample order under the version the
draft would replace and under the draft, with the changes in words, then publishing with an
effective-from time. Program settings (rounding, reminders, year-end clearing) have their
own form. Every change is audited.

The page, its flashes, the versions' descriptions and the changes in words
(:mod:`admin.rules_words`) are in the request's language; a refusal of the rules themselves
is shown as it comes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import LazyString, gettext
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from admin import rules_form, rules_words
from admin.auth import MARKETING, actor, has_role, require_role
from admin.code_words import code_word
from admin.form_words import problem_words
from admin.forms import load
from admin.views.base import ConsoleView, expose, flash_error
from loyalty.domain.rules import ACTION_PERIODS, RuleSet
from loyalty.errors import InvalidInput, LoyaltyError
from loyalty.services import (
    list_rule_versions,
    publish_rules_audited,
    rules_in_force,
    update_program_audited,
)
from loyalty.services.audit import cancel_scheduled_rules
from loyalty.services.results import ProgramInfo, RuleVersionInfo
from loyalty.services.uow import Target

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext
ROUNDINGS = ("floor", "half_up", "half_even")
CLEARING_POLICIES = ("none", "all", "before_cutoff")
# The settings' fields as the form labels them (a refusal names them so in Chinese).
SETTING_LABELS: dict[str, LazyString] = {
    "rounding": _l("rounding"),
    "reminder_days": _l("reminder days before expiry"),
    "clearing_policy": _l("year-end clearing"),
    "clearing_month": _l("clearing month"),
    "clearing_day": _l("clearing day"),
    "clearing_keep_months": _l("keep months (cutoff)"),
}


class SettingsForm(Schema):
    """Program settings marketing may change (they apply at once)."""

    rounding = fields.String(required=True, validate=validate.OneOf(ROUNDINGS))
    reminder_days = fields.Integer(required=True, validate=validate.Range(min=0, max=366))
    clearing_policy = fields.String(required=True, validate=validate.OneOf(CLEARING_POLICIES))
    clearing_month = fields.Integer(required=True, validate=validate.Range(min=1, max=12))
    clearing_day = fields.Integer(required=True, validate=validate.Range(min=1, max=31))
    clearing_keep_months = fields.Integer(required=True, validate=validate.Range(min=0, max=1200))


class RulesView(ConsoleView):
    """Rules in force, scheduled versions, the draft editor and its preview."""

    def _page(self, *, values: dict[str, Any], sample: dict[str, Any], **extra: Any) -> str:
        program = self.program()
        timeline = Timeline.read(self.console.db, program)
        base = extra.pop("base", None) or timeline.current
        return str(
            self.render(
                "jifen/rules.html",
                program=program,
                timeline=timeline,
                versions=list(reversed(timeline.versions)),
                base=base,
                base_words=timeline.describe(base),
                ratio_words=lambda ratio: rules_words.ratio(ratio, program.currency),
                values=values,
                sample=sample,
                periods=ACTION_PERIODS,
                period_word=rules_words.period_word,
                weekday_name=rules_words.weekday_name,
                cap_names=rules_words.CAP_NAMES,
                roundings=ROUNDINGS,
                rounding_words=rounding_words,
                clearing_policies=CLEARING_POLICIES,
                clearing_words=clearing_words,
                can_edit=has_role(*MARKETING),
                effective_from=extra.pop("effective_from", ""),
                **extra,
            )
        )

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        timeline = Timeline.read(self.console.db, program)
        base = timeline.find(request.args.get("base", "")) or timeline.current
        return self._page(
            values=rules_form.form_values(base.rules, program.timezone),
            sample=rules_form.sample_values(None),
            base=base,
        )

    @expose("/draft", methods=("POST",))
    def draft(self) -> ResponseReturnValue:
        require_role(*MARKETING)
        program = self.program()
        db = self.console.db
        form = request.form
        values = rules_form.raw_values(form)
        sample = rules_form.sample_values(form)
        effective_text = form.get("effective_from", "")
        base = Timeline.read(db, program).find(form.get("base", ""))
        page: dict[str, Any] = {
            "values": values,
            "sample": sample,
            "effective_from": effective_text,
            "base": base,
        }
        try:
            draft = RuleSet.from_dict(rules_form.rules_from_form(form, program.timezone))
            effective_from = rules_form.from_local(
                effective_text, program.timezone, "effective from", label=_("effective from")
            )
            if effective_from is not None and effective_from < db.clock.now():
                raise InvalidInput(
                    _(
                        "a rule change cannot take effect in the past: choose a later "
                        "'in force from' time, or leave it blank for now"
                    ),
                    field="effective_from",
                )
        except LoyaltyError as exc:
            flash_error(exc)
            return self._page(**page), 400
        draft_dict = draft.to_dict()
        fingerprint = rules_form.digest(draft_dict, effective_from)
        if form.get("action") == "publish":
            if form.get("previewed") != fingerprint:
                flash(
                    _("The draft changed since its preview: check the new preview, then publish."),
                    "warning",
                )
            else:
                try:
                    published = publish_rules_audited(
                        db,
                        program=program.code,
                        rules=draft,
                        actor=actor(),
                        effective_from=effective_from,
                    )
                except LoyaltyError as exc:
                    flash_error(exc)
                else:
                    start = rules_words.local(published.effective_from_at, program.timezone)
                    flash(
                        _(
                            "Published rules version %(version)s, in force from %(start)s "
                            "(%(zone)s).",
                            version=published.version,
                            start=start,
                            zone=program.timezone,
                        ),
                        "success",
                    )
                    return redirect(url_for(".index"))
        try:
            order = rules_form.sample_from_form(form, program, db.clock.now())
        except LoyaltyError as exc:
            flash_error(exc)
            return self._page(**page), 400
        return self._page(
            **page,
            **_preview(db, program, draft, effective_from, order),
            previewed=fingerprint,
        )

    @expose("/cancel", methods=("GET", "POST"))
    def cancel(self) -> ResponseReturnValue:
        """GET: what cancelling a scheduled version means, with the button that does it.
        POST with ``confirm=yes``: cancel it (audited); without, back to that question."""
        require_role(*MARKETING)
        program = self.program()
        source = request.form if request.method == "POST" else request.args
        try:
            version = int(source.get("version", ""))
        except ValueError:
            flash_error(InvalidInput(_("choose the version to cancel from the rules page")))
            return redirect(url_for(".index"))
        if request.method == "POST" and request.form.get("confirm") == "yes":
            return self._cancel(program, version)
        if request.method == "POST":
            return redirect(url_for(".cancel", version=version))
        timeline = Timeline.read(self.console.db, program)
        chosen = next((v for v in timeline.scheduled if v.version == version), None)
        if chosen is None:
            flash_error(
                InvalidInput(
                    _(
                        "rules version %(version)s is not scheduled for later: only a version "
                        "that has not taken effect can be cancelled",
                        version=version,
                    )
                )
            )
            return redirect(url_for(".index"))
        return self._confirm_cancel(timeline, chosen)

    def _confirm_cancel(self, timeline: Timeline, chosen: RuleVersionInfo) -> str:
        program = timeline.program
        instead = timeline.without(chosen)
        return str(
            self.render(
                "jifen/rules_cancel.html",
                program=program,
                chosen=chosen,
                chosen_words=timeline.describe(chosen),
                instead_words=timeline.describe(instead),
                followers=[timeline.describe(v) for v in timeline.followers(chosen)],
                changes=rules_words.describe_changes(
                    RuleSet.from_dict(instead.rules).to_dict(),
                    RuleSet.from_dict(chosen.rules).to_dict(),
                    currency=program.currency,
                    tz=program.timezone,
                ),
            )
        )

    def _cancel(self, program: ProgramInfo, version: int) -> ResponseReturnValue:
        try:
            cancelled = cancel_scheduled_rules(
                self.console.db, program=program.code, version=version, actor=actor()
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            start = rules_words.local(cancelled.effective_from_at, program.timezone)
            flash(
                _(
                    "Cancelled rules version %(version)s: it will not take effect on %(start)s "
                    "(%(zone)s).",
                    version=version,
                    start=start,
                    zone=program.timezone,
                ),
                "success",
            )
        return redirect(url_for(".index"))

    @expose("/settings", methods=("POST",))
    def settings(self) -> ResponseReturnValue:
        require_role(*MARKETING)
        program = self.program()
        try:
            values = load_settings(request.form)
            update_program_audited(self.console.db, program=program.code, actor=actor(), **values)
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash(_("Program settings saved."), "success")
        return redirect(url_for(".index") + "#settings")


class Timeline:
    """A program's rule versions as staff read them: the one in force now and those
    scheduled for later (soonest first), each described with its local start."""

    def __init__(
        self, program: ProgramInfo, versions: list[RuleVersionInfo], current: int, now: dt.datetime
    ) -> None:
        self.program = program
        self.versions = versions
        self.now = now
        self.current = next(v for v in versions if v.version == current)
        self.scheduled = sorted(
            (v for v in versions if v.effective_from_at > now), key=lambda v: v.effective_from_at
        )

    @classmethod
    def read(cls, db: Target, program: ProgramInfo) -> Timeline:
        current, _rules = rules_in_force(db, program=program.code)
        versions = list_rule_versions(db, program=program.code)
        return cls(program, versions, current, db.clock.now())

    def find(self, text: str) -> RuleVersionInfo | None:
        """The version numbered ``text`` (``"3"`` or ``"v3"``), if there is one."""
        number = text.strip().lstrip("v")
        return next((v for v in self.versions if str(v.version) == number), None)

    def without(self, version: RuleVersionInfo) -> RuleVersionInfo:
        """The version in force at ``version``'s start if ``version`` were cancelled (the
        latest start at or before it, the higher number on a tie, as the ledger picks)."""
        earlier = [
            v
            for v in self.versions
            if v.version != version.version and v.effective_from_at <= version.effective_from_at
        ]
        return max(earlier, key=lambda v: (v.effective_from_at, v.version), default=self.current)

    def followers(self, version: RuleVersionInfo) -> list[RuleVersionInfo]:
        """Scheduled versions published after ``version`` that start at or after it: each
        may build on it, so they are cancelled first."""
        return [
            v
            for v in self.scheduled
            if v.version > version.version and v.effective_from_at >= version.effective_from_at
        ]

    def describe(self, version: RuleVersionInfo) -> str:
        """``version 2 (in force now)`` or ``version 3 (scheduled from … zone)``."""
        start = rules_words.local(version.effective_from_at, self.program.timezone)
        words = {"version": version.version, "start": start}
        if version.version == self.current.version:
            return _("version %(version)s (in force now, since %(start)s)", **words)
        if version.effective_from_at > self.now:
            return _("version %(version)s (scheduled from %(start)s)", **words)
        return _("version %(version)s (from %(start)s, no longer in force)", **words)


def _preview(
    db: Target,
    program: ProgramInfo,
    draft: RuleSet,
    effective_from: dt.datetime | None,
    order: rules_form.SampleOrder,
) -> dict[str, Any]:
    """Both sides of the preview: the version the draft replaces at its start (the one in
    force now, or a scheduled one if the draft starts after it) and the draft."""
    timeline = Timeline.read(db, program)
    start = effective_from or timeline.now
    replaced_number, replaced = rules_in_force(db, program=program.code, at=start)
    replaced_info = timeline.find(str(replaced_number)) or timeline.current
    if effective_from is None:
        draft_label = _("Draft, in force now")
    else:
        local_start = rules_words.local(start, program.timezone)
        draft_label = _("Draft, in force from %(start)s", start=local_start)
    replaced_label = timeline.describe(replaced_info)
    later = [v for v in timeline.scheduled if v.effective_from_at > start]
    return {
        "preview": (
            rules_form.preview(
                replaced_label[0].upper() + replaced_label[1:], replaced, order, program
            ),
            rules_form.preview(draft_label, draft, order, program),
        ),
        "order": order,
        "replaced": replaced_label,
        "later": [timeline.describe(v) for v in later],
        "changes": rules_words.describe_changes(
            replaced.to_dict(),
            draft.to_dict(),
            currency=program.currency,
            tz=program.timezone,
        ),
    }


def load_settings(form: Any) -> dict[str, Any]:
    """The settings form checked by :class:`SettingsForm`; refused naming each field as the
    form labels it (in English by its name) with marshmallow's problem in words."""
    try:
        return load(SettingsForm(), form)
    except InvalidInput as exc:
        found = exc.details.get("fields") or {}
        problems = _("; ").join(
            _(
                "%(field)s: %(problems)s",
                field=code_word(SETTING_LABELS, name),
                problems=" ".join(problem_words(str(m)) for m in _listed(msgs)),
            )
            for name, msgs in sorted(found.items())
        )
        message = _("please correct the form: %(problems)s", problems=problems)
        raise InvalidInput(message, fields=found) from exc


def _listed(found: Any) -> list[Any]:
    return found if isinstance(found, list) else [found]


def rounding_words(rounding: str) -> str:
    """How points are rounded (``floor``, ``half_up``, ``half_even``), in words."""
    words = {
        "floor": _("round down"),
        "half_up": _("round half up"),
        "half_even": _("round half to even"),
    }
    return words.get(rounding, rounding)


def clearing_words(policy: str) -> str:
    """A year-end clearing policy (``none``, ``all``, ``before_cutoff``), in words."""
    words = {
        "none": _("no clearing"),
        "all": _("clear all points"),
        "before_cutoff": _("clear points older than the kept months"),
    }
    return words.get(policy, policy)
