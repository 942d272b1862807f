"""Earning rules (marketing): edit a draft, preview a sample order under the current and the
draft rules side by side, then publish it with an effective-from time. Program settings
(rounding, reminders, year-end clearing) have their own form. Every change is audited."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate

from admin import rules_form
from admin.auth import MARKETING, actor, has_role, require_role
from admin.forms import load
from admin.views.base import ConsoleView, expose, flash_error
from loyalty.domain.rules import ACTION_PERIODS, RuleSet
from loyalty.errors import LoyaltyError
from loyalty.services import (
    list_rule_versions,
    publish_rules_audited,
    rules_in_force,
    update_program_audited,
)


class SettingsForm(Schema):
    """Program settings marketing may change (they apply at once)."""

    rounding = fields.String(
        required=True, validate=validate.OneOf(["floor", "half_up", "half_even"])
    )
    reminder_days = fields.Integer(required=True, validate=validate.Range(min=0, max=366))
    clearing_policy = fields.String(
        required=True, validate=validate.OneOf(["none", "all", "before_cutoff"])
    )
    clearing_month = fields.Integer(required=True, validate=validate.Range(min=1, max=12))
    clearing_day = fields.Integer(required=True, validate=validate.Range(min=1, max=31))
    clearing_keep_months = fields.Integer(required=True, validate=validate.Range(min=0, max=1200))


class RulesView(ConsoleView):
    """Rules in force, scheduled versions, the draft editor and its preview."""

    def _page(self, *, values: dict[str, Any], sample: dict[str, Any], **extra: Any) -> str:
        program = self.program()
        db = self.console.db
        version, current = rules_in_force(db, program=program.code)
        now = db.clock.now()
        versions = list_rule_versions(db, program=program.code)
        return str(
            self.render(
                "jifen/rules.html",
                program=program,
                current_version=version,
                current=current.to_dict(),
                versions=list(reversed(versions)),
                now=now,
                values=values,
                sample=sample,
                periods=ACTION_PERIODS,
                can_edit=has_role(*MARKETING),
                effective_from=extra.pop("effective_from", ""),
                **extra,
            )
        )

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        versions = list_rule_versions(self.console.db, program=program.code)
        latest = versions[-1].rules if versions else RuleSet().to_dict()
        return self._page(
            values=rules_form.form_values(latest, program.timezone),
            sample=rules_form.sample_values(None),
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
        try:
            draft = RuleSet.from_dict(rules_form.rules_from_form(form, program.timezone))
            effective_from = rules_form.from_local(
                effective_text, program.timezone, "effective from"
            )
        except LoyaltyError as exc:
            flash_error(exc)
            return self._page(values=values, sample=sample, effective_from=effective_text), 400
        draft_dict = draft.to_dict()
        fingerprint = rules_form.digest(draft_dict, effective_from)
        if form.get("action") == "publish":
            if form.get("previewed") != fingerprint:
                flash(
                    "The draft changed since its preview: check the new preview, then publish.",
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
                    start = rules_form.to_local(published.effective_from_at, program.timezone)
                    flash(
                        f"Published rules version {published.version}, in force from "
                        f"{start.replace('T', ' ')} ({program.timezone}).",
                        "success",
                    )
                    return redirect(url_for(".index"))
        try:
            order = rules_form.sample_from_form(form, program, db.clock.now())
        except LoyaltyError as exc:
            flash_error(exc)
            return self._page(values=values, sample=sample, effective_from=effective_text), 400
        version, current = rules_in_force(db, program=program.code)
        sides = (
            rules_form.preview(f"In force now (v{version})", current, order, program),
            rules_form.preview("Draft", draft, order, program),
        )
        return self._page(
            values=values,
            sample=sample,
            effective_from=effective_text,
            preview=sides,
            order=order,
            changes=rules_form.changes(current.to_dict(), draft_dict),
            previewed=fingerprint,
        )

    @expose("/settings", methods=("POST",))
    def settings(self) -> ResponseReturnValue:
        require_role(*MARKETING)
        program = self.program()
        try:
            values = load(SettingsForm(), request.form)
            update_program_audited(self.console.db, program=program.code, actor=actor(), **values)
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash("Program settings saved.", "success")
        return redirect(url_for(".index") + "#settings")
