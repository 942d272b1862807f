"""Risk control (风控) in the console: the cases under review, one case with its evidence and
audit trail, the risk rules in force with their sentences (in the person's language, the
other one a click away: the API publishes both), their version history and an editor that
previews a draft's sentences before publishing it, a "run the risk scan now" button, and the
member page's freeze, unfreeze and hold release. What the pages say is in
:mod:`admin.risk_words` and :mod:`admin.risk_form`, in Simplified Chinese or English.

Every role that sees members reads; ``admin`` publishes rules; operations and admin assign
and resolve cases, run the scan, freeze and unfreeze accounts and release holds. Every
change is a call to the risk services (:mod:`loyalty.services.risk_rules`,
:mod:`~loyalty.services.risk_cases`), which audit it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from marshmallow import Schema, fields, validate

from admin import risk_form, rules_form
from admin.auth import OPERATIONS, actor, has_role, require_role
from admin.error_words import error_text
from admin.formatting import points
from admin.forms import POINTS_FROM_ONE, load
from admin.risk_words import (
    EVIDENCE_FIELDS,
    OUTCOME_WORDS,
    TEMPLATE_WORDS,
    case_summaries,
    case_summary,
    case_trail,
    counted_rules,
    figure_rows,
    other_sentence,
    resolved_words,
    rule_sentence,
    scan_words,
    version_sentences,
)
from admin.views.base import (
    ConsoleView,
    choice_arg,
    expose,
    flash_error,
    number_arg,
    page_number,
    search_arg,
)
from loyalty import jobs
from loyalty.domain.checks import MAX_ID, MAX_MEMBER_ID, MAX_POINTS
from loyalty.domain.risk import RiskRules
from loyalty.errors import InvalidRule, LoyaltyError
from loyalty.jobs.runs import JobRunInfo
from loyalty.services import (
    assign_risk_case,
    audit,
    freeze_member,
    list_audit,
    list_risk_cases,
    publish_risk_rules,
    release_member_hold,
    resolve_risk_case,
    risk_case,
    risk_rule_versions_of,
    risk_rules,
    unfreeze_member,
)
from loyalty.services.audit import AuditRecord
from loyalty.services.risk_cases import OUTCOMES
from loyalty.services.risk_review import member_risk_state
from loyalty.services.risk_review import scan_words as english_scan_words

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

RULE_ROLES = ("admin",)
PAGE = 25
STATUS_FILTERS = ("open", "resolved", "dismissed", "all")
AUDIT_SHOWN = 200


class ResolveForm(Schema):
    """Close a case: how, why, and (reverse) how many points to deduct."""

    id = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID))
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    note = fields.String(required=True, validate=validate.Length(min=1, max=500))
    points = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_POINTS, error=POINTS_FROM_ONE),
    )


class AssignForm(Schema):
    """Give a case to a person (blank: to nobody)."""

    id = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID))
    assignee = fields.String(load_default=None, validate=validate.Length(max=120))


class MemberStateForm(Schema):
    """Freeze or unfreeze an account, or release a hold: the member and why."""

    member = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MEMBER_ID))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class RiskView(ConsoleView):
    """Cases, a case, the rules with their editor, the scan, and member freeze and holds."""

    # --- cases ---------------------------------------------------------------------------

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        db = self.console.db
        status = choice_arg("status", STATUS_FILTERS) or "open"
        rule = search_arg("rule", max_length=64)
        member = search_arg("member", max_length=MAX_MEMBER_ID)
        page = page_number()
        found = list_risk_cases(
            db,
            program=program.code,
            status=None if status == "all" else status,
            rule_id=rule or None,
            member=member or None,
            limit=PAGE,
            offset=(page - 1) * PAGE,
        )
        in_force = risk_rules(db, program=program.code)
        return self.render(
            "jifen/risk_cases.html",
            program=program,
            cases=found.items,
            total=found.total,
            page=page,
            pages=max(1, -(-found.total // PAGE)),
            filters={"status": status, "rule": rule, "member": member},
            statuses=STATUS_FILTERS,
            rule_ids=_rule_ids(in_force.rules if in_force else None, rule),
            last_scan=_last_scan(db),
            summaries=case_summaries(db, program.code, found.items),
            can_operate=has_role(*OPERATIONS),
            **TEMPLATE_WORDS,
        )

    @expose("/case")
    def case(self) -> ResponseReturnValue:
        program = self.program()
        case_id = number_arg("id", minimum=1, maximum=MAX_ID)
        if case_id is None:
            abort(404)
        db = self.console.db
        found = risk_case(db, program=program.code, case_id=case_id)
        state = (
            member_risk_state(db, program=program.code, member=found.member)
            if found.member
            else None
        )
        in_force = risk_rules(db, program=program.code, version=found.rule_version)
        rule = RiskRules.from_dict(in_force.rules if in_force else {}).get(found.rule_id)
        return self.render(
            "jifen/risk_case.html",
            program=program,
            case=found,
            state=state,
            rule_sentence=rule_sentence(rule) if rule else None,
            summary=case_summary(found, rule),
            figures=figure_rows(found.figures, program.timezone),
            trail=case_trail(found, _case_audit(db, program.code, found.id)),
            outcomes=OUTCOME_WORDS,
            evidence_fields=EVIDENCE_FIELDS,
            can_operate=has_role(*OPERATIONS),
            **TEMPLATE_WORDS,
        )

    @expose("/case/assign", methods=("POST",))
    def assign(self) -> ResponseReturnValue:
        require_role(*OPERATIONS)
        program = self.program()
        case_id = request.form.get("id", "")
        try:
            form = load(AssignForm(), request.form)
            case_id = form["id"]
            done = assign_risk_case(
                self.console.db,
                program=program.code,
                case_id=form["id"],
                assignee=actor() if request.form.get("me") else form["assignee"],
                actor=actor(),
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            if done.assigned_to:
                message = _("Case %(id)s assigned to %(who)s.", id=done.id, who=done.assigned_to)
            else:
                message = _("Case %(id)s unassigned.", id=done.id)
            flash(message, "success")
        return _to_case(case_id)

    @expose("/case/resolve", methods=("POST",))
    def resolve(self) -> ResponseReturnValue:
        require_role(*OPERATIONS)
        program = self.program()
        db = self.console.db
        case_id = request.form.get("id", "")
        try:
            form = load(ResolveForm(), request.form)
            case_id = form["id"]
            before = risk_case(db, program=program.code, case_id=form["id"])
            points = form["points"] if form["outcome"] == "reverse" else None
            done = resolve_risk_case(
                db,
                program=program.code,
                case_id=form["id"],
                outcome=form["outcome"],
                note=form["note"],
                actor=actor(),
                points=points,
            )
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash(resolved_words(before, done, points), "success")
        return _to_case(case_id)

    @expose("/scan", methods=("POST",))
    def scan(self) -> ResponseReturnValue:
        require_role(*OPERATIONS)
        program = self.program()
        db = self.console.db
        try:
            run = jobs.run_job(db, "risk", trigger="console", program=program.code)
        except LoyaltyError as exc:
            flash_error(exc)
            return redirect(url_for(".index"))
        recorded = f"Risk scan done (run {run.id}): {english_scan_words(run.details, run.items)}."
        audit(
            db,
            actor=actor(),
            action="job.run",
            target="job risk",
            program=program.code,
            after={"job": "risk", "result": recorded},  # the audit log keeps its English
        )
        what = scan_words(run.details, run.items)
        flash(_("Risk scan done (run %(run)s): %(what)s.", run=run.id, what=what), "success")
        return redirect(url_for(".index"))

    # --- rules ---------------------------------------------------------------------------

    def _rules_page(self, *, values: dict[str, list[dict[str, str]]], **extra: Any) -> str:
        program = self.program()
        db = self.console.db
        in_force = risk_rules(db, program=program.code)
        return str(
            self.render(
                "jifen/risk_rules.html",
                program=program,
                in_force=in_force,
                current_rules=RiskRules.from_dict(in_force.rules).rules if in_force else (),
                note=extra.pop("note", ""),
                versions=risk_rule_versions_of(db, program=program.code),
                kinds=risk_form.KIND_FORMS,
                kind_title=risk_form.kind_title,
                action_words=risk_form.ACTION_WORDS,
                rule_sentence=rule_sentence,
                other_sentence=other_sentence,
                version_sentences=version_sentences,
                **TEMPLATE_WORDS,
                values=values,
                can_edit=has_role(*RULE_ROLES),
                **extra,
            )
        )

    @expose("/rules")
    def rules(self) -> ResponseReturnValue:
        program = self.program()
        in_force = risk_rules(self.console.db, program=program.code)
        values = risk_form.form_values(in_force.rules if in_force else None)
        return self._rules_page(values=values, example=in_force is None)

    @expose("/rules/draft", methods=("POST",))
    def draft(self) -> ResponseReturnValue:
        require_role(*RULE_ROLES)
        program = self.program()
        db = self.console.db
        form = request.form
        page: dict[str, Any] = {
            "values": risk_form.raw_values(form),
            "note": form.get("note", "").strip(),
        }
        try:
            draft = risk_form.rules_from_form(form)
        except InvalidRule as exc:
            return self._rules_page(**page, problem=error_text(exc), problem_at=exc.details), 400
        fingerprint = rules_form.digest(draft, None)
        if form.get("action") == "publish":
            if form.get("previewed") == fingerprint:
                return self._publish(draft, page)
            flash(
                _("The draft changed since its preview: check the new preview, then publish."),
                "warning",
            )
        in_force = risk_rules(db, program=program.code)
        return self._rules_page(
            **page,
            preview=RiskRules.from_dict(draft).rules,
            changes=risk_form.changes(in_force.rules if in_force else None, draft),
            previewed=fingerprint,
        )

    def _publish(self, draft: dict[str, Any], page: dict[str, Any]) -> ResponseReturnValue:
        program = self.program()
        try:
            published = publish_risk_rules(
                self.console.db,
                program=program.code,
                rules=draft,
                actor=actor(),
                note=page["note"] or None,
            )
        except LoyaltyError as exc:
            return self._rules_page(**page, problem=error_text(exc), problem_at=exc.details), 400
        count, version = len(published.sentences), published.version
        if count:
            message = _(
                "Published risk rules version %(version)s, in force now (%(rules)s).",
                version=version,
                rules=counted_rules(count),
            )
        else:
            message = _(
                "Published risk rules version %(version)s, in force now (0 rules: risk "
                "control is off).",
                version=version,
            )
        flash(message, "success")
        return redirect(url_for(".rules"))

    # --- the member page's panel: freeze, unfreeze, release the hold ----------------------

    @expose("/member/freeze", methods=("POST",))
    def freeze(self) -> ResponseReturnValue:
        return self._member_change("freeze")

    @expose("/member/unfreeze", methods=("POST",))
    def unfreeze(self) -> ResponseReturnValue:
        return self._member_change("unfreeze")

    @expose("/member/release-hold", methods=("POST",))
    def release_hold(self) -> ResponseReturnValue:
        return self._member_change("release")

    def _member_change(self, change: str) -> ResponseReturnValue:
        require_role(*OPERATIONS)
        program = self.program()
        db = self.console.db
        member = request.form.get("member", "")
        try:
            form = load(MemberStateForm(), request.form)
            member, why = form["member"], form["reason"]
            if change == "release":
                released = release_member_hold(
                    db, program=program.code, member=member, note=why, actor=actor()
                )
                message = _(
                    "Released %(member)s's hold: %(points)s held points are available.",
                    member=member,
                    points=points(released),
                )
            elif change == "freeze":
                freeze_member(db, program=program.code, member=member, reason=why, actor=actor())
                message = _("Froze %(member)s's account: %(why)s", member=member, why=why)
            else:
                unfreeze_member(db, program=program.code, member=member, reason=why, actor=actor())
                message = _("Unfroze %(member)s's account: %(why)s", member=member, why=why)
        except LoyaltyError as exc:
            flash_error(exc)
        else:
            flash(message, "success")
        return redirect(url_for("members.member", id=member) + "#risk")


# --- what the pages say ---------------------------------------------------------------------


def _to_case(case_id: int | str) -> ResponseReturnValue:
    """Back to the case a form was about, or to the cases if the form named none."""
    text = str(case_id)
    if text.isdigit() and len(text) <= 18:
        return redirect(url_for(".case", id=int(text)))
    return redirect(url_for(".index"))


def _rule_ids(rules: dict[str, Any] | None, chosen: str) -> list[str]:
    """The rule ids the cases filter offers: those in force, and the one chosen."""
    ids = [str(r["id"]) for r in (rules or {}).get("rules", [])]
    return ids + ([chosen] if chosen and chosen not in ids else [])


def _last_scan(db: Any) -> JobRunInfo | None:
    runs = jobs.last_runs(db, limit_per_job=1, jobs=["risk"])
    return runs[0] if runs else None


def _case_audit(db: Any, program: str, case_id: int) -> list[AuditRecord]:
    """The audit entries of one case (the search matches a prefix: ``risk-case:1`` would
    find case 12 too, so the target is checked exactly)."""
    target = f"risk-case:{case_id}"
    found = list_audit(db, program=program, target=target, action="risk.", limit=AUDIT_SHOWN)
    return [e for e in found.items if e.target == target]
